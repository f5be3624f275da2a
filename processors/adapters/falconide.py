"""Falconide (Netcore/Pepipost) webhook posts to canonical events: one event per flat upper-case object.

Guarantees: ``adapt`` never raises; an unreadable body is one failure and no events; a batch item that is
not an object (or cannot be mapped) is a failure with its index while the rest still comes out; every event
comes out (unmapped ``EVENT`` values as ``unknown``); TRANSID is kept as its exact decimal string, in
``message.message_id`` and in ``data.raw``; every returned event serialises with orjson. Falconide never
retries, so nothing readable is refused.

Body shapes, decided by content rather than the Content-Type label (PHP senders mislabel both ways):
- text starting with ``[`` or ``{`` (after whitespace) is JSON: an array (a comma before its ``]`` allowed),
  a single object, or the guide's bracket-less ``{...},{...},`` with any commas and whitespace between the
  objects, none included (``parse_json_lenient``); ``[]`` is the verification POST (no events); an object
  with one key, not a parameter's name, whose value is an array of objects (``{"data": [...]}``, also
  ``{"data": []}``) is that batch, as the form of one such field is, and one whose value is an object with
  a parameter's name (``{"data": {"EVENT": ...}}``) that single event;
- anything else is a form: the fields of one event when a field has the name of one of the guide's
  parameters (EVENT, TRANSID, EMAIL, TIMESTAMP, RESPONSE, X-APIHEADER, ...; any case), else exactly one
  field (any name) whose value is that JSON, URL-encoded or raw
  (``data=[{...}]``, read as it is, first or last: ``X-APIHEADER=ACC1&data=[{...}]``); otherwise
  ``unrecognised_body``. A form of one field named like a
  parameter (``event=[{...}]``) whose value reads as JSON objects is that batch too, except X-APIHEADER
  (a sender's string, JSON-looking or not). A form with parameters but no EVENT beside one field of event
  objects (``data=[{...}]&X-APIHEADER=ACC1``) is that batch, each event taking the parameters it lacks.
  Unencoded whitespace around a form (a trailing newline) is
  no part of its last value. A form whose names use PHP's array syntax is read as PHP's ``$_POST`` reads it:
  ``TAGS[]=a&TAGS[]=b`` is one field holding a list (not a name given twice), and the batch may be the form
  itself (``0[EVENT]=sent&1[EVENT]=opened``) or one field (``data[0][EVENT]=sent``, ``data[]=[{...}]``;
  ``data[EVENT]=sent`` one event), its events in numeric index order. A multipart/form-data body (what a
  PHP relay's ``$_POST`` also reads) is taken apart the same way.
- A HEAD or GET without a body is the URL check (no events, no failure); an empty POST is ``empty_body``.

Decisions where the docs leave room:
- Field names are matched ignoring case (the webhook API names its params in lower case) and spaces, ``_``,
  ``-`` and ``.`` (the guide's table writes ``BOUNCE TYPE``, ``FROM ADDRESS``; PHP's ``$_POST`` turns spaces
  and dots into ``_``; ``X-APIHEADER`` is also called ``XAPI-HEADER``).
- A bare-number TRANSID (and X-APIHEADER) is written into ``data.raw`` as its decimal string too (the parser
  already gives digit strings above 2^53; below, ``str()``), so raw and message_id agree and ``"1"`` and ``1``
  fingerprint alike (Falconide has no event id: the canonical id is a fingerprint of raw). A bare float
  header keeps its value, not its spelling (``12.50`` becomes ``"12.5"``).
- ``NA`` (the docs' "not applicable") in RESPONSE, USERAGENT, IPADDRESS, URL, BOUNCE_REASON means absent.
- dropped: reject_reason ``unsubscribed`` when RESPONSE speaks only of unsubscribing, else ``blocked`` (the
  documented ``Blacklisted user / Already unsubscribed`` cannot tell which, and blocked is the general
  suppression reason); invalid -> ``invalid``; bounced -> ``bounced``.
- ``unsub`` (the API's action name) is read as unsubscribed, ``spam`` (Netcore's older name) as abuse, and
  ``delivered`` (the name Netcore's support article gives sent: "Message has been delivered") as sent.
- ``bounce`` (the delivery diagnosis) is set on bounced and rejected events: severity from BOUNCE_TYPE
  (HARDBOUNCE/SOFTBOUNCE, also HARD/SOFT; spacing, ``_``, ``-`` and case ignored; else undetermined) on
  bounces, class_code =
  BOUNCE_REASONID, reason = BOUNCE_REASON else RESPONSE, SMTP codes parsed from RESPONSE and BOUNCE_REASON.
- metadata ``{"X-APIHEADER": ...}`` holds the sender's header exactly as sent (a string stays that string,
  a bare number becomes its decimal string); TAGS is split on commas; RCPTID, CLIENTID, MSIZE stay in raw.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, ClassVar
from urllib.parse import unquote_plus

from espwire.envelope import Envelope
from espwire.event import CanonicalEvent
from processors.adapters.base import AdaptResult, Failure, GuardedAdapter
from processors.adapters.fields import (
    as_identity,
    as_str,
    as_str_list,
    epoch_or_time,
    failure_from,
    json_kind,
    keep_encodable,
    parse_form,
    smtp_codes,
)
from processors.adapters.json_body import BodyError, decode_text, parse_json_lenient
from processors.adapters.php_form import parse_multipart_form, parse_php_form
from processors.normalize import build_event

_TYPES: dict[str, str] = {
    "sent": "email.delivered",
    "delivered": "email.delivered",
    "dropped": "email.rejected",
    "invalid": "email.rejected",
    "bounced": "email.bounced",
    "opened": "email.opened",
    "clicked": "email.clicked",
    "unsubscribed": "email.unsubscribed",
    "unsub": "email.unsubscribed",
    "abuse": "email.complained",
    "spam": "email.complained",
}
_SEVERITIES = {"HARDBOUNCE": "hard", "SOFTBOUNCE": "soft", "HARD": "hard", "SOFT": "soft"}
# A form field whose value is raw (not URL-encoded) JSON: its name, at the start or after an ``&``.
_RAW_JSON_FIELD = re.compile(r"(?:^|&)([^=&]+)=\s*(?=[\[{])")
_RAW_JSON_TRIES = 4
# The guide's parameters (and the fields its samples carry), as ``_field_key`` writes them: a form with any
# of them is one event's fields, never a batch hidden in one of its values (a custom webhook may be set to
# send only some of them).
_FLAT_FORM_KEYS = frozenset(
    {
        "EVENT", "TRANSID", "EMAIL", "RCPTID", "TIMESTAMP", "RESPONSE", "XAPIHEADER", "USERAGENT", "IPADDRESS",
        "SUBJECT", "FROMADDRESS", "URL", "BOUNCETYPE", "BOUNCEREASON", "BOUNCEREASONID", "TAGS", "SIZE", "MSIZE",
        "CLIENTID",
    }
)  # fmt: skip
_API_HEADER = "XAPIHEADER"
# A form field named in PHP's array syntax (``TAGS[]``, ``data[0][EVENT]``), its bracket raw or encoded.
_ARRAY_FIELD = re.compile(r"(?:^|&)[^=&]*(?:\[|%5B)", re.IGNORECASE)
_TEXT_IN_RAW = frozenset({"TRANSID", _API_HEADER})
_SEPARATORS = str.maketrans("", "", " _-.")
_NOT_APPLICABLE = "NA"


# A batch repeats the same dozen names: each is written once (as Pure360's field_key is).
@lru_cache(maxsize=4096)
def _field_key(name: str) -> str:
    """A field's lookup key: upper case without separators (``bounce type``, ``BOUNCE_TYPE`` -> ``BOUNCETYPE``)."""
    return name.translate(_SEPARATORS).upper()


