"""Builds canonical events from what an adapter extracted: one place for ids, times and CloudEvents fields."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from espwire.envelope import Envelope
from espwire.event import CanonicalEvent, EventData, Recipient

_ID_NAMESPACE = b"espwire/v1"
_ID_PREFIXES: dict[str, Any] = {}


def sorted_json(raw: Any) -> bytes:
    """``raw`` as JSON with its keys sorted, non-string keys as text: the fingerprint's bytes."""
    try:
        # Parsed JSON and forms have string keys only: then these are the bytes OPT_NON_STR_KEYS gives,
        # for a quarter less time.
        return orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return orjson.dumps(raw, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def event_id(provider: str, provider_event_type: str, provider_event_id: str | None, raw: Any) -> str:
    """A deterministic id, so that a redelivered event gets the same id.

    From the provider's own event id when there is one, else from a fingerprint of the provider's
    event object (keys sorted, so a re-serialised but equal object gives the same id).
    """
    # The hash of the namespace and the provider, kept per provider: a copy and one update per event
    # hash the same bytes as the six updates they replace.
    prefix = _ID_PREFIXES.get(provider)
    if prefix is None:
        prefix = _ID_PREFIXES[provider] = hashlib.blake2b(_ID_NAMESPACE + provider.encode() + b"\x00", digest_size=16)
    h = prefix.copy()
    if provider_event_id is not None:
        h.update(f"id\x00{provider_event_type}\x00{provider_event_id}".encode("utf-8", "surrogatepass"))
    else:
        h.update(b"fp\x00" + sorted_json(raw))
    # UUID text form without building a uuid.UUID (a measurable share of the processor's time).
    x = h.hexdigest()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def number_repeats(events: list[CanonicalEvent]) -> None:
    """Gives the second and later copies of an event within one request ids of their own.

    Without a provider event id, an event's id is its content's fingerprint, so two equal events in
    one request (two opens of one message in one second, two equal rows of an FTP log or a SOAP batch)
    would share an id and dedupe would keep one: but a provider repeats a *request* when it redelivers,
    not an event within one. The n-th copy's id is derived from the first's and n, so a redelivered
    request gives the same ids again. Events with a provider id are left alone: equal ids there are
    the same event.
    """
    seen: dict[str, int] = {}
    for event in events:
        data = event["data"]
        if data["provider_event_id"] is not None:
            continue
        first = event["id"]
        copies = seen.get(first, 0)
        seen[first] = copies + 1
        if copies:
            event["id"] = event_id(data["provider"], data["provider_event_type"], None, [first, copies + 1])


def freeze_raw(event: CanonicalEvent) -> orjson.Fragment:
    """``data.raw`` as JSON with sorted keys, put back in the event as an ``orjson.Fragment``.

    The dedupe fingerprint needs these bytes anyway (sorted, so that the fingerprints already in the
    window stay valid); with them in place, serialising the event copies them instead of walking the
    provider's object a second time (a third of the event's serialisation). Published events then
    carry ``data.raw`` with its keys sorted: the same JSON value.
    """
    data = event["data"]
    raw = data["raw"]
    if isinstance(raw, orjson.Fragment):
        return raw
    fragment = data["raw"] = orjson.Fragment(sorted_json(raw))
    return fragment


def _prune(section: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Drops None and empty-text values, and the section itself when nothing is left: events stay small.
    Always a new dict: a section never shares an object with ``raw``."""
    if not section:
        return None
    kept = {k: v for k, v in section.items() if v is not None and v != ""}
    return kept or None


def build_event(
    envelope: Envelope,
    *,
    type: str,
    provider_event_type: str,
    raw: Any,
    provider_event_id: str | None = None,
    occurred_at: str | None = None,
    recipient: Recipient | None = None,
    subject: str | None = None,
    message: dict[str, Any] | None = None,
    campaign: dict[str, Any] | None = None,
    link: dict[str, Any] | None = None,
    bounce: dict[str, Any] | None = None,
    reject_reason: str | None = None,
    client: dict[str, Any] | None = None,
    tags: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> CanonicalEvent:
    """One canonical event. ``subject`` is the recipient as a string, or None when the event names nobody."""
    data: dict[str, Any] = {
        "provider": envelope.provider,
        "source_id": envelope.source_id,
        "request_id": envelope.request_id,
        "provider_event_type": provider_event_type,
        "provider_event_id": provider_event_id,
        "occurred_at": occurred_at,
        "received_at": envelope.received_at,
        "time_source": "provider" if occurred_at is not None else "received",
        "recipient": _prune(recipient) or {},
    }
    sections = {"message": message, "campaign": campaign, "link": link, "client": client, "metadata": metadata}
    for name, section in sections.items():
        # Absent sections (links and clients on most events) are skipped without a call.
        if section and (pruned := _prune(section)):
            data[name] = pruned
    if bounce is not None:
        data["bounce"] = {k: v for k, v in bounce.items() if v is not None}
    if reject_reason is not None:
        data["reject_reason"] = reject_reason
    if tags:
        data["tags"] = tags
    data["raw"] = raw
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id(envelope.provider, provider_event_type, provider_event_id, raw),
        "source": f"/hooks/{envelope.source_id}",
        "type": type,
        "time": occurred_at or envelope.received_at,
        "datacontenttype": "application/json",
        "data": data,
    }
    if subject:
        event["subject"] = subject
    return event  # type: ignore[return-value]


def as_event_data(event: CanonicalEvent) -> EventData:
    return event["data"]
