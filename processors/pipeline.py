"""One consumed batch of raw records -> the records to publish (events and dead letters).

adapt -> dedupe -> enrich -> serialise. Adapting is synchronous CPU work; dedupe and enrichment
are batch-oriented so a batch costs one store round trip, not one per event.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import orjson

from espwire.envelope import Envelope
from espwire.event import CanonicalEvent
from espwire.topics import MAX_RECORD_BYTES, Topics
from processors import metrics
from processors.adapters import ADAPTERS, Adapter, Failure, adapt_channel
from processors.dead_letter import dead_letter_headers
from processors.normalize import number_repeats

log = logging.getLogger("espwire.processor")


class Outgoing(NamedTuple):
    """One record to publish. A named tuple: built once per event, it costs half a frozen dataclass."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass(slots=True)
class BatchResult:
    outgoing: list[Outgoing] = field(default_factory=list)
    events: list[CanonicalEvent] = field(default_factory=list)  # published events, for dedupe confirmation
    dead_letters: int = 0


class RawRecord(Protocol):
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


class Deduplicator(Protocol):
    """Keeps one copy of each event id per window (processors/dedupe)."""

    async def filter(
        self, events: list[CanonicalEvent]
    ) -> tuple[list[CanonicalEvent], list[tuple[CanonicalEvent, str]]]:
        """The events to publish, and the ones to dead-letter with a reason (conflicting duplicates)."""
        ...

    async def confirm(self, events: list[CanonicalEvent]) -> None:
        """Called once the events are acknowledged by the broker."""
        ...

    async def abandon(self, events: list[CanonicalEvent]) -> None:
        """Called when publishing the events failed."""
        ...


class Enrichment(Protocol):
    async def __call__(self, events: list[CanonicalEvent]) -> None: ...


# An event record the broker takes (espwire's topics allow MAX_RECORD_BYTES), headers and framing aside.
MAX_EVENT_BYTES = MAX_RECORD_BYTES - 64 * 1024

_SPECVERSION = ("ce_specversion", b"1.0")
_CONTENT_TYPE = ("content-type", b"application/cloudevents+json")
# ce_source and ce_type take a few values (one per source, one per type): their header pairs are
# made once and shared by every record, as the two constant ones are. Bounded, for records that
# did not come from our gateway and may name any source.
_SHARED_PAIRS: dict[tuple[str, str], tuple[str, bytes]] = {}
_MAX_SHARED_PAIRS = 4096


def _shared_pair(name: str, value: str) -> tuple[str, bytes]:
    pair = _SHARED_PAIRS.get((name, value))
    if pair is None:
        pair = (name, value.encode())
        if len(_SHARED_PAIRS) < _MAX_SHARED_PAIRS:
            _SHARED_PAIRS[(name, value)] = pair
    return pair


def event_headers(event: CanonicalEvent) -> list[tuple[str, bytes]]:
    """CloudEvents Kafka binding names, so consumers can route without parsing the value."""
    headers = [
        _SPECVERSION,
        ("ce_id", event["id"].encode()),
        _shared_pair("ce_source", event["source"]),
        _shared_pair("ce_type", event["type"]),
        ("ce_time", event["time"].encode()),
        _CONTENT_TYPE,
    ]
    subject = event.get("subject")
    if subject:
        headers.append(("ce_subject", subject.encode()))
    return headers


def _as_json_value(value: object) -> object:
    """For the json module's last-resort dump: a frozen ``data.raw`` is JSON already, the rest text."""
    if isinstance(value, orjson.Fragment):
        return json.loads(orjson.dumps(value))  # a fragment alone dumps as its own bytes
    return str(value)


def serialise_event(topic: str, event: CanonicalEvent) -> Outgoing:
    # Keys are always strings here (JSON and form fields), so no OPT_NON_STR_KEYS: it costs a third more.
    value = orjson.dumps(event)
    headers = event_headers(event)
    # Keyed by recipient: one recipient's events stay in order on one partition. The key is the bytes
    # of the ce_subject header (the last when present), else of ce_id.
    name, last = headers[-1]
    key = last if name == "ce_subject" else headers[1][1]
    return Outgoing(topic, key, value, headers)


def dead_letter(topic: str, envelope: Envelope, failures: list[Failure], adapter_version: str) -> Outgoing:
    metrics.DEAD_LETTERS.labels(failures[0].reason).inc()
    return Outgoing(
        topic, envelope.request_id.encode(), envelope.body, dead_letter_headers(envelope, failures, adapter_version)
    )


