"""Runs one sink: its own consumer group (``espwire-sink-<name>``) on espwire.events, write first, commit after.

Delivery: every event reaches the destination once, or the sink's dead-letter topic with a reason.
- Offsets are committed only after ``write_batch`` returned (the write is durable) and the batch's
  poison events are acknowledged (acks=all) on the dead-letter topic; a crash anywhere before that
  redelivers the batch, and the sinks' writes are idempotent by event id, so redelivery adds nothing.
- A destination that is down is retried with exponential backoff and jitter for as long as it takes;
  meanwhile the sink reports not ready, its partitions are paused (no unbounded read-ahead) and the
  offsets stay where they are. On stop during an outage the batch is abandoned uncommitted, not lost.
- Batches are written one after the other in offset order; a batch is never committed past one that
  was not written.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from espwire.config import Settings, SinkConfig
from espwire.topics import MAX_RECORD_BYTES, Topics, ensure_topics
from sinks import metrics
from sinks.base import BatchOutcome, DestinationUnavailable, Event, Position, Sink, SinkStateLost
from sinks.privacy import Redactor

log = logging.getLogger("espwire.sink")

DLQ_HEADER = "espwire-sink-dlq"
# Errors that mean "the destination is not there right now", whatever the sink: retried, never dead-lettered.
TRANSIENT = (DestinationUnavailable, OSError, TimeoutError)


@dataclass(slots=True)
class SinkStatus:
    """What the process's /readyz reports: ready while the destination takes writes."""

    ready: bool = False
    last_error: str | None = None


def consumer_group(sink_name: str) -> str:
    return f"espwire-sink-{sink_name}"


def backoff_seconds(attempt: int, initial: float, ceiling: float) -> float:
    """Exponential backoff with jitter (half fixed, half random), so restarted sinks do not retry in step."""
    delay: float = min(ceiling, initial * (2 ** min(attempt, 30)))
    return delay / 2 + random.uniform(0, delay / 2)


