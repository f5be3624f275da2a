"""Recurly Engage Event API Firehose (JSON array or single object; POST, PUT, or GET with the batch in the
``events`` query parameter) to canonical events; never raises.

``engage_event`` maps one event object whatever channel brought it (this webhook adapter, the S3 export
in ``recurly_engage_s3``), so every channel gives the same event for the same object.

Decisions where the documentation says nothing:
- GET carries no body: the JSON batch is URL-encoded in the ``events`` query parameter (designed). Any
  method with an empty body falls back to that parameter; several ``events`` parameters are read in order.
  No body and no parameter is a Failure (``empty_body``). A body that is not JSON but a form with an
  ``events`` field is read the same way (that parameter posted as a form, among other fields or not).
- The body, and each ``events`` parameter alike, is read as Falconide's and iPost's bodies are
  (``parse_json_lenient``): besides an array or one object, objects one a line (the S3 export's own
  shape, relayed) or comma-separated are a batch. An object with no ``event`` or ``type`` of its own that
  holds an ``events`` array (``{"events": [...]}``, as the parameter of that name), or whose one key holds
  an array of objects (``{"data": [...]}``, a relay's wrapper, as Falconide's) or one event
  (``{"events": {...}}``), is that batch.
- ``type`` page/track/custom wins over ``event`` (then ``event`` is a tracker name a customer chose, which
  may well be "Click"); otherwise ``event`` names a prompt interaction, matched ignoring case. An object
  with neither a usable ``event`` nor ``type`` is a Failure (``invalid_event``).
- ``ts`` is epoch seconds, milliseconds above 10^11, as a number or digit string; anything else is null.
- ``user_id`` and ``anonymous_user_id`` are kept as strings (numeric ids included) in ``recipient``; the
  subject is ``user_id``, else ``anonymous_user_id``.
- Prompt events (``type`` other than page/track/custom): ``properties.path_id``/``path_name`` are the
  campaign, and ``platform`` (ios, web ...) is the device. Usage events' platform is always ``redfast``.
- Every other key (traits, segments, paths, properties, app_id, platform, type) goes to ``metadata``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from espwire.envelope import Envelope
from espwire.event import CanonicalEvent
from processors.adapters.base import AdaptResult, Failure, GuardedAdapter
from processors.adapters.fields import (
    as_dict,
    as_identity,
    as_str,
    epoch_or_time,
    failure_from,
    json_kind,
    keep_encodable,
)
from processors.adapters.json_body import BodyError, decode_text, parse_json_lenient
from processors.normalize import build_event

USAGE_TYPES: dict[str, str] = {"page": "app.page_viewed", "track": "app.tracked", "custom": "app.custom"}
PROMPT_EVENTS: dict[str, str] = {
    "impression": "prompt.impression",
    "timeout": "prompt.timeout",
    "dismiss": "prompt.dismissed",
    "decline": "prompt.declined",
    "click": "prompt.accepted",  # phased out in favour of Goal; same meaning
    "goal": "prompt.accepted",
    "exclude": "prompt.excluded",
    "holdout": "prompt.holdout",
    "pipeline_impression": "prompt.pipeline_impression",
    "pipeline_transition": "prompt.pipeline_transition",
}
_CUSTOM_GOAL_PREFIX = "custom_goals_"
# Keys that become canonical fields; everything else is metadata.
_MAPPED = frozenset({"event", "ts", "user_id", "anonymous_user_id"})
_MAX_QUERY_FIELDS = 1000


def classify(tracker_type: str | None, event: str | None) -> str:
    usage = USAGE_TYPES.get(tracker_type.strip().lower()) if tracker_type else None
    if usage is not None:
        return usage
    if event is None:
        return "unknown"
    key = event.strip().lower()
    if key.startswith(_CUSTOM_GOAL_PREFIX):
        return "prompt.goal_completed"
    return PROMPT_EVENTS.get(key, "unknown")


def engage_event(envelope: Envelope, item: dict[str, Any]) -> CanonicalEvent:
    """One event object (webhook or S3 export line) to one canonical event.

    Raises BodyError when the object names no event.
    """
    get = item.get
    event = as_str(get("event"))
    tracker_type = as_str(get("type"))
    if event is None and tracker_type is None:
        raise BodyError("invalid_event", "object has neither event nor type")
    canonical = classify(tracker_type, event)
    user_id = as_identity(get("user_id"))
    anonymous_id = as_identity(get("anonymous_user_id"))
    campaign: dict[str, Any] | None = None
    client: dict[str, Any] | None = None
    if not canonical.startswith("app."):
        props = as_dict(get("properties"))
        if props is not None:
            campaign = {"id": as_str(props.get("path_id")), "name": as_str(props.get("path_name"))}
        platform = as_str(get("platform"))
        if platform is not None and platform.lower() != "redfast":
            client = {"device": platform}
    return build_event(
        envelope,
        type=canonical,
        provider_event_type=event or "",
        raw=item,
        occurred_at=epoch_or_time(get("ts"), allow_iso=False),
        recipient={"user_id": user_id, "anonymous_id": anonymous_id},
        subject=user_id or anonymous_id,
        campaign=campaign,
        client=client,
        metadata={k: v for k, v in item.items() if k not in _MAPPED},
    )


def map_events(envelope: Envelope, items: Iterable[tuple[int, Any]], failures: list[Failure]) -> AdaptResult:
    """Events for (index, object) pairs; an object that cannot be mapped is a failure with its index."""
    indexed: list[tuple[int, CanonicalEvent]] = []
    for index, item in items:
        if not isinstance(item, dict):
            failures.append(Failure("invalid_event", f"batch item is a JSON {json_kind(item)}", index))
            continue
        try:
            indexed.append((index, engage_event(envelope, item)))
        except BodyError as error:
            failures.append(Failure(error.reason, error.detail, index))
        except Exception as exc:  # one odd object must not cost the rest of the batch
            failures.append(failure_from(exc, item, index))
    return keep_encodable(indexed, failures)


def _events_fields(text: str, where: str) -> list[str | bytes]:
    """The values of every ``events`` field of a query string or form body, in order."""
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=_MAX_QUERY_FIELDS,
        )
    except UnicodeDecodeError as exc:
        raise BodyError("invalid_utf8", f"{where}: {exc.reason}") from None
    except ValueError:
        raise BodyError("too_many_fields", f"more than {_MAX_QUERY_FIELDS} fields in the {where}") from None
    return [value for name, value in pairs if name == "events"]


def _batches(envelope: Envelope) -> list[Any]:
    """The request's parsed JSON batches: the body, else each ``events`` query parameter."""
    body = envelope.body
    if not body.strip():
        payloads = _events_fields(envelope.query, "query string")
        if not payloads:
            raise BodyError("empty_body", "no body and no events query parameter")
        return [_parameter_json(payload) for payload in payloads]
    try:
        # Leading zeros stay an error: the fixture rules allow them to iPost alone.
        return [parse_json_lenient(body, leading_zeros=False)]
    except BodyError as error:
        # The GET variant's parameter sent as a form body (``events=<url-encoded JSON>``, a POST or PUT from
        # a sender set up for forms). Looked for only after the body failed as JSON.
        if error.reason != "invalid_json" or body.lstrip()[:1] in (b"[", b"{"):
            raise
        payloads = _events_fields(decode_text(body).strip(), "form body")
        if not payloads:
            raise
    return [_parameter_json(payload) for payload in payloads]


