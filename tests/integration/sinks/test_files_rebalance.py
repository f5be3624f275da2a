"""Files sink under a rebalance: two members of one consumer group, one leaves or joins mid-stream.

A 4-partition espwire.events holds events of three types over two dates; two real runners (real
broker, one directory) share the partitions. Mid-stream, while events keep arriving, one member stops
cleanly, or is cancelled halfway through a batch, or joins a member that owned everything; the member
that stays is caught in the middle of a write with batches read ahead, the case the runner must not
write after a revoke (it did: events lost or doubled). At the end
every event id is in exactly one complete file, each file holds exactly the events of its (date, type,
partition) between the offsets its name gives, no staging file is left, and the group's committed
offsets reach the end of every partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from espwire.config import KafkaConfig, Settings, SinkConfig
from espwire.topics import Topics, ensure_topics
from sinks.base import BatchOutcome, Event, Position
from sinks.files import FilesOptions, FilesSink, parse_file_name
from sinks.runner import SinkRunner, SinkStatus, consumer_group
from tests.integration.sinks.conftest import crash, wait_until
from tests.support.kafka import consume_all, produce
from tests.unit.sinks.factory import BASE_TIME, event_record, make_event

PARTITIONS = 4
BEFORE = 2400  # on the topic before the members start
AFTER = 600  # produced once the group has settled again
TYPES = ("email.delivered", "email.opened", "email.clicked")

Case = Literal["leave", "crash", "join"]


def _event(i: int) -> dict[str, Any]:
    # Six (date, type) directories; keys (recipients) spread the events over the four partitions.
    return make_event(i, type=TYPES[i % 3], time=BASE_TIME + timedelta(days=i % 2, seconds=i))


class _ProbedFilesSink(FilesSink):
    """The real files sink with two hooks for timing, nothing faked:
    - ``hold``: while set to an event, the next batch waits for it first (a slow write, during which
      the runner reads ahead and its queue fills up);
    - ``kill_mid_batch``: the next batch writes half its events and then never returns, like a process
      killed in the middle of a batch (the test cancels it there)."""

    def __init__(self, options: FilesOptions, settings: Settings) -> None:
        super().__init__(options, settings)
        self.hold: asyncio.Event | None = None
        self.held = asyncio.Event()
        self.kill_mid_batch = False
        self.stuck = asyncio.Event()

    async def write_batch(
        self, events: list[Event], positions: list[Position] | None = None, encoded: list[bytes] | None = None
    ) -> BatchOutcome:
        if self.hold is not None:
            self.held.set()
            await self.hold.wait()
            self.hold = None
        if not self.kill_mid_batch or positions is None or len(events) < 2:
            return await super().write_batch(events, positions, encoded)
        half = len(events) // 2
        await super().write_batch(events[:half], positions[:half])
        self.stuck.set()
        await asyncio.Event().wait()
        raise AssertionError("cancelled before this")


class _ObservedRunner(SinkRunner):
    """The real runner; ``revoking`` is set when the group takes its partitions back."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.revoking = asyncio.Event()

    async def revoke(self, partitions: set[int]) -> None:
        self.revoking.set()
        await super().revoke(partitions)


@dataclass
class _Member:
    runner: _ObservedRunner
    sink: _ProbedFilesSink
    stop: asyncio.Event
    task: asyncio.Task[None]

    def assigned(self) -> set[int]:
        consumer = self.runner._consumer
        return set() if consumer is None else {tp.partition for tp in consumer.assignment()}

    async def stop_cleanly(self) -> None:
        if self.sink.hold is not None:
            self.sink.hold.set()  # a test that failed early may have left the writer held
        self.stop.set()
        await asyncio.wait_for(self.task, 60)


def _member(settings: Settings, config: SinkConfig, bootstrap: str) -> _Member:
    sink = _ProbedFilesSink(FilesOptions.from_config(config), settings)
    stop = asyncio.Event()
    runner = _ObservedRunner(settings, sink, bootstrap, stop, SinkStatus())
    return _Member(runner, sink, stop, asyncio.create_task(runner.run()))


class _Trickle:
    """Keeps events arriving (a small chunk every few milliseconds) while the group rebalances."""

    def __init__(self, bootstrap: str, topic: str, start: int) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.next = start
        self.halt = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _Trickle:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=False)
        await producer.start()
        self.task = asyncio.create_task(self._run(producer))
        return self

    async def _run(self, producer: AIOKafkaProducer) -> None:
        try:
            while not self.halt.is_set():
                chunk = [event_record(_event(i)) for i in range(self.next, self.next + 20)]
                futures = [await producer.send(self.topic, value, key=key, headers=h) for key, value, h in chunk]
                await asyncio.gather(*futures)
                self.next += len(chunk)
                await asyncio.sleep(0.02)
        finally:
            await producer.stop()

    async def sent_at_least(self, count: int) -> None:
        target = self.next + count

        async def enough() -> bool:
            return self.next >= target

        await wait_until(enough, timeout=30, every=0.02)

    async def __aexit__(self, *exc: object) -> None:
        self.halt.set()
        assert self.task is not None
        await self.task  # every chunk it started is acknowledged: ``next`` counts what is on the topic


def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("part-*"))


def _lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]


def _written_ids(root: Path) -> Counter[str]:
    return Counter(event["id"] for path in _files(root) for event in _lines(path))


async def _has_committed(member: _Member) -> None:
    """Until the member has completed files and committed past them (it has written something of its own)."""

    async def committed() -> bool:
        return any(offset > 0 for offset in member.runner.committed.values())

    await wait_until(committed, timeout=30, every=0.02)


