"""Pure360 event notifications (HTTP POST of PHP-style form fields) to canonical events; never raises.

``notification_event`` maps one notification's fields whatever channel brought them (this HTTP adapter,
the FTP log in ``pure360_ftp``), so every channel gives the same event for the same notification.

Decisions where the Pure360 documentation says nothing:
- Standard field names are matched ignoring case, ``_``, ``-`` and whitespace (``Event_date``, ``EVENT_DATE``,
  FTP ``event date``; ``messageName``, ``Message_Name``); the first spelling with a value wins (an empty
  ``email=`` does not hide a later ``Email=a@x.com``), else the first spelling.
- Raw line breaks in a urlencoded body separate fields like ``&``: Pure360's documentation lays the
  POST body out one field a line (``type=OPEN&<newline>Event_date=...``, once without the ``&``), and an
  encoder never writes a raw line break inside a value (it is ``%0A``).
- Every field not mapped to a canonical field (custom list fields, ``List_Names``, ``profile``, unused
  dates, ``notificationSubject`` - which may be the notification's subject rather than the campaign's)
  goes to ``metadata`` under its name as sent. ``data.raw`` is the notification's decoded fields.
- Dates are unix seconds (milliseconds above 10^11); DELIVERYSTART uses ``Delivery_Start_Date``, DELIVERY
  ``Delivery_Complete_Date``, falling back to ``Event_date`` when those are absent; anything else is null.
- Several notifications in one POST (``event[<index>][<field>]``, a designed extension; ``Event[..]`` in
  any casing) come out in numeric index order, non-numeric indices after them in body order; a wrapper with
  a ``type`` of its own (``event[type]=OPEN&event[email]=...``) is one notification. A form that
  has a ``type`` field is one notification even if it also has a custom field named ``event``.
- The body is UTF-8 (raw or percent-encoded). Only when it is not, a charset declared in the Content-Type
  (``ISO-8859-1``, ``windows-1252``: PHP pages that are not UTF-8) is tried before ``invalid_utf8``.
- The "POST data array" may also come as multipart/form-data (PHP's curl with an array); such a body is
  only looked at as multipart when reading it as a urlencoded form gave no event.
- The type is matched ignoring case and surrounding spaces; ``provider_event_type`` keeps it unchanged.
  A notification without a type is a Failure (``invalid_event``): nothing says what happened.
- Recipient: ``email``; for SMS types ``mobile`` when there is no email (in both, the space a form makes of a
  raw ``+`` is a ``+`` again: Pure360 writes values as they are, spaces as ``%20``, and no address has a
  space); campaign-level events (DELIVERYSTART, DELIVERY) name nobody. ``Delivery_ID`` is
  ``message.mailing_id``, the message name ``campaign.name``. Bounces get ``reject_reason`` bounced
  (blocked for BLOCKED) and the SMTP codes found at the start of ``Bounce_Reason``.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode

from espwire.envelope import Envelope
from espwire.event import CanonicalEvent
from processors.adapters.base import AdaptResult, Failure, GuardedAdapter
from processors.adapters.fields import epoch_or_time, json_kind, keep_encodable, smtp_codes
from processors.adapters.json_body import BodyError
from processors.adapters.php_form import MAX_FIELDS, parse_multipart_form, parse_php_form
from processors.normalize import build_event

EVENT_TYPES: dict[str, str] = {
    "DELIVERYSTART": "campaign.started",
    "DELIVERY": "campaign.sending",
    "OPEN": "email.opened",
    "CLICK": "email.clicked",
    "BOUNCE": "email.bounced",
    "SOFTBOUNCE": "email.bounced",
    "BLOCKED": "email.bounced",
    "OPTIN": "email.subscribed",
    "OPTOUT": "email.unsubscribed",
    "SMSOPTOUT": "sms.unsubscribed",
    "SMSFAILED": "sms.failed",
}
BOUNCE_SEVERITY: dict[str, str] = {"BOUNCE": "hard", "SOFTBOUNCE": "soft", "BLOCKED": "block"}
_CAMPAIGN_LEVEL = frozenset({"DELIVERYSTART", "DELIVERY"})
_SMS = frozenset({"SMSOPTOUT", "SMSFAILED"})
_DATE_FIELD: dict[str, str] = {"DELIVERYSTART": "deliverystartdate", "DELIVERY": "deliverycompletedate"}
_CHARSET = re.compile(r";\s*charset\s*=\s*\"?([\w.:-]+)", re.IGNORECASE)
_LINE_BREAKS = re.compile(rb"[\r\n]+")
_NOT_IN_KEY = re.compile(r"[\s_-]+")


@lru_cache(maxsize=4096)
def field_key(name: str) -> str:
    """``Event_date`` / ``EVENT_DATE`` / ``event date`` -> ``eventdate``."""
    return _NOT_IN_KEY.sub("", name.lower())


class _Fields:
    """Case-insensitive access to one notification's standard fields; remembers which it used."""

    __slots__ = ("by_key", "fields", "used")

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self.fields = fields
        self.by_key: dict[str, str] = {}
        for name, value in fields.items():
            if isinstance(value, str):
                key = field_key(name)
                known = self.by_key.get(key)
                # A blank spelling gives way to a later one with a value (a custom field of the same name).
                if known is None or (not fields[known].strip() and value.strip()):
                    self.by_key[key] = name
        self.used: set[str] = set()

    def take(self, key: str) -> str | None:
        name = self.by_key.get(key)
        if name is None:
            return None
        self.used.add(name)
        value: str = self.fields[name].strip()
        return value or None

    def take_address(self, key: str) -> str | None:
        """An email address or a mobile number, with the ``+`` a form decodes to a space restored: Pure360
        writes values as sent (``email=test@test.com``) and its spaces as ``%20``, so the space in
        ``a b@x.com`` or `` 447700900555`` was a ``+`` (``a+b@x.com``, ``+447700900555``); neither holds one."""
        name = self.by_key.get(key)
        if name is None:
            return self.take(key)
        value: str = self.fields[name]
        if key == "email":
            value = value.strip().replace(" ", "+")
        elif value[:1] == " " and value[1:2].isdigit():
            value = "+" + value[1:]
        self.used.add(name)
        return value.strip() or None

    def rest(self) -> dict[str, Any]:
        return {k: v for k, v in self.fields.items() if k not in self.used}