def _parameter_json(payload: str | bytes) -> Any:
    """An ``events`` parameter's JSON, read as a body is: objects one a line or comma-separated are a batch."""
    return parse_json_lenient(payload, leading_zeros=False)


def _wrapped_events(value: dict[str, Any]) -> list[Any] | None:
    """The events an object wraps instead of being one; None for an event.

    ``{"events": [...]}`` (the parameter's name, beside other keys or not), or one key alone holding an array
    of objects (``{"data": [...]}``, a relay's wrapper) or one event (``{"events": {...}}``).
    """
    if "event" in value or "type" in value:
        return None
    inner = value.get("events")
    if isinstance(inner, list):
        return inner
    if len(value) != 1:
        return None
    (inner,) = value.values()
    # Under a key of another name, an empty list says nothing of being a batch: the object stays an event.
    if isinstance(inner, list) and inner and all(isinstance(item, dict) for item in inner):
        return inner
    if isinstance(inner, dict) and ("event" in inner or "type" in inner):
        return [inner]
    return None


class RecurlyEngageAdapter(GuardedAdapter):
    provider: ClassVar[str] = "recurly_engage"
    version: ClassVar[str] = "4"

    def _adapt(self, envelope: Envelope) -> AdaptResult:
        try:
            batches = _batches(envelope)
        except BodyError as error:
            return AdaptResult(failures=[Failure(error.reason, error.detail)])
        items: list[Any] = []
        for batch in batches:
            if isinstance(batch, list):
                items.extend(batch)
            elif isinstance(batch, dict):
                wrapped = _wrapped_events(batch)
                items.extend([batch] if wrapped is None else wrapped)
            else:
                return AdaptResult(failures=[Failure("not_a_batch", f"body is a JSON {json_kind(batch)}")])
        return map_events(envelope, enumerate(items), [])
