"""SparkPost (Message Systems) webhook batches to canonical events: one event per msys event object.

Guarantees: ``adapt`` never raises; an unreadable body is one failure and no events; an item that is not
an msys object (or that cannot be mapped) is a failure with its index while the rest of the batch still
comes out; every event the provider sent comes out, unmapped types as ``unknown``; every returned event
serialises with orjson (the others are ``unencodable_event`` failures with their index).

Decisions where the docs and fixtures leave room:
- Dispatch is on the event's ``type``, never on its class key (real data files ``generation_failure``
  under ``message_event``). A class whose object has no string ``type`` (e.g. inbound ``relay_message``)
  comes out as ``unknown`` with ``provider_event_type`` = the class key, so the event still says what it is.
- ``relay_*``, ``ab_test_*``, ``ingest_*``, ``amp_superopen`` and any other type -> ``unknown``.
- An item whose msys holds several classes gives one event per class; each event's ``raw`` is then the
  item with only that class under msys (so events without ``event_id`` get distinct fingerprints).
  Otherwise ``raw`` is the batch item untouched, ``cust`` sibling included.
- A bare ``{"msys": ...}`` object and the samples endpoint's ``{"results": [...]}`` are read as batches.
- reject_reason (bounced/rejected only) follows django-anymail's table per bounce_class (so 10 -> invalid,
  24 -> timed_out, 51/52 -> spam, 53 -> other, 90 -> unsubscribed); a bounce without a known class ->
  bounced. policy_rejection: the class when present, else spam if the reason says so, else blocked;
  generation_failure/generation_rejection -> other.
- ``bounce`` (the delivery diagnosis) is set on bounced, deferred and rejected events; ``severity`` from
  the bounce_class table (missing or unknown class -> undetermined) on bounced events only, as the fixture
  rules have it: a deferral is not a bounce, and a rejection's class is its ``category`` and reject reason;
  ``reason`` is ``raw_reason`` (the server's exact words), else ``reason``. The table is SparkPost's whole
  published one, so 26 (Smart Send Suppression, category Admin; newer than django-anymail's table) is
  admin, reject reason blocked as 25's, though the fixture rules' list of codes stops short of it.
- client.ip is ``ip_address`` on opens and clicks only (on deliveries it is the receiving MX);
  client.user_agent is ``user_agent`` whenever present (link_unsubscribe carries it too).
- metadata = ``rcpt_meta`` plus ``cust`` under ``"cust"`` (the sibling wins over a rcpt_meta key of that name;
  both stay in raw).
"""

from __future__ import annotations

from typing import Any, ClassVar

from espwire.envelope import Envelope
from espwire.event import CanonicalEvent
from processors.adapters.base import AdaptResult, Failure, GuardedAdapter
from processors.adapters.fields import (
    as_dict,
    as_identity,
    as_str,
    as_str_list,
    epoch_or_time,
    failure_from,
    json_kind,
    keep_encodable,
    smtp_codes,
)
from processors.adapters.json_body import BodyError, parse_json_writable
from processors.normalize import build_event

# What each type becomes, and which sections it carries.
_ENGAGEMENT, _BOUNCE, _REJECT, _DEFER = 1, 2, 4, 8
_TYPES: dict[str, tuple[str, int]] = {
    "injection": ("email.sent", 0),
    "delivery": ("email.delivered", 0),
    "delay": ("email.deferred", _DEFER),
    "bounce": ("email.bounced", _BOUNCE),
    "out_of_band": ("email.bounced", _BOUNCE),
    "policy_rejection": ("email.rejected", _REJECT),
    "generation_failure": ("email.rejected", _REJECT),
    "generation_rejection": ("email.rejected", _REJECT),
    "open": ("email.opened", _ENGAGEMENT),
    "initial_open": ("email.opened", _ENGAGEMENT),
    "amp_open": ("email.opened", _ENGAGEMENT),
    "amp_initial_open": ("email.opened", _ENGAGEMENT),
    "click": ("email.clicked", _ENGAGEMENT),
    "amp_click": ("email.clicked", _ENGAGEMENT),
    "spam_complaint": ("email.complained", 0),
    "list_unsubscribe": ("email.unsubscribed", 0),
    "link_unsubscribe": ("email.unsubscribed", 0),
    "sms_status": ("sms.status", 0),
}
_UNKNOWN: tuple[str, int] = ("unknown", 0)
Section = dict[str, Any]