class FalconideAdapter(GuardedAdapter):
    provider: ClassVar[str] = "falconide"
    version: ClassVar[str] = "4"

    def _adapt(self, envelope: Envelope) -> AdaptResult:
        if envelope.method in ("HEAD", "GET") and not envelope.body.strip():
            return AdaptResult()  # the URL check made when the webhook is saved
        try:
            items = event_objects(envelope.body, envelope.content_type)
        except BodyError as error:
            return AdaptResult(failures=[Failure(error.reason, error.detail)])
        indexed: list[tuple[int, CanonicalEvent]] = []
        failures: list[Failure] = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                failures.append(Failure("invalid_event", f"batch item is a JSON {json_kind(item)}", index))
                continue
            try:
                indexed.append((index, _event(envelope, item)))
            except Exception as exc:  # one odd item must not cost the rest of the batch
                failures.append(failure_from(exc, item, index))
        return keep_encodable(indexed, failures)


def event_objects(body: bytes, content_type: str = "") -> list[Any]:
    """The batch items of any body shape Falconide (or a PHP relay in front of it) sends."""
    text = decode_text(body)
    start = text.lstrip()[:1]
    if not start:
        raise BodyError("empty_body", "no content")
    if start in ("[", "{"):
        value = parse_json_lenient(body)  # the bytes, not the text: well-formed JSON then takes the fast path
    else:
        # A PHP relay's $_POST is filled from multipart/form-data as from a urlencoded form.
        multipart = parse_multipart_form(body, content_type)
        value = _from_form(text) if multipart is None else _from_fields(multipart)
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        batch = _wrapped_batch(value)
        return [value] if batch is None else batch
    raise BodyError("not_a_batch", f"body is a JSON {json_kind(value)}")


