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
from espwire.failpoints import failpoint
from espwire.kafka_batches import BatchPublisher
from espwire.topics import Topics, ensure_topics
from processors import metrics
from processors.pipeline import BatchResult, Pipeline
from processors.stages import build_stages

log = logging.getLogger("espwire.processor")


def make_producer(settings: Settings, bootstrap: str, client_suffix: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=f"{settings.kafka.client_id}-{client_suffix}",
        acks="all",
        enable_idempotence=False,  # Tansu refuses it; dedupe by event id covers producer retries
        linger_ms=5,
        max_batch_size=512 * 1024,
        max_request_size=16 * 1024 * 1024,
        compression_type=settings.kafka.compression,
    )


async def run_processor(
    settings: Settings, bootstrap: str, stop: asyncio.Event, *, pipeline: Pipeline | None = None
) -> None:
    topics = Topics(settings.kafka.topic_prefix)
    await ensure_topics(bootstrap, topics.core(), settings.kafka.partitions, settings.kafka.replication)
    closeables: list[object] = []
    if pipeline is None:
        pipeline, closeables = await build_stages(settings, bootstrap)
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
    )
    producer = make_producer(settings, bootstrap, "processor")
    await producer.start()
    await consumer.start()
    log.info("processor started", extra={"group": conf.group_id, "topic": topics.raw})
    publisher = BatchPublisher(producer)
    # Batches whose records are handed to the producer but not yet acknowledged, oldest first. While
    # they are in flight the next batch is fetched and adapted, so CPU work and broker round trips
    # overlap; offsets are still committed strictly in order, each only after its batch's acks.
    in_flight: deque[InFlight] = deque()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=conf.max_batch_wait_ms, max_records=conf.max_batch_records)
            while in_flight and (in_flight[0].acked.done() or len(in_flight) >= conf.max_in_flight_batches):
                await _finish(consumer, pipeline, in_flight.popleft())
            # One fetch can hold thousands of SparkPost batches: work in slices of a bounded size, so
            # adapting one slice overlaps with the acks of the previous and memory stays flat.
            for records, offsets in slices(batch, conf.max_batch_bytes):
                while len(in_flight) >= conf.max_in_flight_batches:
                    await _finish(consumer, pipeline, in_flight.popleft())
                started = time.perf_counter()
                result = await pipeline.run(records)
                try:
                    acked = await publisher.send(result.outgoing)
                except BaseException:
                    if pipeline.dedupe is not None:
                        await pipeline.dedupe.abandon(result.events)
                    raise
                in_flight.append(InFlight(acked, result, offsets, started))
        while in_flight:
            await _finish(consumer, pipeline, in_flight.popleft())
    finally:
        with contextlib.suppress(KafkaError):
            await consumer.stop()
        await producer.stop()
        for closeable in closeables:
            close = getattr(closeable, "close", None)
            if close is not None:
                await close()
        log.info("processor stopped")


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


@dataclass(slots=True)
class InFlight:
    acked: asyncio.Future[Any]
    result: BatchResult
    offsets: dict[TopicPartition, int]
    started: float


async def _finish(consumer: AIOKafkaConsumer, pipeline: Pipeline, batch: InFlight) -> None:
    """Waits for a batch's acks, records its ids as published, then commits its offsets."""
    try:
        await batch.acked
    except BaseException:
        if pipeline.dedupe is not None:
            await pipeline.dedupe.abandon(batch.result.events)
        raise
    failpoint("processor.after_publish")
    if pipeline.dedupe is not None:
        await pipeline.dedupe.confirm(batch.result.events)
    failpoint("processor.after_confirm")
    try:
        await consumer.commit(batch.offsets)
    except CommitFailedError as exc:
        # Partitions moved to another member mid-batch: it re-reads them, dedupe drops the repeats.
        log.warning("commit failed after a rebalance", extra={"error": repr(exc)})
    metrics.BATCH_SECONDS.observe(time.perf_counter() - batch.started)
    _record_lag(consumer, batch.offsets)


def _record_lag(consumer: AIOKafkaConsumer, next_offsets: dict[TopicPartition, int]) -> None:
    for tp, next_offset in next_offsets.items():
        highwater = consumer.highwater(tp)
        if highwater is not None:
            metrics.LAG.labels(str(tp.partition)).set(max(0, highwater - next_offset))
