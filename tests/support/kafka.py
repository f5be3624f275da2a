"""Test helpers that talk to the real broker: produce records, read a topic to the end by consuming."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from espwire.topics import MAX_RECORD_BYTES


async def produce(
    bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        max_request_size=MAX_RECORD_BYTES,  # the raw topic takes what the gateway takes
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key, headers=headers) for key, value, headers in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def consume_all(
    bootstrap: str, topic: str, *, expect: int | None = None, idle_seconds: float = 3.0, timeout: float = 60.0
) -> list[ConsumerRecord[Any, Any]]:
    """Every record of ``topic`` from the beginning (Tansu's end_offsets under-report: count by consuming).

    Stops when ``expect`` records have arrived (then waits ``idle_seconds`` more for extras) or when
    nothing new arrives for ``idle_seconds``.
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord[Any, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last_new = loop.time()
    try:
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for part in batch.values():
                records.extend(part)
                last_new = loop.time()
            waited = loop.time() - last_new
            if expect is not None and len(records) >= expect and waited >= min(idle_seconds, 1.0):
                break
            if expect is None and waited >= idle_seconds:
                break
    finally:
        await consumer.stop()
    return records