def _wrapped_batch(value: dict[str, Any]) -> list[Any] | None:
    """The batch of ``{"data": [{...}, ...]}`` (one key, not a parameter's name), as JSON; None for an event."""
    if len(value) != 1:
        return None
    ((name, inner),) = value.items()
    if _field_key(name) in _FLAT_FORM_KEYS:
        return None
    if isinstance(inner, list):
        return inner if all(isinstance(item, dict) for item in inner) else None
    # {"data": {...}}: one event in the wrapper, as ``data={...}`` is one in a form field.
    return [inner] if isinstance(inner, dict) and _names_a_parameter(inner) else None


def _names_a_parameter(fields: dict[str, Any]) -> bool:
    return any(_field_key(name) in _FLAT_FORM_KEYS for name in fields)


def _from_form(text: str) -> Any:
    # ``data=[{...}]`` posted without URL-encoding: the ``&`` of a URL or the ``+`` of a user agent in the
    # JSON would split or change it as a form, so the raw value is read first. An encoded value starts
    # with %5B or %7B, never with the bracket itself, so this never misreads a well-formed form.
    # Unencoded whitespace belongs to no field (it would be + or %20): a trailing newline is the sender's.
    text = text.strip()
    # Each try reads the rest of the body: a few, so that a hostile form of many ``a=[`` stays linear.
    for raw_field, _ in zip(_RAW_JSON_FIELD.finditer(text), range(_RAW_JSON_TRIES), strict=False):
        value = text[raw_field.end() :]
        key = _field_key(unquote_plus(raw_field.group(1)).strip())
        try:
            if raw_field.start() > 0:
                # After other fields (``X-APIHEADER=ACC1&data=[{...}]``): the last field, when its value is
                # JSON up to the end; the fields before it are read as a form, and the whole as any form is.
                parse_json_lenient(value)
                fields = _form_fields(text[: raw_field.start()])
                name = unquote_plus(raw_field.group(1))
                if name in fields:
                    raise BodyError("duplicate_keys", f"form field {name[:64]!r} appears twice")
                return _from_fields({**fields, name: value})
            if key not in _FLAT_FORM_KEYS:
                return parse_json_lenient(value)
            if key != _API_HEADER:
                return _batch_in(value)
        except BodyError as error:
            if error.reason != "invalid_json":
                raise
            # not JSON up to the end (``data=[]&submit=Send``): a later field, or the form reading below decides
    return _from_fields(_form_fields(text))


def _form_fields(text: str) -> dict[str, Any]:
    """A urlencoded form's fields. Names in PHP's array syntax (``TAGS[]=a&TAGS[]=b``, ``data[0][EVENT]=sent``)
    are read as PHP's ``$_POST`` reads them, as a multipart form's already are (a name given twice is then no
    longer ambiguous); any other form is flat, a name given twice refused (``duplicate_keys``)."""
    return parse_php_form(text) if _ARRAY_FIELD.search(text) else parse_form(text)