class Pipeline:
    def __init__(
        self,
        topics: Topics,
        *,
        adapters: dict[str, Adapter] | None = None,
        dedupe: Deduplicator | None = None,
        enrich: Enrichment | None = None,
    ) -> None:
        self.topics = topics
        self.adapters = adapters or ADAPTERS
        self.dedupe = dedupe
        self.enrich = enrich

    def adapt(self, records: Iterable[RawRecord]) -> tuple[list[CanonicalEvent], list[Outgoing]]:
        events: list[CanonicalEvent] = []
        dead: list[Outgoing] = []
        records_in: Counter[str] = Counter()
        for record in records:
            try:
                envelope = Envelope.from_record(record.value, record.headers)
            except ValueError as exc:
                # Not written by our gateway: keep it anyway, with whatever headers it had.
                metrics.DEAD_LETTERS.labels("bad_envelope").inc()
                info = orjson.dumps({"reason": "bad_envelope", "detail": str(exc)[:500]})
                dead.append(
                    Outgoing(self.topics.dlq, None, record.value or b"", [*record.headers, ("espwire-dlq", info)])
                )
                continue
            records_in[envelope.provider] += 1
            adapter = self.adapters.get(envelope.provider)
            if adapter is None:
                dead.append(
                    dead_letter(self.topics.dlq, envelope, [Failure("unknown_provider", envelope.provider)], "-")
                )
                continue
            channel = envelope.options.get("channel")
            try:
                result = adapter.adapt(envelope) if channel is None else adapt_channel(envelope, channel)
            except Exception as exc:  # adapters must not raise; if one does, the record must not stall the group
                log.exception(
                    "adapter raised", extra={"provider": envelope.provider, "request_id": envelope.request_id}
                )
                dead.append(
                    dead_letter(self.topics.dlq, envelope, [Failure("adapter_error", repr(exc)[:500])], adapter.version)
                )
                continue
            if len(result.events) > 1:
                number_repeats(result.events)
            events.extend(result.events)
            if result.failures:
                dead.append(dead_letter(self.topics.dlq, envelope, result.failures, adapter.version))
        for provider, count in records_in.items():
            metrics.RECORDS_IN.labels(provider).inc(count)
        return events, dead

    async def run(self, records: Iterable[RawRecord]) -> BatchResult:
        events, dead = self.adapt(records)
        return await self.stages(events, dead)

    async def stages(self, events: list[CanonicalEvent], dead: list[Outgoing]) -> BatchResult:
        """Everything after adapting: dedupe, enrich, serialise (``run`` = ``adapt`` + this)."""
        result = BatchResult(outgoing=dead, dead_letters=len(dead))
        if self.dedupe is not None and events:
            events, conflicts = await self.dedupe.filter(events)
            for event, reason in conflicts:
                result.outgoing.append(self._conflict(event, reason))
                result.dead_letters += 1
        if self.enrich is not None and events:
            await self.enrich(events)
        topic = self.topics.events
        published: list[CanonicalEvent] = []
        counts: Counter[tuple[str, str]] = Counter()
        for event in events:
            try:
                record = serialise_event(topic, event)
            except TypeError as exc:  # orjson refuses it (e.g. an unpaired surrogate): dead-letter, don't stall
                result.outgoing.append(self._dead_event(event, "unencodable_event", str(exc)[:200]))
                result.dead_letters += 1
                continue
            if len(record.value) > MAX_EVENT_BYTES:
                result.outgoing.append(self._too_large(event, len(record.value)))
                result.dead_letters += 1
                continue
            result.outgoing.append(record)
            published.append(event)
            counts[(event["data"]["provider"], event["type"])] += 1
        # Metrics per batch, not per event: a labelled inc() costs as much as a small event's mapping.
        for (provider, type_), count in counts.items():
            metrics.EVENTS_OUT.labels(provider, type_).inc(count)
            if type_ == "unknown":
                metrics.UNKNOWN_TYPES.labels(provider).inc(count)
        result.events = published
        return result

    def _conflict(self, event: CanonicalEvent, reason: str) -> Outgoing:
        return self._dead_event(event, reason, f"event {event['id']} seen before with other content")

    def _too_large(self, event: CanonicalEvent, size: int) -> Outgoing:
        """An event the broker would refuse (an item of a body near the size limit, whose ``metadata`` repeats
        what ``raw`` holds): dead-lettered without those two, which the request on espwire.raw still holds."""
        data = event["data"]
        slim = {**event, "data": {k: v for k, v in data.items() if k not in ("raw", "metadata")}}
        detail = (
            f"event of {size} bytes is over the {MAX_EVENT_BYTES}-byte record limit; dead-lettered without "
            f"data.raw and data.metadata: the whole request is on the raw topic as request_id {data['request_id']}"
        )
        return self._dead_event(slim, "event_too_large", detail)  # type: ignore[arg-type]

    def _dead_event(self, event: CanonicalEvent, reason: str, detail: str) -> Outgoing:
        """A dead letter for one event (not a whole request): the event itself, as far as it can be encoded."""
        metrics.DEAD_LETTERS.labels(reason).inc()
        data = event["data"]
        info = {"reason": reason, "detail": detail, "source_id": data["source_id"], "provider": data["provider"]}
        try:
            value = orjson.dumps(event, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            value = json.dumps(event, default=_as_json_value).encode("utf-8", "backslashreplace")
        return Outgoing(
            self.topics.dlq, event["id"].encode(), value, [("espwire-dlq", orjson.dumps(info)), *event_headers(event)]
        )
