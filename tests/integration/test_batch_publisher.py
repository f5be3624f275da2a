"""BatchPublisher on the real broker: keyed records land where Kafka's default partitioner puts them (so a
recipient's events keep their order on one partition), keyless ones spread, every record arrives once."""

from __future__ import annotations

from typing import NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from espwire.kafka_batches import BatchPublisher
from espwire.topics import ensure_topics
from tests.support.kafka import consume_all


class Record(NamedTuple):
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


async def test_keyed_records_land_on_kafkas_partition_in_order_and_keyless_ones_spread(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    events, dead = f"{topic_prefix}.events", f"{topic_prefix}.dlq"
    await ensure_topics(kafka_bootstrap, [events, dead], 3)
    recipients = [f"user{i}@example.com".encode() for i in range(40)] + [b"x" * 700]  # one past the vector width
    records = [Record(events, recipients[i % len(recipients)], b"e%d" % i, [("n", b"%d" % i)]) for i in range(400)]
    records += [Record(dead, None, b"d%d" % i, []) for i in range(30)]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        await (await BatchPublisher(producer).send(records))
    finally:
        await producer.stop()

    every = [0, 1, 2]
    on_topic = await consume_all(kafka_bootstrap, events, expect=400)
    assert sorted(r.value for r in on_topic) == sorted(r.value for r in records if r.topic == events)
    for record in on_topic:
        assert record.partition == DefaultPartitioner()(record.key, every, every), record.key
    for key in recipients:  # one recipient's records in the order they were handed over
        sent = [r.value for r in records if r.key == key]
        assert [r.value for r in sorted(on_topic, key=lambda r: r.offset) if r.key == key] == sent
    dead_letters = await consume_all(kafka_bootstrap, dead, expect=30)
    assert sorted(r.value for r in dead_letters) == sorted(r.value for r in records if r.topic == dead)
    assert {r.partition for r in dead_letters} == set(every)
