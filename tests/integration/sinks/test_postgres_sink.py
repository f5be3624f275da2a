"""PostgreSQL sink on the real broker and the real PostgreSQL: each event once, whatever happens."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
from yarl import URL

from espwire.config import Settings, SinkConfig
from espwire.topics import Topics
from sinks.postgres import PostgresOptions, PostgresSink, migrate, migrations
from sinks.registry import build_sink
from sinks.runner import DLQ_HEADER, SinkRunner, SinkStatus, run_sink
from tests.integration.sinks.conftest import crash, publish_events, running_sink, sink_settings, wait_until
from tests.support.kafka import consume_all
from tests.support.outage_proxy import OutageProxy
from tests.unit.sinks.factory import BASE_TIME, make_event


async def _counts(dsn: str, schema: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(f'SELECT count(*) AS n, count(DISTINCT id) AS ids FROM "{schema}".events')
        return int(row["n"]), int(row["ids"])
    except asyncpg.UndefinedTableError:  # the sink has not migrated yet
        return 0, 0
    finally:
        await conn.close()


def _config(dsn: str, schema: str, name: str = "pg", **extra: object) -> SinkConfig:
    return SinkConfig(name=name, type="postgres", dsn=dsn, schema=schema, batch_wait_ms=50, **extra)  # type: ignore[call-arg, arg-type]


async def test_migrate_is_versioned_and_idempotent(postgres_dsn: str, pg_schema: str) -> None:
    assert await migrate(postgres_dsn, pg_schema) == [v for v, _ in migrations()]
    assert await migrate(postgres_dsn, pg_schema) == []
    conn = await asyncpg.connect(postgres_dsn)
    try:
        versions = [r["version"] for r in await conn.fetch(f'SELECT version FROM "{pg_schema}".schema_migrations')]
        assert versions == ["0001_events", "0002_suppressions", "0003_events_cheaper_writes", "0004_resubscriptions"]
        kind = await conn.fetchval(
            "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = $1 AND c.relname = 'events'",
            pg_schema,
        )
        assert kind == b"p" or kind == "p"  # partitioned table
    finally:
        await conn.close()


async def test_redelivered_batch_adds_nothing_and_months_get_partitions(postgres_dsn: str, pg_schema: str) -> None:
    sink = PostgresSink(PostgresOptions.from_config(_config(postgres_dsn, pg_schema)))
    await sink.start()
    try:
        events = [make_event(i) for i in range(300)]
        events.append(make_event(1000, time=BASE_TIME.replace(month=12, day=31, hour=23)))
        first = await sink.write_batch(events)
        again = await sink.write_batch(events[::-1])
        assert (first.written, first.skipped, first.poison) == (301, 0, [])
        assert (again.written, again.skipped) == (0, 301)
        assert await _counts(postgres_dsn, pg_schema) == (301, 301)
        conn = await asyncpg.connect(postgres_dsn)
        try:
            parts = await conn.fetch(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY 1",
                pg_schema,
            )
            assert [p["relname"] for p in parts] == ["events_2026_11", "events_2026_12"]
            row = await conn.fetchrow(
                f'SELECT type, subject, provider, source_id, event FROM "{pg_schema}".events WHERE id = $1',
                events[5]["id"],
            )
            assert row["subject"] == "user5@example.com" and row["provider"] == "sparkpost"
            assert orjson.loads(row["event"]) == events[5]
        finally:
            await conn.close()
    finally:
        await sink.close()


async def test_a_batch_mixing_new_and_written_events_adds_only_the_new(postgres_dsn: str, pg_schema: str) -> None:
    # The COPY straight into events meets a key already there, and the part goes in again through the
    # staging table with ON CONFLICT DO NOTHING.
    sink = PostgresSink(PostgresOptions.from_config(_config(postgres_dsn, pg_schema)))
    await sink.start()
    try:
        events = [make_event(i) for i in range(2000)]
        first = await sink.write_batch(events[::3])
        mixed = await sink.write_batch(events)
        assert (first.written, first.skipped) == (667, 0)
        assert (mixed.written, mixed.skipped, mixed.poison) == (1333, 667, [])
        assert await _counts(postgres_dsn, pg_schema) == (2000, 2000)
    finally:
        await sink.close()


async def test_crash_mid_run_and_restart_gives_no_duplicate_and_no_gap(
    kafka_bootstrap: str, topic_prefix: str, postgres_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    config = _config(postgres_dsn, pg_schema, batch_max_events=25, session_timeout_ms=3000)
    settings = sink_settings(topic_prefix, tmp_path, config)
    events = [make_event(i) for i in range(1500)]
    await publish_events(kafka_bootstrap, topic_prefix, events)

    task = asyncio.create_task(run_sink(settings, config, kafka_bootstrap, asyncio.Event()))
    await wait_until(lambda: _some_written(postgres_dsn, pg_schema), every=0.02)
    await crash(task)
    written_before, _ = await _counts(postgres_dsn, pg_schema)

    async with running_sink(settings, config, kafka_bootstrap):
        await wait_until(lambda: _all_written(postgres_dsn, pg_schema, len(events)))
    assert await _counts(postgres_dsn, pg_schema) == (1500, 1500)
    assert written_before > 0


async def _some_written(dsn: str, schema: str) -> bool:
    return (await _counts(dsn, schema))[0] > 0


async def _all_written(dsn: str, schema: str, expected: int) -> bool:
    return (await _counts(dsn, schema))[0] >= expected


# The case: PostgreSQL unreachable for 30 s (through a proxy we control, never the real server).
CUT_SECONDS = 30.0


async def test_connection_cut_loses_nothing_and_doubles_nothing(
    kafka_bootstrap: str, topic_prefix: str, postgres_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    cut_seconds = CUT_SECONDS
    proxy = OutageProxy("127.0.0.1", 5432)
    await proxy.start()
    try:
        via_proxy = postgres_dsn.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        config = _config(via_proxy, pg_schema, retry_initial_seconds=0.1, retry_max_seconds=1.0)
        settings = sink_settings(topic_prefix, tmp_path, config)
        status = SinkStatus()
        first = [make_event(i) for i in range(200)]
        second = [make_event(i) for i in range(200, 700)]
        await publish_events(kafka_bootstrap, topic_prefix, first)
        async with running_sink(settings, config, kafka_bootstrap, status):
            await wait_until(lambda: _all_written(postgres_dsn, pg_schema, 200))
            proxy.cut()
            await publish_events(kafka_bootstrap, topic_prefix, second)
            await wait_until(lambda: _not_ready(status), timeout=20)
            await asyncio.sleep(cut_seconds)
            assert (await _counts(postgres_dsn, pg_schema))[0] == 200
            proxy.restore()
            await wait_until(lambda: _all_written(postgres_dsn, pg_schema, 700))
            assert status.ready
        assert await _counts(postgres_dsn, pg_schema) == (700, 700)
    finally:
        await proxy.stop()


async def _not_ready(status: SinkStatus) -> bool:
    return not status.ready


async def test_a_row_postgres_refuses_goes_to_the_dead_letter_topic(
    kafka_bootstrap: str, topic_prefix: str, postgres_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    config = _config(postgres_dsn, pg_schema)
    settings = sink_settings(topic_prefix, tmp_path, config)
    events = [make_event(i) for i in range(100)]
    # PostgreSQL text and jsonb cannot hold NUL: this row is refused whatever we do.
    events[37] = make_event(37, email="bad\x00user@example.com")
    await publish_events(kafka_bootstrap, topic_prefix, events)
    async with running_sink(settings, config, kafka_bootstrap):
        await wait_until(lambda: _all_written(postgres_dsn, pg_schema, 99))
        dead = await consume_all(kafka_bootstrap, Topics(topic_prefix).sink_dlq("pg"), expect=1, idle_seconds=1)
    assert await _counts(postgres_dsn, pg_schema) == (99, 99)
    assert len(dead) == 1
    assert orjson.loads(dead[0].value)["id"] == events[37]["id"]
    info = orjson.loads(dict(dead[0].headers)[DLQ_HEADER])
    assert info["reason"] == "rejected_by_postgres" and info["sink"] == "pg"
    assert dict(dead[0].headers)["ce_id"] == events[37]["id"].encode()


async def test_the_same_event_twice_in_one_batch_is_written_once(postgres_dsn: str, pg_schema: str) -> None:
    # The COPY straight into events meets the key it has just written, and the part goes in through
    # the staging table with ON CONFLICT DO NOTHING: one row, counted once as written, once as skipped.
    sink = PostgresSink(PostgresOptions.from_config(_config(postgres_dsn, pg_schema)))
    await sink.start()
    try:
        events = [make_event(i) for i in range(2000)]
        events.insert(1500, dict(events[1499]))
        events.append(dict(events[0]))
        outcome = await sink.write_batch(events)
        assert (outcome.written, outcome.skipped, outcome.poison) == (2000, 2, [])
        assert await _counts(postgres_dsn, pg_schema) == (2000, 2000)
    finally:
        await sink.close()


async def test_a_redelivery_early_in_a_long_part_keeps_every_row(postgres_dsn: str, pg_schema: str) -> None:
    # One part of 6000 rows whose second is already there: PostgreSQL refuses the direct COPY early,
    # and the staging COPY must still get every row of the part, built before that or after.
    config = _config(postgres_dsn, pg_schema, write_parallelism=1)
    sink = PostgresSink(PostgresOptions.from_config(config))
    await sink.start()
    try:
        events = [make_event(i) for i in range(6000)]
        await sink.write_batch(events[1:2])
        outcome = await sink.write_batch(events)
        assert (outcome.written, outcome.skipped, outcome.poison) == (5999, 1, [])
        assert await _counts(postgres_dsn, pg_schema) == (6000, 6000)
    finally:
        await sink.close()


async def test_refused_and_invalid_rows_among_redelivered_ones_are_poisoned_once(
    postgres_dsn: str, pg_schema: str
) -> None:
    # The direct COPY fails (a key already there or the NUL, whichever comes first), the staging path
    # fails on the NUL, and halving isolates it; the event without a type is reported once, not per COPY.
    sink = PostgresSink(PostgresOptions.from_config(_config(postgres_dsn, pg_schema)))
    await sink.start()
    try:
        events = [make_event(i) for i in range(1000)]
        await sink.write_batch(events[::4])
        events[101] = make_event(101, email="bad\x00user@example.com")
        del events[102]["type"]
        outcome = await sink.write_batch(events)
        assert sorted((p.index, p.reason) for p in outcome.poison) == [
            (101, "rejected_by_postgres"),
            (102, "invalid_event"),
        ]
        assert (outcome.written, outcome.skipped) == (748, 250)
        assert await _counts(postgres_dsn, pg_schema) == (998, 998)
    finally:
        await sink.close()


async def test_the_json_the_event_was_read_as_is_stored_as_it_is(postgres_dsn: str, pg_schema: str) -> None:
    sink = PostgresSink(PostgresOptions.from_config(_config(postgres_dsn, pg_schema)))
    await sink.start()
    try:
        events = [make_event(i) for i in range(3)]
        # Marked, to tell the given JSON from the event serialised again.
        encoded = [orjson.dumps({**event, "read_as_is": True}) for event in events]
        outcome = await sink.write_batch(events, encoded=encoded)
        assert (outcome.written, outcome.skipped, outcome.poison) == (3, 0, [])
        conn = await asyncpg.connect(postgres_dsn)
        try:
            stored = await conn.fetch(f'SELECT event FROM "{pg_schema}".events ORDER BY time')
        finally:
            await conn.close()
        assert [orjson.loads(row["event"]) for row in stored] == [orjson.loads(e) for e in encoded]
    finally:
        await sink.close()


async def test_through_the_runner_the_stored_event_is_the_one_privacy_leaves(
    kafka_bootstrap: str, topic_prefix: str, postgres_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    # The runner hands the records' own JSON to the sink only when the privacy settings change nothing:
    # with an address hashed, that JSON (which holds the address) must never reach the table.
    config = _config(postgres_dsn, pg_schema, privacy={"email": "hash", "hash_key": "test-key"})
    settings = sink_settings(topic_prefix, tmp_path, config)
    events = [make_event(i) for i in range(50)]
    await publish_events(kafka_bootstrap, topic_prefix, events)
    async with running_sink(settings, config, kafka_bootstrap):
        await wait_until(lambda: _all_written(postgres_dsn, pg_schema, 50))
    conn = await asyncpg.connect(postgres_dsn)
    try:
        stored = await conn.fetch(f'SELECT subject, event FROM "{pg_schema}".events')
    finally:
        await conn.close()
    assert len(stored) == 50
    for row in stored:
        assert "@example.com" not in row["subject"] and "@example.com" not in row["event"]
        assert orjson.loads(row["event"])["data"]["raw"] is None


class _TimedRevokes(SinkRunner):
    """The real runner, noting how long each revoke of its partitions took."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.revokes: list[float] = []

    async def revoke(self, partitions: set[int]) -> None:
        started = time.monotonic()
        await super().revoke(partitions)
        if partitions:  # not the empty revoke before the first assignment
            self.revokes.append(time.monotonic() - started)


