"""iPost Firehose (one JSON object per POST, or an array of them) to canonical events; never raises.

The body is read as JSON whatever its Content-Type says (the Firehose labels it form-urlencoded when
the endpoint is a PHP script), and iPost's invalid bare numbers with leading zeros (``"mailing_id": 000001``)
are kept as their digit strings, in ``data.raw`` too.

Decisions where the Firehose documentation says nothing:
- ``event_time`` is documented only as placeholders (``view_time``); accepted are epoch seconds (number or
  digit string), ISO 8601 with ``Z`` or an offset, and ``YYYY-MM-DD HH:MM:SS`` in the source's
  ``options["timezone"]`` (UTC by default). Anything else, a millisecond count and date-only values
  included, is null (``time_source: received``) rather than a guessed instant (the fixtures' rule:
  "anything else null").
- ``event_name`` is matched case-insensitively; an unmapped name is ``unknown``. An object with no
  ``event_name`` at all is a Failure (``invalid_event``), not an event, since nothing says what happened.
- The recipient and subject are ``contact.email`` only: iPost events are email events, so ``mobile`` is
  kept as ``recipient.phone`` but never names the subject.
- ``reject_reason`` is set on bounces only (``bounced``), as django-anymail does.
- ``metadata`` holds every ``event_properties`` key not mapped to a canonical field (order_id, totals,
  automation_*, opt_out_reason ...); other top-level keys stay in ``data.raw`` only.
"""

from __future__ import annotations

import re
from datetime import tzinfo
from typing import Any, ClassVar

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
from processors.adapters.json_body import BodyError, parse_json_lenient
from processors.normalize import build_event
from processors.timestamps import parse_time, zone

EVENT_TYPES: dict[str, str] = {
    "click": "email.clicked",
    "open": "email.opened",
    "complaint": "email.complained",
    "send": "email.sent",
    "bounce": "email.bounced",
    "optout": "email.unsubscribed",
    "conversion": "commerce.converted",
}
BOUNCE_SEVERITY: dict[str, str] = {"hard": "hard", "soft": "soft"}

# event_properties keys that land in a canonical field (everything else goes to metadata).
_MAPPED_PROPERTIES = frozenset(
    {
        "mailing_id",
        "subject",
        "from_email",
        "campaign_name",
        "click_link_content",
        "click_link_name",
        "device",
        "operating_system",
        "browser",
        "email_client",
    }
)
# A date-and-time string, ISO 8601 extended or basic (``20261120T080140Z``), ``T`` in either case as RFC 3339
# allows; fromisoformat alone would also turn "2026-11-20" into midnight, an instant iPost never sent.
_DATE_TIME = re.compile(r"\s*\d{4}(?:-\d{2}-\d{2}[Tt ]\d{2}:\d{2}|\d{4}[Tt]\d{4})")


def event_time(value: Any, naive_zone: tzinfo) -> str | None:
    """``event_time`` to RFC 3339 UTC: epoch seconds, ISO 8601, or ``YYYY-MM-DD HH:MM:SS`` in ``naive_zone``;
    anything else (a millisecond count too, as the fixtures' rules say) is no time."""
    if isinstance(value, str) and _DATE_TIME.match(value):
        return parse_time(value, naive_zone)  # None outside 1990-2100, where year 1 or 9999 would overflow
    return epoch_or_time(value, allow_iso=False, allow_millis=False)


def ipost_event(envelope: Envelope, item: dict[str, Any], naive_zone: tzinfo) -> CanonicalEvent:
    """One Firehose object to one canonical event; raises BodyError when it names no event."""
    name = as_str(item.get("event_name"))
    if name is None:
        raise BodyError("invalid_event", "object has no event_name")
    canonical = EVENT_TYPES.get(name.strip().lower(), "unknown")
    props = as_dict(item.get("event_properties")) or {}
    contact = as_dict(item.get("contact")) or {}
    email = as_identity(contact.get("email"))
    get = props.get
    bounce: dict[str, Any] | None = None
    reject_reason: str | None = None
    metadata = {k: v for k, v in props.items() if k not in _MAPPED_PROPERTIES}
    if canonical == "email.bounced":
        bounce_type = as_str(get("bounce_type")) or ""
        bounce = {"severity": BOUNCE_SEVERITY.get(bounce_type.strip().lower(), "undetermined")}
        reject_reason = "bounced"
        metadata.pop("bounce_type", None)
    return build_event(
        envelope,
        type=canonical,
        provider_event_type=name,
        raw=item,
        occurred_at=event_time(item.get("event_time"), naive_zone),
        recipient={
            "email": email,
            "phone": as_str(contact.get("mobile")),
            "contact_id": as_str(contact.get("contact_id")),
        },
        subject=email,
        message={
            "mailing_id": as_str(get("mailing_id")),
            "subject": as_str(get("subject")),
            "from": as_str(get("from_email")),
        },
        campaign={"name": as_str(get("campaign_name"))},
        link={"url": as_str(get("click_link_content")), "name": as_str(get("click_link_name"))},
        client={
            "device": as_str(get("device")),
            "os": as_str(get("operating_system")),
            "browser": as_str(get("browser")),
            "email_client": as_str(get("email_client")),
        },
        bounce=bounce,
        reject_reason=reject_reason,
        metadata=metadata,
    )


class IPostAdapter(GuardedAdapter):
    provider: ClassVar[str] = "ipost"
    version: ClassVar[str] = "3"

    def _adapt(self, envelope: Envelope) -> AdaptResult:
        try:
            body = parse_json_lenient(envelope.body)
        except BodyError as error:
            return AdaptResult(failures=[Failure(error.reason, error.detail)])
        if isinstance(body, dict):
            body = [body]
        if not isinstance(body, list):
            return AdaptResult(failures=[Failure("not_a_batch", f"body is a JSON {json_kind(body)}")])
        naive_zone = zone(as_str(envelope.options.get("timezone")))
        indexed: list[tuple[int, CanonicalEvent]] = []
        failures: list[Failure] = []
        for index, item in enumerate(body):
            if not isinstance(item, dict):
                failures.append(Failure("invalid_event", f"batch item is a JSON {json_kind(item)}", index))
                continue
            try:
                indexed.append((index, ipost_event(envelope, item, naive_zone)))
            except BodyError as error:
                failures.append(Failure(error.reason, error.detail, index))
            except Exception as exc:  # one odd object must not cost the rest of the batch
                failures.append(failure_from(exc, item, index))
        return keep_encodable(indexed, failures)