async def run_sink(
    settings: Settings,
    sink_config: SinkConfig,
    bootstrap: str,
    stop: asyncio.Event,
    *,
    sink: Sink | None = None,
    status: SinkStatus | None = None,
) -> None:
    """Consumes espwire.events into the sink until ``stop`` is set (then flushes and commits) or cancelled."""
    if sink is None:
        from sinks.registry import build_sink

        sink = build_sink(sink_config, settings)
    status = status or SinkStatus()
    attempt = 0
    while True:
        runner = SinkRunner(settings, sink, bootstrap, stop, status)
        try:
            await runner.run()
            return
        except SinkStateLost as exc:
            # Nothing was committed past what is durable: a new consumer re-reads it from the committed offsets.
            log.error("sink lost buffered events; starting over", extra={"sink": sink.name, "error": repr(exc)[:300]})
            status.last_error = repr(exc)[:300]
            if stop.is_set():
                return
            delay = backoff_seconds(attempt, sink.options.retry_initial_seconds, sink.options.retry_max_seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            attempt += 1


_TICK = object()


class _GaveUp(enum.Enum):
    """Why a batch's write was not done: the runner is stopping, or its partitions were revoked."""

    STOPPING = "stopping"
    REVOKED = "revoked"


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: SinkRunner) -> None:
        self.runner = runner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.runner.revoke({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info(
            "partitions assigned", extra={"sink": self.runner.name, "partitions": [tp.partition for tp in assigned]}
        )


class SinkRunner:
    # How long a revoke waits for the write in progress (a retrying one gives up at once).
    REVOKE_WAIT_SECONDS = 10.0

    def __init__(self, settings: Settings, sink: Sink, bootstrap: str, stop: asyncio.Event, status: SinkStatus) -> None:
        self.settings = settings
        self.sink = sink
        self.name = sink.name
        self.options = sink.options
        self.bootstrap = bootstrap
        self.stop = stop
        self.status = status
        self.topics = Topics(settings.kafka.topic_prefix)
        self.dlq_topic = self.topics.sink_dlq(self.name)
        self.redactor = Redactor(self.options.privacy)
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=self.options.max_in_flight_batches)
        self.consumed: dict[int, int] = {}
        self.committed: dict[int, int] = {}
        # Bumped when the group takes the partitions back: batches read before that are stale (see _handle).
        self.generation = 0
        self.abandoned = False
        self.write_lock = asyncio.Lock()
        self._revoke_pending = asyncio.Event()
        self.known_topics: set[str] = set()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None

    # -- life cycle ------------------------------------------------------------------------------
    async def run(self) -> None:
        kafka = self.settings.kafka
        # The dead-letter topic is made with the first dead letter (``_dead_letter``): a sink that never refuses
        # an event (every `espwire tail`, a sink of its own) leaves no empty topic behind.
        await ensure_topics(self.bootstrap, [self.topics.events], kafka.partitions, kafka.replication)
        self.known_topics.add(self.topics.events)
        writer: asyncio.Task[None] | None = None
        try:
            if not await self._start_sink():
                return
            self._producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                client_id=f"{kafka.client_id}-sink-{self.name}",
                acks="all",
                enable_idempotence=False,  # Tansu refuses it; dead letters carry the event id for dedupe
                linger_ms=5,
                max_request_size=MAX_RECORD_BYTES,
            )
            await self._producer.start()
            self._consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=consumer_group(self.name),
                client_id=f"{kafka.client_id}-sink-{self.name}-{uuid.uuid4().hex[:6]}",
                enable_auto_commit=False,
                auto_offset_reset=self.options.start_from,
                max_partition_fetch_bytes=16 * 1024 * 1024,
                fetch_max_bytes=64 * 1024 * 1024,
                session_timeout_ms=self.options.session_timeout_ms,
                heartbeat_interval_ms=max(300, self.options.session_timeout_ms // 4),
            )
            self._consumer.subscribe([self.topics.events], listener=_Rebalance(self))
            await self._consumer.start()
            log.info("sink started", extra={"sink": self.name, "group": consumer_group(self.name)})
            writer = asyncio.create_task(self._write_loop(), name=f"sink-{self.name}-writer")
            await self._fetch_loop(writer)
            await self.queue.put(None)
            await writer
            if not self.abandoned:
                # Clean stop: what is buffered becomes durable, and its offsets are committed.
                async with self.write_lock:
                    await self.sink.flush()
                    await self._commit()
        finally:
            if writer is not None and not writer.done():
                writer.cancel()
                with contextlib.suppress(BaseException):
                    await writer
            if self._consumer is not None:
                with contextlib.suppress(KafkaError):
                    await self._consumer.stop()
            if self._producer is not None:
                with contextlib.suppress(KafkaError):
                    await self._producer.stop()
            await self.sink.close()
            self._set_ready(False)
            log.info("sink stopped", extra={"sink": self.name})

    async def _start_sink(self) -> bool:
        attempt = 0
        while not self.stop.is_set():
            try:
                await self.sink.start()
                self._set_ready(True)
                return True
            except TRANSIENT as exc:
                self._unavailable(exc)
                await self._sleep(
                    backoff_seconds(attempt, self.options.retry_initial_seconds, self.options.retry_max_seconds)
                )
                attempt += 1
        return False

    async def revoke(self, partitions: set[int]) -> None:
        # Wait (bounded) for the batch being written, so the sink drops state it is not in the middle of
        # using. A batch waiting to retry an unavailable destination gives up at once instead (it would
        # be re-read anyway): the rebalance does not wait out the bound, and nothing is written late.
        self._revoke_pending.set()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.REVOKE_WAIT_SECONDS):
                    await self.write_lock.acquire()
                    self.write_lock.release()
        finally:
            self._revoke_pending.clear()
        self.generation += 1
        for p in partitions:
            self.consumed.pop(p, None)
            self.committed.pop(p, None)
        self.sink.release(partitions)
        log.info("partitions revoked", extra={"sink": self.name, "partitions": sorted(partitions)})

    # -- reading ---------------------------------------------------------------------------------
    async def _fetch_loop(self, writer: asyncio.Task[None]) -> None:
        consumer = self._consumer
        assert consumer is not None
        while not self.stop.is_set() and not writer.done():
            assignment = consumer.assignment()
            if self.queue.full() or self.sink.backpressure():
                # Bounded in-flight: stop fetching, but keep polling so the group keeps us.
                consumer.pause(*assignment)
            elif consumer.paused():
                consumer.resume(*consumer.paused())
            data = await consumer.getmany(
                timeout_ms=self.options.batch_wait_ms, max_records=self.options.batch_max_events
            )
            records = [record for part in data.values() for record in part]
            if records:
                # Tagged now, before any await: getmany returns nothing while a rebalance is in progress,
                # so records returned after a revoke belong to the new assignment.
                await self.queue.put((self.generation, records))
            elif self.queue.empty():
                self.queue.put_nowait(_TICK)
        if writer.done():
            writer.result()  # the writer failed: raise its error here

    # -- writing ---------------------------------------------------------------------------------
    async def _write_loop(self) -> None:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            if self.abandoned:
                continue  # after an abandoned batch nothing later may be committed
            async with self.write_lock:
                if item is _TICK:
                    await self._maintain()
                else:
                    await self._handle(*item)

    async def _maintain(self) -> None:
        try:
            await self.sink.maintain()
        except TRANSIENT as exc:
            self._unavailable(exc)
            return
        await self._commit()

    async def _handle(self, generation: int, records: list[Any]) -> None:
        consumer = self._consumer
        assert consumer is not None
        if generation != self.generation:
            # Read ahead before the partitions were revoked. After the rebalance the consumer re-reads
            # them from the committed offset, whichever member owns them now; writing these too made
            # open files out of offset order (events doubled, or committed past while still in an
            # open file: lost) and, for partitions gone to another member, files overlapping its own
            # and commits refused for an unassigned partition.
            return
        owned = {tp.partition for tp in consumer.assignment()}
        # A partition revoked since the fetch belongs to another member now: it re-reads these.
        records = [r for r in records if r.partition in owned]
        if not records:
            return
        events: list[Event] = []
        positions: list[Position] = []
        sources: list[Any] = []
        dead: list[tuple[Any, str, str, str | None]] = []
        for record in records:
            try:
                event = orjson.loads(record.value)
                if not isinstance(event, dict) or not isinstance(event.get("id"), str):
                    raise ValueError("not a CloudEvent object with a string id")
            except (orjson.JSONDecodeError, ValueError) as exc:
                dead.append((record, "not_an_event", str(exc)[:500], None))
                continue
            events.append(event)
            positions.append(Position(record.partition, record.offset))
            sources.append(record)
        metrics.BATCH_SIZE.labels(self.name).observe(len(records))
        if events:
            redacted = self.redactor.apply(events)
            # Unchanged by the privacy settings: the records' own JSON is still each event's JSON.
            encoded = [record.value for record in sources] if redacted is events else None
            outcome = await self._write_with_retry(redacted, positions, encoded)
            if outcome is _GaveUp.STOPPING:
                self.abandoned = True
                return
            if outcome is _GaveUp.REVOKED or generation != self.generation:
                # The partitions were revoked meanwhile: whoever owns them now re-reads this batch from
                # the committed offsets. Nothing of it is committed here, and what a write that outlasted
                # the revoke's wait left in the sink is dropped like the rest of those partitions' state.
                self.sink.release({position.partition for position in positions})
                return
            dead.extend((sources[p.index], p.reason, p.detail, p.topic) for p in outcome.poison)
            metrics.EVENTS_WRITTEN.labels(self.name).inc(outcome.written)
        if dead and not await self._dead_letter(dead):
            self.abandoned = True
            return
        for record in records:
            self.consumed[record.partition] = max(self.consumed.get(record.partition, 0), record.offset + 1)
        await self._commit()

    async def _write_with_retry(
        self, events: list[Event], positions: list[Position], encoded: list[bytes] | None
    ) -> BatchOutcome | _GaveUp:
        """The write's outcome, or why it was given up while the destination was unavailable: the runner
        is stopping (the batch is abandoned), or a revoke came (the batch belongs to the next owner)."""
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                outcome = await self.sink.write_batch(events, positions, encoded)
            except TRANSIENT as exc:
                self._unavailable(exc)
                metrics.RETRIES.labels(self.name).inc()
                if self.stop.is_set():
                    return _GaveUp.STOPPING
                await self._sleep(
                    backoff_seconds(attempt, self.options.retry_initial_seconds, self.options.retry_max_seconds),
                    self._revoke_pending,  # a revoke already pending ends the sleep at once
                )
                if self._revoke_pending.is_set():
                    return _GaveUp.REVOKED
                attempt += 1
                continue
            metrics.WRITE_SECONDS.labels(self.name).observe(time.perf_counter() - started)
            if attempt:
                log.info("destination is back", extra={"sink": self.name, "attempts": attempt + 1})
            self._set_ready(True)
            return outcome

    async def _dead_letter(self, dead: list[tuple[Any, str, str, str | None]]) -> bool:
        """Sends the refused records, whole, with the reason; True once the broker acknowledged them all."""
        producer = self._producer
        assert producer is not None
        topics = {topic or self.dlq_topic for _, _, _, topic in dead}
        attempt = 0
        while True:
            try:
                missing = [t for t in topics if t not in self.known_topics]
                if missing:
                    kafka = self.settings.kafka
                    await ensure_topics(self.bootstrap, missing, kafka.partitions, kafka.replication)
                    self.known_topics.update(missing)
                futures = []
                for record, reason, detail, topic in dead:
                    info = {
                        "sink": self.name,
                        "reason": reason,
                        "detail": detail,
                        "partition": record.partition,
                        "offset": record.offset,
                        "failed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    }
                    headers = [*(record.headers or ()), (DLQ_HEADER, orjson.dumps(info))]
                    futures.append(
                        await producer.send(topic or self.dlq_topic, record.value, key=record.key, headers=headers)
                    )
                await asyncio.gather(*futures)
            except KafkaError as exc:
                log.warning("dead-letter topic unavailable", extra={"sink": self.name, "error": repr(exc)})
                if self.stop.is_set():
                    return False
                await self._sleep(
                    backoff_seconds(attempt, self.options.retry_initial_seconds, self.options.retry_max_seconds)
                )
                attempt += 1
                continue
            for _, reason, detail, _ in dead:
                metrics.DEAD_LETTERS.labels(self.name, reason).inc()
                log.warning("event dead-lettered", extra={"sink": self.name, "reason": reason, "detail": detail[:200]})
            return True

    async def _commit(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        allowed = self.sink.committable(dict(self.consumed))
        offsets = {
            TopicPartition(self.topics.events, p): o for p, o in allowed.items() if o > self.committed.get(p, -1)
        }
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except CommitFailedError as exc:
            # Partitions moved mid-batch: the new owner re-reads them, and the writes are idempotent.
            log.warning("commit failed after a rebalance", extra={"sink": self.name, "error": repr(exc)})
            return
        except KafkaError as exc:
            # The next batch commits further; until then a restart redelivers, which is harmless.
            log.warning("commit failed", extra={"sink": self.name, "error": repr(exc)})
            return
        owned = consumer.assignment()  # highwater() asserts ownership, which a rebalance may just have ended
        for tp, offset in offsets.items():
            self.committed[tp.partition] = offset
            highwater = consumer.highwater(tp) if tp in owned else None
            if highwater is not None:
                metrics.LAG.labels(self.name, str(tp.partition)).set(max(0, highwater - offset))

    # -- status ----------------------------------------------------------------------------------
    def _unavailable(self, exc: BaseException) -> None:
        if self.status.ready or self.status.last_error is None:
            log.warning("destination unavailable", extra={"sink": self.name, "error": repr(exc)[:300]})
        self.status.last_error = repr(exc)[:300]
        self._set_ready(False)

    def _set_ready(self, ready: bool) -> None:
        self.status.ready = ready
        metrics.READY.labels(self.name).set(1 if ready else 0)

    async def _sleep(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        """Sleeps, or less when stopping (or when ``wake`` is set)."""
        waits = [asyncio.ensure_future(event.wait()) for event in (self.stop, wake) if event is not None]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