def notification_event(envelope: Envelope, notification: Mapping[str, Any]) -> CanonicalEvent:
    """One notification's fields (HTTP form or FTP log line) to one canonical event.

    Raises BodyError when the notification has no type.
    """
    fields = _Fields(notification)
    type_name = fields.by_key.get("type")
    raw_type: str = notification[type_name] if type_name is not None else ""
    fields.take("type")
    kind = raw_type.strip().upper()
    if not kind:
        raise BodyError("invalid_event", "notification has no type field")
    canonical = EVENT_TYPES.get(kind, "unknown")

    date = fields.take(_DATE_FIELD[kind]) if kind in _DATE_FIELD else None
    if date is None:
        date = fields.take("eventdate")

    email: str | None = None
    phone: str | None = None
    if kind not in _CAMPAIGN_LEVEL:
        email = fields.take_address("email")
        phone = fields.take_address("mobile")

    bounce: dict[str, Any] | None = None
    reject_reason: str | None = None
    if kind in BOUNCE_SEVERITY:
        reason = fields.take("bouncereason")
        smtp_status, enhanced_status = smtp_codes(reason)
        bounce = {
            "severity": BOUNCE_SEVERITY[kind],
            "reason": reason,
            "smtp_status": smtp_status,
            "enhanced_status": enhanced_status,
        }
        reject_reason = "blocked" if kind == "BLOCKED" else "bounced"

    return build_event(
        envelope,
        type=canonical,
        provider_event_type=raw_type,
        raw=notification,
        occurred_at=epoch_or_time(date, allow_iso=False),
        recipient={"email": email, "phone": phone},
        subject=email or (phone if kind in _SMS else None),
        message={"mailing_id": fields.take("deliveryid")},
        campaign={"name": fields.take("messagename")},
        link={"url": fields.take("clickurl"), "name": fields.take("clickname")},
        client={
            "device": fields.take("devicetype"),
            "os": fields.take("deviceos"),
            "browser": fields.take("devicebrowser"),
        },
        bounce=bounce,
        reject_reason=reject_reason,
        metadata=fields.rest(),
    )


def map_notifications(
    envelope: Envelope, notifications: Iterable[tuple[int, Any]], failures: list[Failure]
) -> AdaptResult:
    """Events for (index, fields) pairs; a notification that cannot be mapped is a failure with its index."""
    indexed: list[tuple[int, CanonicalEvent]] = []
    for index, notification in notifications:
        if not isinstance(notification, dict):
            failures.append(Failure("invalid_event", f"notification is a {json_kind(notification)}", index))
            continue
        try:
            indexed.append((index, notification_event(envelope, notification)))
        except BodyError as error:
            failures.append(Failure(error.reason, error.detail, index))
        except Exception as exc:  # one odd notification must not cost the rest of the batch
            failures.append(Failure("adapter_error", repr(exc)[:500], index))
    return keep_encodable(indexed, failures)


