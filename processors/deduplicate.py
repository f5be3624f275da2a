"""The dedupe stage: each event id is published once per window, across redeliveries, crashes and rebalances.

The exact guarantee (also in the README): an id is claimed (pending, with a lease) before its batch
is published and marked done only after the broker acknowledged it, before the offsets are
committed. So:
- a redelivery after the commit, or a provider's retry, finds the id done: dropped (counted);
- a crash before the publish leaves a pending claim; its lease lapses and the next owner gets
  IN_DOUBT, searches ``espwire.events`` for the id since the claim was taken, and publishes only if
  it is not there: exactly once on the topic, also for a crash between publish and commit;
- the same id with other content is dead-lettered as ``conflicting_duplicate``, never dropped silently.
If the search itself fails, the event is published (at-least-once wins over loss) and counted.
When the store is down the processor pauses (default) and reports not ready, or, with
``on_store_error = "pass"``, publishes without dedupe.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from espwire.event import CanonicalEvent
from processors.dedupe import Claim, ClaimEntry, ClaimStatus, DedupeStore, DedupeStoreError
from processors.dedupe.backoff import StoreBackoff
from processors.dedupe.metrics import CONFLICTS, DUPLICATES_DROPPED, STORE_UP
from processors.normalize import freeze_raw

log = logging.getLogger("espwire.dedupe")

CONFLICTING_DUPLICATE = "conflicting_duplicate"


def content_fingerprint(event: CanonicalEvent) -> str:
    """What "the same event" means: the provider's event object and the mapped type.

    Without a provider event id the id already is a fingerprint of that content, so it is reused;
    only a provider id (SparkPost) can name two different contents, which is what conflicts catch.
    """
    if event["data"]["provider_event_id"] is None:
        return event["id"]
    content = orjson.dumps([event["type"], freeze_raw(event)])
    return hashlib.blake2b(content, digest_size=16).hexdigest()


class PublishedCheck(Protocol):
    async def published(self, ids: set[str], since_epoch: float) -> set[str]:
        """Which of ``ids`` are already on the events topic (searching from ``since_epoch``)."""
        ...


@dataclass
class EventsTopicCheck:
    """Searches espwire.events for event ids (``ce_id`` header) from a point in time to the current end."""

    bootstrap: str
    topic: str
    margin_seconds: float = 30.0

    async def published(self, ids: set[str], since_epoch: float) -> set[str]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None)
        await consumer.start()
        found: set[str] = set()
        try:
            partitions = [TopicPartition(self.topic, p) for p in consumer.partitions_for_topic(self.topic) or ()]
            if not partitions:
                return found
            consumer.assign(partitions)
            start_ms = int((since_epoch - self.margin_seconds) * 1000)
            starts = await consumer.offsets_for_times(dict.fromkeys(partitions, start_ms))
            ends = await consumer.end_offsets(partitions)
            for tp in partitions:
                start = starts.get(tp)
                if start is None:
                    consumer.pause(tp)  # nothing written since then on this partition
                else:
                    consumer.seek(tp, start.offset)
            wanted = {ce_id.encode() for ce_id in ids}
            idle = 0
            # Tansu's end_offsets under-reports: read until two empty fetches instead of trusting it alone.
            while idle < 2 and found != ids:
                batch = await consumer.getmany(timeout_ms=500)
                if not batch:
                    idle += 1
                    continue
                idle = 0
                for records in batch.values():
                    for record in records:
                        for name, value in record.headers:
                            if name == "ce_id" and value in wanted:
                                found.add(value.decode())
                positions = [await consumer.position(tp) for tp in batch]  # a coroutine in aiokafka
                if all(position >= ends.get(tp, 0) for tp, position in zip(batch, positions, strict=True)):
                    idle += 1
        finally:
            await consumer.stop()
        return found


@dataclass
class Deduplicator:
    store: DedupeStore
    window_seconds: float
    lease_seconds: float = 60.0
    source_windows: dict[str, float] = field(default_factory=dict)
    on_store_error: str = "pause"
    published_check: PublishedCheck | None = None
    owner: str = field(default_factory=lambda: uuid.uuid4().hex)
    store_ok: bool = True
    _claimed: dict[str, ClaimEntry] = field(default_factory=dict)  # ours, published or about to be, not yet done
    _filtering: asyncio.Lock = field(default_factory=asyncio.Lock)
    _pass_backoff: StoreBackoff = field(default_factory=StoreBackoff)

    def __post_init__(self) -> None:
        STORE_UP.labels(self.store.name).set(1)

    def _entry(self, event: CanonicalEvent) -> ClaimEntry:
        window = self.source_windows.get(event["data"]["source_id"], self.window_seconds)
        return (event["id"], content_fingerprint(event), window)

    async def filter(
        self, events: list[CanonicalEvent]
    ) -> tuple[list[CanonicalEvent], list[tuple[CanonicalEvent, str]]]:
        # One batch at a time: each must see the ids the previous one claimed.
        async with self._filtering:
            return await self._filter(events)

    async def _filter(
        self, events: list[CanonicalEvent]
    ) -> tuple[list[CanonicalEvent], list[tuple[CanonicalEvent, str]]]:
        conflicts: list[tuple[CanonicalEvent, str]] = []
        # Within the batch first: a redelivered request may sit in the same fetch as its original.
        unique: dict[str, tuple[CanonicalEvent, ClaimEntry]] = {}
        for event in events:
            entry = self._entry(event)
            # Claimed by a batch of ours still in flight: that batch publishes it.
            in_flight = self._claimed.get(entry[0])
            seen = unique.get(entry[0]) or ((event, in_flight) if in_flight is not None else None)
            if seen is None:
                unique[entry[0]] = (event, entry)
            elif seen[1][1] == entry[1]:
                self._count_duplicate(event)
            else:
                self._count_conflict(event)
                conflicts.append((event, CONFLICTING_DUPLICATE))
        pending = list(unique.values())
        kept: list[CanonicalEvent] = []
        delay = 0.05
        while pending:
            claims = await self._begin([entry for _, entry in pending])
            if claims is None:  # store down and configured to pass: publish without dedupe
                kept.extend(event for event, _ in pending)
                return kept, conflicts
            busy: list[tuple[CanonicalEvent, ClaimEntry]] = []
            in_doubt: dict[str, tuple[CanonicalEvent, ClaimEntry, Claim]] = {}
            for (event, entry), claim in zip(pending, claims, strict=True):
                if claim.status is ClaimStatus.NEW:
                    kept.append(event)
                    self._claimed[entry[0]] = entry
                elif claim.status is ClaimStatus.DUPLICATE:
                    self._count_duplicate(event)
                elif claim.status is ClaimStatus.CONFLICT:
                    self._count_conflict(event)
                    conflicts.append((event, CONFLICTING_DUPLICATE))
                elif claim.status is ClaimStatus.BUSY:
                    busy.append((event, entry))
                else:
                    self._claimed[entry[0]] = entry
                    in_doubt[entry[0]] = (event, entry, claim)
            if in_doubt:
                resolved, lapsed_conflicts = await self._resolve_in_doubt(in_doubt)
                kept.extend(resolved)
                conflicts.extend(lapsed_conflicts)
            pending = busy
            if busy:
                # Another live processor holds these (a rebalance in flight): its commit or lease decides.
                await asyncio.sleep(delay + random.uniform(0, delay))
                delay = min(delay * 2, 2.0)
        return kept, conflicts

    async def _resolve_in_doubt(
        self, in_doubt: dict[str, tuple[CanonicalEvent, ClaimEntry, Claim]]
    ) -> tuple[list[CanonicalEvent], list[tuple[CanonicalEvent, str]]]:
        """Claims whose owner's lease lapsed: (the events to publish, the conflicts to dead-letter)."""
        since = min(claim.pending_since or 0.0 for _, _, claim in in_doubt.values())
        found: set[str] = set()
        if self.published_check is not None:
            try:
                found = await self.published_check.published(set(in_doubt), since)
            except Exception as exc:  # at-least-once: publish again rather than risk a loss
                log.warning("could not search the events topic; republishing", extra={"error": repr(exc)})
        conflicts: list[tuple[CanonicalEvent, str]] = []
        already: list[ClaimEntry] = []
        for event_id in found & in_doubt.keys():
            event, (_, fingerprint, window), claim = in_doubt[event_id]
            # It did go out before the crash, with the content the lapsed claim was taken for: record that
            # content as done, and ours is a duplicate of it, or a conflict when it differs.
            published = claim.previous_fingerprint or fingerprint
            already.append((event_id, published, window))
            if published == fingerprint:
                self._count_duplicate(event)
            else:
                self._count_conflict(event)
                conflicts.append((event, CONFLICTING_DUPLICATE))
        if already:
            await self._commit(already)
            for event_id, _, _ in already:
                self._claimed.pop(event_id, None)
        return [event for event_id, (event, _, _) in in_doubt.items() if event_id not in found], conflicts

    async def confirm(self, events: list[CanonicalEvent]) -> None:
        entries = [entry for event in events if (entry := self._claimed.get(event["id"])) is not None]
        if entries:
            await self._commit(entries)
        # Only now: while the commit is on its way, a later batch being filtered must still find these
        # ids in flight, since the store would answer our own pending claim with NEW.
        for entry in entries:
            self._claimed.pop(entry[0], None)

    async def abandon(self, events: Sequence[CanonicalEvent]) -> None:
        """The batch failed before its publish was acknowledged: give the claims back."""
        ids = [event["id"] for event in events if self._claimed.pop(event["id"], None) is not None]
        if ids:
            try:
                await self.store.release(ids, self.owner)
            except DedupeStoreError as exc:  # the leases lapse by themselves
                log.warning("could not release claims", extra={"error": repr(exc)})

    async def _begin(self, entries: list[ClaimEntry]) -> list[Claim] | None:
        delay = 0.1
        while True:
            if self.on_store_error == "pass" and not self._pass_backoff.may_try():
                return None  # failed a moment ago: pass this batch on without waiting for another timeout
            try:
                claims = await self.store.begin(entries, self.owner, self.lease_seconds)
                self._store_answered(True)
                self._pass_backoff.succeeded()
                return claims
            except DedupeStoreError as exc:
                self._store_answered(False)
                if self.on_store_error == "pass":
                    self._pass_backoff.failed()
                    log.error("dedupe store down; publishing without dedupe", extra={"error": repr(exc)})
                    return None
                log.error("dedupe store down; pausing", extra={"error": repr(exc), "retry_in": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _commit(self, entries: list[ClaimEntry]) -> None:
        delay = 0.1
        while True:
            try:
                await self.store.commit(entries, self.owner)
                self._store_answered(True)
                return
            except DedupeStoreError as exc:
                # The events are out: keep trying, since offsets must not move past an unrecorded id.
                self._store_answered(False)
                log.error("dedupe commit failed; retrying", extra={"error": repr(exc), "retry_in": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    @property
    def ready(self) -> bool:
        """What the processor's /readyz reports: not ready while paused on an unreachable store. With
        ``on_store_error = "pass"`` it stays ready (events flow, undeduped); ``espwire_dedupe_store_up``
        shows the outage either way."""
        return self.store_ok or self.on_store_error == "pass"

    def _store_answered(self, ok: bool) -> None:
        if ok and not self.store_ok:
            log.warning("dedupe store answers again", extra={"store": self.store.name})
        self.store_ok = ok
        STORE_UP.labels(self.store.name).set(1 if ok else 0)

    @staticmethod
    def _count_duplicate(event: CanonicalEvent) -> None:
        DUPLICATES_DROPPED.labels(event["data"]["provider"], event["data"]["source_id"]).inc()

    @staticmethod
    def _count_conflict(event: CanonicalEvent) -> None:
        CONFLICTS.labels(event["data"]["provider"], event["data"]["source_id"]).inc()