def _batch_in(value: str) -> list[Any] | dict[str, Any]:
    """The batch in the one field of a form named like a parameter (``event=[{...}]``); BodyError
    ``invalid_json`` when the value is not JSON objects, so that the form is read as one event's fields."""
    try:
        batch = parse_json_lenient(value)
    except BodyError:
        batch = None  # any refusal: a parameter's own value that merely starts with a bracket
    items = batch if isinstance(batch, list) else [batch]
    if not isinstance(batch, list | dict) or not all(isinstance(item, dict) for item in items):
        raise BodyError("invalid_json", "the field's value is not JSON objects")
    return batch


def _looks_like_json(value: object) -> bool:
    return isinstance(value, str) and value.lstrip()[:1] in ("[", "{")


def _from_fields(fields: dict[str, Any]) -> Any:
    """A form's fields: those of one event, or the batch in its one JSON-valued field."""
    keys = [_field_key(name) for name in fields]
    if len(keys) == 1 and keys[0] in _FLAT_FORM_KEYS and keys[0] != _API_HEADER:
        (value,) = fields.values()
        if _looks_like_json(value):
            try:
                return _batch_in(value)
            except BodyError:
                return fields
    if any(key in _FLAT_FORM_KEYS for key in keys):
        batch = _batch_beside_parameters(fields, keys)
        return fields if batch is None else batch
    # PHP's array syntax makes the form the batch itself (``0[EVENT]=sent&1[EVENT]=opened``) or nests it in
    # a field (``data[0][EVENT]=sent``), as a JSON value would be in one (``data=[{...}]``).
    nested = _nested_events(fields) if all(_is_index(name) for name in fields) else None
    if nested is not None:
        return nested
    json_values = [value for value in fields.values() if _looks_like_json(value)]
    if len(json_values) == 1:
        return parse_json_lenient(json_values[0])
    arrays = [value for value in fields.values() if isinstance(value, dict | list)]
    nested = _nested_events(arrays[0]) if not json_values and len(arrays) == 1 else None
    if nested is not None:
        return nested
    raise BodyError("unrecognised_body", f"neither JSON nor a Falconide form ({len(fields)} form fields)")


def _batch_beside_parameters(fields: dict[str, Any], keys: list[str]) -> list[dict[str, Any]] | None:
    """``data=[{...}]&X-APIHEADER=ACC1``: a form with some of the guide's parameters but no EVENT of its own,
    beside one other field holding event objects (each with its EVENT). That field is the batch and the
    parameters go with each of its events where the event lacks them, so that neither the events nor the
    parameters' values are lost (read as one event's fields, the batch would be one ``unknown`` event).
    None for any other form."""
    if "EVENT" in keys:
        return None
    entries = list(zip(keys, fields.items(), strict=True))
    others = [value for key, (_, value) in entries if key not in _FLAT_FORM_KEYS]
    # A JSON value first (``data=[{...}]``), else an array of PHP's syntax (``data[0][EVENT]=sent``).
    candidates = [value for value in others if _looks_like_json(value)] or [
        value for value in others if isinstance(value, dict | list)
    ]
    if len(candidates) != 1:
        return None
    try:
        batch = _batch_in(candidates[0]) if isinstance(candidates[0], str) else _nested_events(candidates[0])
    except BodyError:
        return None
    if batch is None:
        return None
    items = batch if isinstance(batch, list) else [batch]
    items_keys = [{_field_key(name) for name in item} for item in items]
    if not items or not all("EVENT" in item_keys for item_keys in items_keys):
        return None
    shared = [(key, name, value) for key, (name, value) in entries if key in _FLAT_FORM_KEYS]
    return [
        {**item, **{name: value for key, name, value in shared if key not in item_keys}}
        for item, item_keys in zip(items, items_keys, strict=True)
    ]


def _is_index(name: str) -> bool:
    return name.isascii() and name.isdigit()