def _is_index(key: str) -> bool:
    return key.isascii() and key.isdigit() and (key == "0" or key[0] != "0")


def notifications(form: dict[str, Any]) -> list[Any]:
    """The notifications in a decoded form: ``event[i]`` entries in index order, else the form itself.

    The wrapper's casing varies like the standard fields' (``Event[0][type]``), also within one post:
    every top-level key that is ``event`` in some casing contributes its entries, in one index order
    (equal indices in the order the wrappers came), so none is dropped. A wrapper with a ``type`` of its own
    (``event[type]=OPEN&event[email]=...``) is one notification, placed with the non-numeric entries.
    """
    batches = [value for key, value in form.items() if key.lower() == "event" and isinstance(value, dict | list)]
    if not batches or any(field_key(k) == "type" for k in form):
        return [form]
    if len(batches) == 1 and isinstance(batches[0], list):
        return list(batches[0])
    numbered: list[tuple[int, str, Any]] = []
    named: list[Any] = []
    for batch in batches:
        if isinstance(batch, dict) and any(field_key(k) == "type" for k in batch):
            named.append(batch)  # ``event[type]=OPEN&event[email]=...``: one notification, not a list of them
            continue
        for key, value in enumerate(batch) if isinstance(batch, list) else batch.items():
            index = str(key)
            if _is_index(index):
                # Compared as (length, text): numeric order without int() on a hostile 100,000-digit index.
                numbered.append((len(index), index, value))
            else:
                named.append(value)
    numbered.sort(key=lambda entry: entry[:2])  # stable: equal indices stay in the order the wrappers came
    return [entry[2] for entry in numbered] + named


def _transcoded(body: bytes, content_type: str) -> str | None:
    """The form re-encoded as UTF-8 when its Content-Type declares another ASCII-based charset (a PHP page
    served as ISO-8859-1 posts ``%E9``); None when none is declared or the body is not in it either."""
    match = _CHARSET.search(content_type)
    if match is None:
        return None
    try:
        charset = codecs.lookup(match.group(1)).name
        # UTF-8 already failed; a charset that does not write ASCII as itself (UTF-16, base64) is no form.
        if charset == "utf-8" or "=&".encode(charset) != b"=&":
            return None
        pairs = parse_qsl(
            body.decode(charset).strip(),
            keep_blank_values=True,
            encoding=charset,
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except (LookupError, UnicodeError):
        return None
    except ValueError:
        raise BodyError("too_many_fields", f"more than {MAX_FIELDS} form fields") from None
    return urlencode(pairs)


def _one_field_a_line(body: bytes, content_type: str) -> bytes:
    """The body with raw line breaks as ``&``; a multipart body keeps them (they delimit its parts)."""
    if (b"\n" not in body and b"\r" not in body) or content_type.lower().startswith("multipart/"):
        return body
    # CR and LF bytes never occur inside a UTF-8 sequence (nor in the ASCII-based charsets _transcoded takes).
    # Outer ones are stripped first, so that a blank body stays empty instead of becoming "&".
    return _LINE_BREAKS.sub(b"&", body.strip())


def read_form(envelope: Envelope) -> dict[str, Any]:
    """The request's form; a body that is not UTF-8 is read in the charset its Content-Type declares."""
    body = _one_field_a_line(envelope.body, envelope.content_type)
    try:
        return parse_php_form(body)
    except BodyError as error:
        # Only a body that failed as UTF-8 pays for the charset look-up.
        text = _transcoded(body, envelope.content_type) if error.reason == "invalid_utf8" else None
        if text is None:
            raise
    return parse_php_form(text)


class Pure360Adapter(GuardedAdapter):
    provider: ClassVar[str] = "pure360"
    version: ClassVar[str] = "4"

    def _adapt(self, envelope: Envelope) -> AdaptResult:
        try:
            form = read_form(envelope)
        except BodyError as error:
            return self._multipart(envelope) or AdaptResult(failures=[Failure(error.reason, error.detail)])
        result = map_notifications(envelope, enumerate(notifications(form)), [])
        # A multipart body read as a form gives no event; looked for only then, so form posts pay nothing.
        return result if result.events else self._multipart(envelope) or result

    @staticmethod
    def _multipart(envelope: Envelope) -> AdaptResult | None:
        try:
            form = parse_multipart_form(envelope.body, envelope.content_type)
        except BodyError as error:
            return AdaptResult(failures=[Failure(error.reason, error.detail)])
        return None if form is None else map_notifications(envelope, enumerate(notifications(form)), [])
