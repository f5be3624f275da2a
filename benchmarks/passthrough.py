"""The processor's baselines: the least a Python Kafka processor can do with the same raw records.

    python -m benchmarks.passthrough --publish send|batch
        (environment as for ``espwire process``: ESPWIRE_KAFKA_BOOTSTRAP, ESPWIRE_KAFKA_TOPIC_PREFIX,
        ESPWIRE_PROCESSOR_GROUP_ID)

A consumer group on ``<prefix>.raw`` with the processor's fetch settings; each body read with orjson,
each item of a JSON array (else the body, as one item) written back with orjson as one record to
``<prefix>.events``, the fetch's records acknowledged (acks=all), then its offsets committed. No
mapping, ids, times, dedupe, enrichment, headers or dead letters: the Kafka and JSON work any Python
processor of these feeds pays, so ``espwire process`` divided by it is what everything else costs.

``--publish send``: aiokafka's ``send`` per record, the futures gathered per fetch (what a team would
write first). ``--publish batch``: espwire's ``BatchPublisher`` (the processor's own way to hand a batch
to aiokafka): the floor of the processor's own design.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from espwire.config import Settings
from espwire.kafka_batches import BatchPublisher
from espwire.topics import Topics
from processors.consumer import make_producer
from processors.pipeline import Outgoing


def items_of(body: bytes) -> list[bytes]:
    """Each item of a JSON array body as its own JSON; any other body as it is (one item)."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return [body]
    if isinstance(value, list):
        return [orjson.dumps(item) for item in value]
    return [orjson.dumps(value)]


async def run(publish: str, stop: asyncio.Event) -> None:
    settings = Settings()
    bootstrap = settings.kafka.bootstrap or "127.0.0.1:9092"
    topics = Topics(settings.kafka.topic_prefix)
    consumer = AIOKafkaConsumer(
        topics.raw,
        bootstrap_servers=bootstrap,
        group_id=settings.processor.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=32 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        fetch_max_wait_ms=settings.processor.max_batch_wait_ms,
    )
    producer = make_producer(settings, bootstrap, "passthrough")
    await producer.start()
    await consumer.start()
    publisher = BatchPublisher(producer)
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=50, max_records=settings.processor.max_batch_records)
            if not batch:
                continue
            values = [item for records in batch.values() for record in records for item in items_of(record.value)]
            if publish == "send":
                futures: list[Any] = [await producer.send(topics.events, value) for value in values]
                await asyncio.gather(*futures)
            else:
                await (await publisher.send([Outgoing(topics.events, None, value, []) for value in values]))
            await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--publish", choices=["send", "batch"], default="send")
    args = parser.parse_args()
    os.environ.setdefault("ESPWIRE_DEDUPE_ENABLED", "false")

    async def guarded() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run(args.publish, stop)

    import uvloop

    uvloop.run(guarded())


if __name__ == "__main__":
    main()