async def _busy_at_rebalance(member: _Member) -> None:
    """Holds the member's writer in a batch until its partitions are revoked, with its read-ahead queue
    full: the rebalance then finds batches fetched under the old assignment still waiting to be written."""
    member.runner.revoking.clear()
    member.sink.held.clear()
    member.sink.hold = member.runner.revoking
    await asyncio.wait_for(member.sink.held.wait(), 30)

    async def read_ahead() -> bool:
        # The runner queues an idle tick only when its queue is empty: a full queue (2 by default)
        # holds at least one batch of records.
        return member.runner.queue.full()

    await wait_until(read_ahead, timeout=30, every=0.02)


async def _group_of(*members: _Member) -> None:
    """Until the members' assignments are disjoint, non-empty and cover every partition."""

    async def settled() -> bool:
        sets = [m.assigned() for m in members]
        union = set().union(*sets)
        return all(sets) and union == set(range(PARTITIONS)) and sum(map(len, sets)) == PARTITIONS

    await wait_until(settled, timeout=30, every=0.02)


@pytest.mark.timeout(150)
@pytest.mark.parametrize("case", ["leave", "crash", "join"])
async def test_every_event_in_exactly_one_file_across_a_rebalance(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, case: Case
) -> None:
    root = tmp_path / "events"
    config = SinkConfig(
        name=f"files-{topic_prefix}",  # a group of its own: tests sharing the broker never join each other's
        type="files",
        path=str(root),
        roll_bytes=30_000,  # ~20 events a file: many files, many rolls mid-stream
        roll_seconds=1.0,  # an idle open file completes soon, so the test can poll for the end
        batch_max_events=60,
        batch_wait_ms=50,
        session_timeout_ms=6000,
    )  # type: ignore[call-arg]
    settings = Settings(kafka=KafkaConfig(topic_prefix=topic_prefix, partitions=PARTITIONS), datadir=tmp_path)
    topic = Topics(topic_prefix).events
    await ensure_topics(kafka_bootstrap, [topic], PARTITIONS)
    await produce(kafka_bootstrap, topic, [event_record(_event(i)) for i in range(BEFORE)])

    members: list[_Member] = []
    try:
        first = _member(settings, config, kafka_bootstrap)
        members.append(first)
        if case == "join":
            await _group_of(first)
            await _has_committed(first)
        else:
            members.append(_member(settings, config, kafka_bootstrap))
            await _group_of(*members)
            for member in members:
                await _has_committed(member)
        async with _Trickle(kafka_bootstrap, topic, BEFORE) as trickle:
            await trickle.sent_at_least(100)
            await _busy_at_rebalance(first)
            if case == "join":
                members.append(_member(settings, config, kafka_bootstrap))
            else:
                second = members.pop()
                if case == "leave":
                    await second.stop_cleanly()
                else:
                    second.sink.kill_mid_batch = True
                    await asyncio.wait_for(second.sink.stuck.wait(), 30)
                    await crash(second.task)
            await asyncio.wait_for(first.runner.revoking.wait(), 30)
            await _group_of(*members)
            for member in members[1:]:
                await _has_committed(member)
            await trickle.sent_at_least(200)
        produced = trickle.next
        await produce(kafka_bootstrap, topic, [event_record(_event(i)) for i in range(produced, produced + AFTER)])
        produced += AFTER
        expected = {_event(i)["id"] for i in range(produced)}

        async def all_in_complete_files() -> bool:
            return expected <= set(_written_ids(root))

        # On failure the assertions below say how many were lost or doubled.
        with contextlib.suppress(AssertionError):
            await wait_until(all_in_complete_files, timeout=45, every=0.2)
    finally:
        await asyncio.gather(*(m.stop_cleanly() for m in members))

    written = _written_ids(root)
    doubled = {event_id: n for event_id, n in written.items() if n > 1}
    assert not doubled, f"{len(doubled)} events in more than one line"
    assert set(written) == expected, f"{len(expected - set(written))} lost, {len(set(written) - expected)} unknown"
    leftovers = [p for p in root.rglob("*") if p.is_file() and parse_file_name(p.name) is None]
    assert not leftovers, f"staging files left behind: {leftovers[:5]}"

    # Each file holds exactly the events of its (date, type, partition) between its first and last
    # offset, in offset order: the invariant the sink's "already written" check stands on.
    records = await consume_all(kafka_bootstrap, topic, expect=produced)
    where: dict[str, tuple[int, int]] = {}
    by_slot: dict[tuple[str, int], list[tuple[int, str]]] = {}
    for record in records:
        event = orjson.loads(record.value)
        where[event["id"]] = (record.partition, record.offset)
        directory = f"dt={event['time'][:10]}/type={event['type']}"
        by_slot.setdefault((directory, record.partition), []).append((record.offset, event["id"]))
    assert len(where) == produced
    for path in _files(root):
        partition, first_offset, last_offset = parse_file_name(path.name) or (-1, 0, -1)
        directory = f"{path.parent.parent.name}/{path.parent.name}"
        in_file = [e["id"] for e in _lines(path)]
        expected_in_file = [i for o, i in sorted(by_slot[(directory, partition)]) if first_offset <= o <= last_offset]
        assert in_file == expected_in_file, f"{path.relative_to(root)} does not hold exactly its range"

    # Both stops were clean: the group's offsets reach the end of every partition, nothing to redeliver.
    ends = Counter(p for p, _ in where.values())
    reader = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=consumer_group(config.name))
    await reader.start()
    try:
        for partition in range(PARTITIONS):
            last = max(o for p, o in where.values() if p == partition)
            committed = await reader.committed(TopicPartition(topic, partition))
            assert committed == last + 1, f"partition {partition}: committed {committed}, {ends[partition]} events"
    finally:
        with contextlib.suppress(Exception):
            await reader.stop()