def _runner(settings: Settings, config: SinkConfig, bootstrap: str) -> tuple[_TimedRevokes, asyncio.Event]:
    stop = asyncio.Event()
    return _TimedRevokes(settings, build_sink(config, settings), bootstrap, stop, SinkStatus()), stop


async def test_a_member_retrying_an_unavailable_destination_gives_its_partitions_up_at_once(
    kafka_bootstrap: str, topic_prefix: str, postgres_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    """PostgreSQL is cut for the first member while a second one joins: the first stops retrying its
    batch instead of holding the rebalance for the revoke's whole wait, its batch is written once by
    the partitions' owners after the cut, and the group commits to the end."""
    proxy = OutageProxy("127.0.0.1", 5432)
    await proxy.start()
    via_proxy = postgres_dsn.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    # A consumer group of its own (the name): two members coming and going must not meet other tests'.
    options: dict[str, Any] = {
        "name": f"pg-{topic_prefix}",
        "retry_initial_seconds": 0.2,
        "retry_max_seconds": 1.0,
        "session_timeout_ms": 6000,
    }
    cut_config = _config(via_proxy, pg_schema, **options)
    settings = sink_settings(topic_prefix, tmp_path, cut_config)
    first, first_stop = _runner(settings, cut_config, kafka_bootstrap)
    # The second member reaches PostgreSQL directly: it starts while the first one's path is cut.
    second, second_stop = _runner(settings, _config(postgres_dsn, pg_schema, **options), kafka_bootstrap)
    tasks = [asyncio.create_task(first.run())]
    try:
        await publish_events(kafka_bootstrap, topic_prefix, [make_event(i) for i in range(200)])
        await wait_until(lambda: _all_written(postgres_dsn, pg_schema, 200))
        proxy.cut()
        await publish_events(kafka_bootstrap, topic_prefix, [make_event(i) for i in range(200, 500)])
        await wait_until(lambda: _not_ready(first.status), timeout=20)  # retrying its batch
        tasks.append(asyncio.create_task(second.run()))

        async def revoked() -> bool:
            return bool(first.revokes)

        await wait_until(revoked, timeout=60)
        assert first.revokes[0] < SinkRunner.REVOKE_WAIT_SECONDS / 2, first.revokes

        async def split() -> bool:
            owned = [r._consumer.assignment() if r._consumer else set() for r in (first, second)]
            return all(len(o) == 1 for o in owned)

        await wait_until(split, timeout=60)
        proxy.restore()
        await wait_until(lambda: _all_written(postgres_dsn, pg_schema, 500))
        assert await _counts(postgres_dsn, pg_schema) == (500, 500)
        # The topic's ends, by reading it (Tansu's end_offsets under-reports after multi-record batches).
        records = await consume_all(kafka_bootstrap, Topics(topic_prefix).events, expect=500)
        ends: dict[int, int] = {}
        for record in records:
            ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)

        async def committed_to_the_end() -> bool:
            committed = {p: max(r.committed.get(p, 0) for r in (first, second)) for p in ends}
            return committed == ends

        await wait_until(committed_to_the_end, timeout=30)
    finally:
        first_stop.set()
        second_stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
        await proxy.stop()