def _nested_events(value: Any) -> list[Any] | None:
    """The events of a form value nested by PHP's array syntax: a list or an index-keyed array of events
    (``data[0][EVENT]=sent``, in index order) or of JSON values (``data[]=[{...}]``), or one event's fields
    (``data[EVENT]=sent``); None for anything else. A JSON value's own refusal (duplicate keys ...) is raised."""
    if isinstance(value, dict):
        if not value or not all(_is_index(name) for name in value):
            return [value] if _names_a_parameter(value) else None
        # Compared as (length, text): numeric order without int() on a hostile 100,000-digit index.
        entries = [entry for _, entry in sorted(value.items(), key=lambda item: (len(item[0]), item[0]))]
    elif isinstance(value, list):
        entries = value
    else:
        return None
    events: list[Any] = []
    for entry in entries:
        if isinstance(entry, dict):
            events.append(entry)
        elif _looks_like_json(entry):
            parsed = parse_json_lenient(entry)
            items = parsed if isinstance(parsed, list) else [parsed]
            if not all(isinstance(item, dict) for item in items):
                return None
            events.extend(items)
        else:
            return None
    return events


def _present(value: object) -> str | None:
    text = as_str(value)
    return None if text is None or text.strip() == _NOT_APPLICABLE else text


def _event(envelope: Envelope, item: dict[str, Any]) -> CanonicalEvent:
    # Names as lookup keys; the item itself stays as sent, in raw.
    fields = {_field_key(name): value for name, value in item.items()}
    get = fields.get

    # TRANSID and X-APIHEADER sent as bare numbers go into raw as their decimal strings, as the fixtures'
    # ``preserved`` rule asks of both (the parser already gives digit strings above 2^53).
    texts = {
        name: text
        for name, value in item.items()
        if isinstance(value, int | float) and _field_key(name) in _TEXT_IN_RAW and (text := as_str(value)) is not None
    }
    raw = {**item, **texts} if texts else item
    message_id = as_str(get("TRANSID"))

    event_name = get("EVENT")
    provider_type = event_name if isinstance(event_name, str) else (as_str(event_name) or "")
    key = provider_type.strip().lower()
    canonical = _TYPES.get(key, "unknown")

    response = _present(get("RESPONSE"))
    bounce = None
    reject_reason = None
    if canonical == "email.bounced":
        bounce_reason = _present(get("BOUNCEREASON"))
        status, enhanced = smtp_codes(response, bounce_reason)
        bounce_type = as_str(get("BOUNCETYPE"))
        severity_key = "".join(bounce_type.split()).replace("_", "").replace("-", "").upper() if bounce_type else ""
        bounce = {
            "severity": _SEVERITIES.get(severity_key, "undetermined"),
            "class_code": _present(get("BOUNCEREASONID")),
            "smtp_status": status,
            "enhanced_status": enhanced,
            "reason": bounce_reason or response,
        }
        reject_reason = "bounced"
    elif canonical == "email.rejected":
        if key == "invalid":
            reject_reason = "invalid"
        else:
            said = (response or "").lower()
            only_unsubscribed = "unsubscri" in said and not any(
                word in said for word in ("blacklist", "blocklist", "bounce", "spam", "abuse", "complain")
            )
            reject_reason = "unsubscribed" if only_unsubscribed else "blocked"
        if response:
            status, enhanced = smtp_codes(response)
            bounce = {"smtp_status": status, "enhanced_status": enhanced, "reason": response}

    api_header = get(_API_HEADER)
    if api_header is not None and not isinstance(api_header, dict | list):
        api_header = as_str(api_header)
    url = _present(get("URL"))
    email = as_identity(get("EMAIL"))

    return build_event(
        envelope,
        type=canonical,
        provider_event_type=provider_type,
        raw=raw,
        # Unix seconds only (the fixtures' rule: anything else null), so a millisecond count is no time.
        occurred_at=epoch_or_time(get("TIMESTAMP"), allow_iso=False, allow_millis=False),
        recipient={"email": email},
        subject=email,
        message={
            "message_id": message_id,
            "subject": as_str(get("SUBJECT")),
            "from": as_str(get("FROMADDRESS")),
        },
        link={"url": url} if url else None,
        bounce=bounce,
        reject_reason=reject_reason,
        client={"user_agent": _present(get("USERAGENT")), "ip": _present(get("IPADDRESS"))},
        tags=as_str_list(get("TAGS"), ","),
        metadata={"X-APIHEADER": api_header},
    )