# SparkPost's bounce classification codes (support.sparkpost.com, "Bounce Classification Codes"):
# (severity = SparkPost's category, category, django-anymail reject reason).
_BOUNCE_CLASSES: dict[str, tuple[str, str, str]] = {
    "1": ("undetermined", "undetermined", "other"),
    "10": ("hard", "invalid_recipient", "invalid"),
    "20": ("soft", "soft_bounce", "bounced"),
    "21": ("soft", "dns_failure", "bounced"),
    "22": ("soft", "mailbox_full", "bounced"),
    "23": ("soft", "too_large", "bounced"),
    "24": ("soft", "timeout", "timed_out"),
    "25": ("admin", "admin_failure", "blocked"),
    "26": ("admin", "smart_send_suppression", "blocked"),
    "30": ("hard", "no_rcpt", "bounced"),
    "40": ("soft", "generic_bounce", "bounced"),
    "50": ("block", "mail_block", "blocked"),
    "51": ("block", "spam_block", "spam"),
    "52": ("block", "spam_content", "spam"),
    "53": ("block", "prohibited_attachment", "other"),
    "54": ("block", "relaying_denied", "blocked"),
    "60": ("soft", "auto_reply", "other"),
    "70": ("soft", "transient_failure", "bounced"),
    "80": ("admin", "subscribe", "other"),
    "90": ("hard", "unsubscribe", "unsubscribed"),
    "100": ("soft", "challenge_response", "other"),
}


class SparkPostAdapter(GuardedAdapter):
    provider: ClassVar[str] = "sparkpost"
    version: ClassVar[str] = "4"

    def _adapt(self, envelope: Envelope) -> AdaptResult:
        try:
            batch, writable = parse_json_writable(envelope.body)
        except BodyError as error:
            return AdaptResult(failures=[Failure(error.reason, error.detail)])
        if isinstance(batch, dict):
            results = batch.get("results")
            batch = results if "msys" not in batch and isinstance(results, list) else [batch]
        if not isinstance(batch, list):
            return AdaptResult(failures=[Failure("not_a_batch", f"body is a JSON {json_kind(batch)}")])
        indexed: list[tuple[int, CanonicalEvent]] = []
        failures: list[Failure] = []
        for index, item in enumerate(batch):
            try:
                self._item(envelope, index, item, indexed, failures)
            except Exception as exc:  # one odd item must not cost the rest of the batch
                failures.append(failure_from(exc, item, index))
        if writable and _envelope_writable(envelope):
            # Proven writable with WRITE_MARGIN (8) levels to spare: an event nests the body's values at
            # most 2 levels deeper (a bare msys object becomes data.raw at depth 3) and adds only strings
            # of its own, so keep_encodable's serialisation of the batch would find nothing (tested).
            return AdaptResult(events=[event for _, event in indexed], failures=failures)
        return keep_encodable(indexed, failures)

    def _item(
        self,
        envelope: Envelope,
        index: int,
        item: Any,
        indexed: list[tuple[int, CanonicalEvent]],
        failures: list[Failure],
    ) -> None:
        if not isinstance(item, dict):
            failures.append(Failure("invalid_event", f"batch item is a JSON {json_kind(item)}", index))
            return
        msys = item.get("msys")
        if not isinstance(msys, dict):
            failures.append(Failure("invalid_event", f"msys is a JSON {json_kind(msys)}", index))
            return
        # An empty msys is the ping SparkPost sends when a webhook is created: nothing happened.
        cust = item.get("cust")
        for event_class, event in msys.items():
            if not isinstance(event, dict):
                failures.append(
                    Failure("invalid_event", f"msys.{event_class[:64]} is a JSON {json_kind(event)}", index)
                )
                continue
            raw = item if len(msys) == 1 else {**item, "msys": {event_class: event}}
            indexed.append((index, _event(envelope, event_class, event, raw, cust)))