async def test_a_read_only_server_is_waited_for_not_a_crash(
    kafka_bootstrap: str, topic_prefix: str, postgres_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    # A failover leaves the sink on a standby for a while: every write is refused as read-only.
    role = f"ro_{pg_schema}"
    admin = await asyncpg.connect(postgres_dsn)
    await admin.execute(f'CREATE ROLE "{role}" LOGIN SUPERUSER')
    await admin.execute(f'ALTER ROLE "{role}" SET default_transaction_read_only = on')
    try:
        dsn = str(URL(postgres_dsn).with_user(role))
        config = _config(dsn, pg_schema, retry_initial_seconds=0.1, retry_max_seconds=0.5)
        settings = sink_settings(topic_prefix, tmp_path, config)
        status = SinkStatus()
        await publish_events(kafka_bootstrap, topic_prefix, [make_event(i) for i in range(50)])
        async with running_sink(settings, config, kafka_bootstrap, status):  # a crash fails the block's end
            await asyncio.sleep(3)
            assert not status.ready
            assert await _counts(postgres_dsn, pg_schema) == (0, 0)
            # Promoted: writable again, and its old sessions gone.
            await admin.execute(f'ALTER ROLE "{role}" RESET default_transaction_read_only')
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role)
            await wait_until(lambda: _all_written(postgres_dsn, pg_schema, 50))
        assert await _counts(postgres_dsn, pg_schema) == (50, 50)
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{pg_schema}" CASCADE')
        await admin.execute(f'CREATE SCHEMA "{pg_schema}"')  # the fixture drops it again
        await admin.execute(f'DROP OWNED BY "{role}"')
        await admin.execute(f'DROP ROLE "{role}"')
        await admin.close()


async def test_a_time_with_no_utc_datetime_is_dead_lettered_not_a_crash(postgres_dsn: str, pg_schema: str) -> None:
    # Valid ISO 8601, but in UTC a year past 9999 (or before 1): converting raised OverflowError out of
    # write_batch, which stops the sink, and the same event stopped it again after every restart.
    sink = PostgresSink(PostgresOptions.from_config(_config(postgres_dsn, pg_schema)))
    await sink.start()
    try:
        events = [make_event(i) for i in range(4)]
        events[1]["time"] = "9999-12-31T23:59:59-05:00"
        events[2]["time"] = "0001-01-01T00:00:00+14:00"
        events[3]["time"] = "9999-12-31T20:00:00Z"  # far off, but an instant: kept
        outcome = await sink.write_batch(events)
        assert sorted((p.index, p.reason) for p in outcome.poison) == [(1, "invalid_event"), (2, "invalid_event")]
        assert (outcome.written, outcome.skipped) == (2, 0)
        assert await _counts(postgres_dsn, pg_schema) == (2, 2)
    finally:
        await sink.close()
