"""The processor's consumer group on espwire.raw.

Delivery: at-least-once. A batch's offsets are committed only after every record it produced
(events and dead letters) has been acknowledged with acks=all, so a crash or a rebalance gives
redelivery, never loss; the dedupe stage turns the redelivery into nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from espwire.config import Settings
from espwire.event import CanonicalEvent
from espwire.failpoints import failpoint
from espwire.kafka_batches import BatchPublisher
from espwire.topics import MAX_RECORD_BYTES, Topics, ensure_topics
from processors import metrics
from processors.deduplicate import Deduplicator
from processors.pipeline import Outgoing, Pipeline
from processors.stages import build_stages

log = logging.getLogger("espwire.processor")

# On SIGTERM, how long the slices under way get to finish (a Kubernetes pod gets 30 s in all).
STOP_DRAIN_SECONDS = 10.0


@dataclass
class ProcessorStatus:
    """What the process's /readyz reports: ready once consuming, and not while paused on a dedupe store
    that does not answer (``on_store_error = "pause"``, the default)."""

    started: bool = False
    dedupe: Deduplicator | None = None

    @property
    def ready(self) -> bool:
        return self.started and (self.dedupe is None or self.dedupe.ready)


def make_producer(settings: Settings, bootstrap: str, client_suffix: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=f"{settings.kafka.client_id}-{client_suffix}",
        acks="all",
        enable_idempotence=False,  # Tansu refuses it; dedupe by event id covers producer retries
        linger_ms=5,
        max_batch_size=512 * 1024,
        max_request_size=MAX_RECORD_BYTES,
        compression_type=settings.kafka.compression,
    )


async def run_processor(
    settings: Settings,
    bootstrap: str,
    stop: asyncio.Event,
    *,
    pipeline: Pipeline | None = None,
    status: ProcessorStatus | None = None,
) -> None:
    topics = Topics(settings.kafka.topic_prefix)
    closeables: list[object] = []
    if pipeline is None:  # first: a configuration error (a missing GeoIP file) is named before Kafka is tried
        pipeline, closeables = await build_stages(settings, bootstrap)
    await ensure_topics(bootstrap, topics.core(), settings.kafka.partitions, settings.kafka.replication)
    conf = settings.processor
    consumer = AIOKafkaConsumer(
        topics.raw,
        bootstrap_servers=bootstrap,
        group_id=conf.group_id,
        client_id=f"{settings.kafka.client_id}-processor-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=32 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        fetch_max_wait_ms=conf.max_batch_wait_ms,  # the broker holds an empty fetch this long at most
        max_poll_interval_ms=conf.max_poll_interval_ms,
    )
    producer = make_producer(settings, bootstrap, "processor")
    await producer.start()
    await consumer.start()
    log.info("processor started", extra={"group": conf.group_id, "topic": topics.raw})
    if status is not None:
        status.dedupe = pipeline.dedupe if isinstance(pipeline.dedupe, Deduplicator) else None
        status.started = True
    publisher = BatchPublisher(producer)
    # Slices adapted but not yet committed, oldest first. While the next slice is fetched and adapted,
    # the earlier ones go their way (dedupe and enrichment round trips, hand-over to the producer, acks,
    # dedupe confirm, offset commit), each step in slice order: see SliceFlow.
    in_flight: deque[SliceFlow] = deque()
    # max_in_flight_batches counts slices published and awaiting their acks (and the store's confirm);
    # the one in its stages (claims, enrichment) comes on top.
    max_flows = conf.max_in_flight_batches + 1
    dedupe = pipeline.dedupe if isinstance(pipeline.dedupe, Deduplicator) else None
    try:
        while not stop.is_set():
            while in_flight and in_flight[0].done.done():
                await in_flight.popleft().done  # raises what failed in it
            if dedupe is not None and not dedupe.ready and in_flight:
                # Paused on a store that does not answer: fetch nothing more while a slice retries it. Past
                # max_poll_interval_ms the group hands this member's partitions to processors that reach it.
                await _store_back_or_stopped(dedupe, stop, in_flight[0].done)
                continue
            batch = await consumer.getmany(timeout_ms=conf.max_batch_wait_ms, max_records=conf.max_batch_records)
            # One fetch can hold thousands of SparkPost batches: work in slices of a bounded size, so
            # adapting one slice overlaps with the round trips of the previous ones and memory stays flat.
            for records, offsets in slices(batch, conf.max_batch_bytes):
                while len(in_flight) >= max_flows and await _finished_unless_stopped(in_flight[0], stop):
                    await in_flight.popleft().done
                if stop.is_set():  # the rest of this fetch is not ours to start: it is redelivered
                    break
                started = time.perf_counter()
                events, dead = await adapt_in_steps(pipeline, records)
                previous = in_flight[-1] if in_flight else None
                in_flight.append(SliceFlow(consumer, pipeline, publisher, events, dead, offsets, started, previous))
        # Stopping: what is under way normally ends in milliseconds; a slice stuck on a store that does not
        # answer is given STOP_DRAIN_SECONDS, then cancelled below (a SIGTERM must not wait for Redis).
        deadline = asyncio.get_running_loop().time() + STOP_DRAIN_SECONDS
        while in_flight:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                log.warning(
                    "slices still under way at stop; cancelled, they are redelivered", extra={"slices": len(in_flight)}
                )
                break
            await asyncio.wait({in_flight[0].done}, timeout=left)
            if in_flight[0].done.done():
                await in_flight.popleft().done
    finally:
        # Stopping on an error, or slices that outlived the drain: what is not committed is redelivered to
        # the next owner (dedupe drops what was already published; claims not published are in doubt).
        for flow in in_flight:
            flow.done.cancel()
        await asyncio.gather(*(flow.done for flow in in_flight), return_exceptions=True)
        with contextlib.suppress(KafkaError):
            await consumer.stop()
        await producer.stop()
        for closeable in closeables:
            close = getattr(closeable, "close", None)
            if close is not None:
                await close()
        if status is not None:
            status.started = False
        log.info("processor stopped")


async def _store_back_or_stopped(
    dedupe: Deduplicator, stop: asyncio.Event, oldest: asyncio.Task[None], poll_seconds: float = 0.2
) -> None:
    """Returns once the dedupe store answers again (a paused slice's retry got through), once the oldest
    slice has ended (it may have failed otherwise: the caller raises that), or on stop."""
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while not dedupe.ready and not stopping.done() and not oldest.done():
            await asyncio.wait({stopping, oldest}, timeout=poll_seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()


async def _finished_unless_stopped(flow: SliceFlow, stop: asyncio.Event) -> bool:
    """Waits for the oldest slice; False if a stop came first (the slice goes on, the caller stops)."""
    if not flow.done.done():
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({flow.done, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
    return flow.done.done()


async def adapt_in_steps(
    pipeline: Pipeline, records: list[Any], step_bytes: int = 64 * 1024
) -> tuple[list[CanonicalEvent], list[Outgoing]]:
    """``pipeline.adapt`` on the slice a few dozen records at a time, letting the event loop run in
    between, so the earlier slices' store replies and acks are handled while this one is adapted."""
    events: list[CanonicalEvent] = []
    dead: list[Outgoing] = []
    start = size = 0
    for index, record in enumerate(records, 1):
        size += len(record.value or b"")
        if size >= step_bytes or index == len(records):
            adapted, failed = pipeline.adapt(records[start:index])
            events += adapted
            dead += failed
            start, size = index, 0
            if index < len(records):
                await asyncio.sleep(0)
    return events, dead


def slices(
    batch: dict[TopicPartition, list[Any]], max_bytes: int
) -> Iterator[tuple[list[Any], dict[TopicPartition, int]]]:
    """The fetched records in order, cut into slices of about ``max_bytes`` of bodies, each with the
    offsets to commit once it is done (per partition: the offset after its last record in the slice)."""
    records: list[Any] = []
    offsets: dict[TopicPartition, int] = {}
    size = 0
    for tp, part in batch.items():
        for record in part:
            records.append(record)
            offsets[tp] = record.offset + 1
            size += len(record.value or b"")
            if size >= max_bytes:
                yield records, offsets
                records, offsets, size = [], {}, 0
    if records:
        yield records, offsets


class SliceFlow:
    """One adapted slice's way to its offset commit, as a task: dedupe, enrich and serialise, hand the
    records to the producer, wait for their acks (acks=all), confirm the ids in the dedupe store, commit.

    Ordering, with the slice before it: its stages start only once that slice's records are handed
    over (one recipient's events keep their order on the topic, and dedupe sees every id claimed
    before); its confirm and commit only once that slice is committed (offsets move in order, each
    only after every earlier record was acknowledged and recorded).
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        pipeline: Pipeline,
        publisher: BatchPublisher,
        events: list[CanonicalEvent],
        dead: list[Outgoing],
        offsets: dict[TopicPartition, int],
        started: float,
        previous: SliceFlow | None,
    ) -> None:
        self.offsets = offsets
        # True once the records are with the producer; False if the slice failed before that.
        self.handed_over: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.done: asyncio.Task[None] = asyncio.create_task(
            self._run(consumer, pipeline, publisher, events, dead, started, previous)
        )

    async def _run(
        self,
        consumer: AIOKafkaConsumer,
        pipeline: Pipeline,
        publisher: BatchPublisher,
        events: list[CanonicalEvent],
        dead: list[Outgoing],
        started: float,
        previous: SliceFlow | None,
    ) -> None:
        try:
            # shield: cancelling this slice must not cancel what the previous one awaits or is.
            if previous is not None and not await asyncio.shield(previous.handed_over):
                raise RuntimeError("an earlier slice failed")
            result = await pipeline.stages(events, dead)
            failpoint("processor.before_publish")  # claimed, not published: the next owner finds them in doubt
            try:
                batches = await publisher.prepare(result.outgoing)
            except Exception:
                # Nothing handed over: the claims go back. Once anything was (below), a failure is never
                # taken to mean "not published": a batch may be on the topic, acknowledged or not (a
                # timeout after the broker appended), so the claims stay pending and, once their lease
                # lapses, the next owner's search of the topic decides, event by event.
                if pipeline.dedupe is not None:
                    await pipeline.dedupe.abandon(result.events)
                raise
            acked = await publisher.hand_over(batches)
        except BaseException:
            self.handed_over.set_result(False)
            raise
        self.handed_over.set_result(True)
        await acked
        if previous is not None:
            await asyncio.shield(previous.done)
        failpoint("processor.after_publish")
        if pipeline.dedupe is not None:
            await pipeline.dedupe.confirm(result.events)
        failpoint("processor.after_confirm")
        committed = await _commit_owned(consumer, self.offsets)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        _record_lag(consumer, committed)


async def _commit_owned(consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    """Commits the offsets of the partitions this member still owns. A slice outlives a rebalance
    (its records were published, its claims confirmed): the partitions that moved are re-read by their
    new owner and dedupe drops the repeats, so their offsets are simply not ours to commit any more."""
    owned = consumer.assignment()
    mine = {tp: offset for tp, offset in offsets.items() if tp in owned}
    if len(mine) < len(offsets):
        log.info("partitions moved mid-slice; their new owner re-reads them", extra={"moved": len(offsets) - len(mine)})
    if not mine:
        return mine
    try:
        await consumer.commit(mine)
    except CommitFailedError as exc:
        # The group moved on while committing: the same as above, for every partition of the slice.
        log.warning("commit failed after a rebalance", extra={"error": repr(exc)})
        return {}
    except KafkaError as exc:
        # A later slice commits further; until then a restart redelivers, which dedupe turns into nothing.
        log.warning("commit failed", extra={"error": repr(exc)})
        return {}
    return mine


def _record_lag(consumer: AIOKafkaConsumer, next_offsets: dict[TopicPartition, int]) -> None:
    owned = consumer.assignment()  # highwater() asserts ownership, which a rebalance may just have ended
    for tp, next_offset in next_offsets.items():
        if tp not in owned:
            continue
        highwater = consumer.highwater(tp)
        if highwater is not None:
            metrics.LAG.labels(str(tp.partition)).set(max(0, highwater - next_offset))