def _envelope_writable(envelope: Envelope) -> bool:
    """The envelope fields an event copies are text (a record not written by our gateway may say otherwise)."""
    return type(envelope.source_id) is str and type(envelope.request_id) is str and type(envelope.received_at) is str


def _event(
    envelope: Envelope,
    event_class: str,
    event: dict[str, Any],
    raw: Any,
    cust: Any,
) -> CanonicalEvent:
    get = event.get
    raw_type = get("type")
    if isinstance(raw_type, str) and raw_type:
        provider_type = raw_type
        canonical, flags = _TYPES.get(raw_type, _UNKNOWN)
    else:
        provider_type, (canonical, flags) = event_class, _UNKNOWN

    email = as_identity(get("rcpt_to"))
    phone = as_identity(get("sms_dst"))
    user_agent = as_str(get("user_agent"))
    client = None
    if flags & _ENGAGEMENT:
        client = {"user_agent": user_agent, "ip": as_str(get("ip_address"))}
    elif user_agent:
        client = {"user_agent": user_agent}
    link = None
    if "target_link_url" in event or "target_link_name" in event:
        link = {"url": as_str(get("target_link_url")), "name": as_str(get("target_link_name"))}

    bounce = None
    reject_reason = None
    if flags & (_BOUNCE | _REJECT | _DEFER):
        bounce, reject_reason = _diagnosis(provider_type, flags, event)

    metadata = as_dict(get("rcpt_meta"))
    if cust is not None:
        metadata = {**(metadata or {}), "cust": cust}

    return build_event(
        envelope,
        type=canonical,
        provider_event_type=provider_type,
        raw=raw,
        provider_event_id=as_str(get("event_id")),
        occurred_at=epoch_or_time(get("timestamp")),
        recipient={"email": email, "phone": phone},
        subject=email or phone,
        message={
            "message_id": as_str(get("message_id")),
            "transmission_id": as_str(get("transmission_id")),
            "subject": as_str(get("subject")),
            "from": as_str(get("friendly_from")),
        },
        campaign={"id": as_str(get("campaign_id"))},
        link=link,
        bounce=bounce,
        reject_reason=reject_reason,
        client=client,
        tags=as_str_list(get("rcpt_tags")),
        metadata=metadata,
    )


def _diagnosis(provider_type: str, flags: int, event: dict[str, Any]) -> tuple[Section | None, str | None]:
    """(bounce section, reject reason) for bounced, rejected and deferred events."""
    class_code = as_str(event.get("bounce_class"))
    if class_code is not None:
        class_code = class_code.strip()
    known = _BOUNCE_CLASSES.get(class_code.lstrip("0") if class_code else "")
    raw_reason = as_str(event.get("raw_reason"))
    reason = as_str(event.get("reason"))
    error_code = as_str(event.get("error_code"))
    # raw_reason and reason carry the same codes (reason only masks the address), so one text is enough.
    status, enhanced = smtp_codes(raw_reason or reason)
    if error_code and error_code.isascii() and error_code.isdigit():
        status = error_code

    category = known[1] if known else None
    severity = (known[0] if known else "undetermined") if flags & _BOUNCE else None

    reject_reason = None
    if flags & _BOUNCE:
        reject_reason = known[2] if known else "bounced"
    elif flags & _REJECT:
        if provider_type != "policy_rejection":
            reject_reason = "other"
        elif known:
            reject_reason = known[2]
        else:
            text = (raw_reason or reason or "").lower()
            reject_reason = "spam" if "spam" in text else "blocked"

    bounce = {
        "severity": severity,
        "category": category,
        "class_code": class_code or None,
        "smtp_status": status,
        "enhanced_status": enhanced,
        "reason": raw_reason or reason,
    }
    return (bounce if any(value is not None for value in bounce.values()) else None), reject_reason
