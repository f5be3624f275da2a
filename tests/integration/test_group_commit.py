"""The gateway's group commit against the real broker: concurrent requests share round trips, every
acknowledged record is on the topic once, and a broker that stops answering fails the waiting
requests within the deadline (the gateway then spools them) instead of holding them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from espwire.topics import ensure_topics
from ingest_gateway.group_commit import GroupCommitProducer
from tests.support.kafka import consume_all
from tests.support.outage_proxy import OutageProxy, proxied_broker


async def _producer(bootstrap: str, **options: object) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=0,
        max_batch_size=64 * 1024,
        request_timeout_ms=3000,
        **options,  # type: ignore[arg-type]
    )
    await producer.start()
    return producer


@contextlib.asynccontextmanager
async def _behind_a_proxy(
    topic_prefix: str, *, ack_timeout: float
) -> AsyncIterator[tuple[OutageProxy, str, AIOKafkaProducer, GroupCommitProducer]]:
    """A broker of the test's own behind a proxy it can cut, and a group commit that has had one record
    acknowledged through it."""
    async with proxied_broker() as proxied:
        topic = f"{topic_prefix}.raw"
        await ensure_topics(proxied.bootstrap, [topic], 2)
        producer = await _producer(proxied.bootstrap)
        group = GroupCommitProducer([producer], topic, ack_timeout=ack_timeout)
        await group.send(None, b"before", [])  # acknowledged while the broker answers
        yield proxied.proxy, proxied.bootstrap, producer, group


@pytest.fixture
async def producer(kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[AIOKafkaProducer]:
    await ensure_topics(kafka_bootstrap, [f"{topic_prefix}.raw"], 4)
    producer = await _producer(kafka_bootstrap)
    yield producer
    await producer.stop()


async def test_concurrent_sends_share_round_trips_and_all_arrive(
    producer: AIOKafkaProducer, kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}.raw"
    group = GroupCommitProducer([producer], topic, ack_timeout=10, batch_bytes=64 * 1024)
    round_trips = 0
    produce = group._produce

    async def counted(lane: AIOKafkaProducer, waiting: list[object]) -> None:
        nonlocal round_trips
        round_trips += 1
        await produce(lane, waiting)  # type: ignore[arg-type]

    group._produce = counted  # type: ignore[method-assign]
    # 2,000 records of 1 KB, sent 500 at a time: more than one batch's 64 KiB per round trip.
    values = [f"{i:06d}".encode() + b"x" * 1018 for i in range(2000)]
    for start in range(0, len(values), 500):
        futures = [group.send(v[:6], v, [("h", b"1")]) for v in values[start : start + 500]]
        await asyncio.gather(*futures)
    await group.close()

    records = await consume_all(kafka_bootstrap, topic, expect=len(values))
    assert sorted(r.value for r in records) == values
    assert {r.key for r in records} == {v[:6] for v in values}
    assert all(r.headers == (("h", b"1"),) for r in records)
    assert len({r.partition for r in records}) > 1  # sticky per round trip, so spread over partitions
    assert round_trips <= 8  # four waves of 500, each in one or two round trips, not one per record


async def test_two_lanes_overlap_their_round_trips_and_every_record_arrives_once(
    producer: AIOKafkaProducer, kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}.raw"
    second = await _producer(kafka_bootstrap)
    group = GroupCommitProducer([producer, second], topic, ack_timeout=10)
    in_flight = 0
    most_in_flight = 0
    lanes_used: set[int] = set()
    produce = group._produce

    async def observed(lane: AIOKafkaProducer, waiting: list[object]) -> None:
        nonlocal in_flight, most_in_flight
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        lanes_used.add(id(lane))
        try:
            await produce(lane, waiting)  # type: ignore[arg-type]
        finally:
            in_flight -= 1

    group._produce = observed  # type: ignore[method-assign]
    values = [f"{i:06d}".encode() + b"y" * 500 for i in range(3000)]
    pending: list[asyncio.Future[None]] = []
    for start in range(0, len(values), 50):  # arrivals spread over event-loop turns, as requests come
        pending += [group.send(v[:6], v, []) for v in values[start : start + 50]]
        await asyncio.sleep(0)
    await asyncio.gather(*pending)
    await group.close()
    await second.stop()

    assert lanes_used == {id(producer), id(second)}
    assert most_in_flight == 2  # a second group left while the first was still unacknowledged
    records = await consume_all(kafka_bootstrap, topic, expect=len(values))
    assert sorted(r.value for r in records) == values


async def test_a_group_commit_needs_a_lane() -> None:
    with pytest.raises(ValueError):
        GroupCommitProducer([], "t", ack_timeout=1)


async def test_a_broker_that_stops_answering_fails_the_waiting_records_within_the_deadline(
    topic_prefix: str,
) -> None:
    async with _behind_a_proxy(topic_prefix, ack_timeout=1.5) as (proxy, _, producer, group):
        proxy.cut()
        loop = asyncio.get_running_loop()
        started = loop.time()
        outcomes = await asyncio.gather(*(group.send(None, b"during", []) for _ in range(20)), return_exceptions=True)
        waited = loop.time() - started
        assert all(isinstance(o, KafkaError | TimeoutError) for o in outcomes), outcomes
        assert waited < 1.5 + 1.0
        await group.close()
        with pytest.raises(KafkaError):
            group.send(None, b"after close", [])
        proxy.restore()
        await producer.stop()


async def test_a_connection_lost_and_back_within_the_deadline_is_retried_and_every_record_arrives(
    topic_prefix: str,
) -> None:
    async with _behind_a_proxy(topic_prefix, ack_timeout=8) as (proxy, bootstrap, producer, group):
        proxy.cut()  # the connection drops: the group's first attempt fails with a retriable error
        values = [b"during-%03d" % i for i in range(20)]
        pending = asyncio.gather(*(group.send(None, v, []) for v in values))
        await asyncio.sleep(0.5)
        proxy.restore()
        await pending  # acknowledged after a metadata refresh and a new connection, within the 8 s
        await group.close()
        await producer.stop()
        records = await consume_all(bootstrap, group.topic, expect=1 + len(values))
        # At least once: a retried batch may be there twice; none is missing.
        assert set(values) <= {r.value for r in records}
