"""The claim state machine against every backend: memory, a real SQLite file and a real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from espwire.config import DedupeConfig
from processors.dedupe import (
    ClaimStatus,
    DedupeStore,
    DedupeStoreError,
    MemoryDedupeStore,
    RedisDedupeStore,
    SqliteDedupeStore,
    build_store,
)
from tests.support.redis_keys import forget_keys

WINDOW = 3600.0
LEASE = 30.0


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DedupeStore]:
    if request.param == "memory":
        made: DedupeStore = MemoryDedupeStore()
    elif request.param == "sqlite":
        made = SqliteDedupeStore(tmp_path / "dedupe.sqlite3")
    else:
        url = request.getfixturevalue("redis_url")
        prefix = f"test:{uuid.uuid4().hex}:"
        made = RedisDedupeStore.from_url(url, prefix)
    try:
        yield made
    finally:
        await made.close()
        if request.param == "redis":
            await forget_keys(url, prefix)


def entries(*ids: str, fingerprint: str = "f1", ttl: float = WINDOW) -> list[tuple[str, str, float]]:
    return [(i, fingerprint, ttl) for i in ids]


async def test_absent_id_is_new_then_duplicate_after_commit(store: DedupeStore) -> None:
    claims = await store.begin(entries("a", "b"), "p1", LEASE)
    assert [c.status for c in claims] == [ClaimStatus.NEW, ClaimStatus.NEW]
    await store.commit(entries("a", "b"), "p1")
    again = await store.begin(entries("a") + entries("b", fingerprint="f2"), "p2", LEASE)
    assert [c.status for c in again] == [ClaimStatus.DUPLICATE, ClaimStatus.CONFLICT]


async def test_same_owner_retry_is_new(store: DedupeStore) -> None:
    await store.begin(entries("a"), "p1", LEASE)
    claims = await store.begin(entries("a"), "p1", LEASE)
    assert claims[0].status is ClaimStatus.NEW


async def test_other_owner_within_lease_is_busy(store: DedupeStore) -> None:
    await store.begin(entries("a"), "p1", LEASE)
    claims = await store.begin(entries("a"), "p2", LEASE)
    assert claims[0].status is ClaimStatus.BUSY
    assert claims[0].previous_owner == "p1"


async def test_expired_lease_of_another_owner_is_in_doubt_then_ours(store: DedupeStore) -> None:
    first = await store.begin(entries("a"), "p1", 0.2)
    assert first[0].status is ClaimStatus.NEW
    await asyncio.sleep(0.35)
    taken = await store.begin(entries("a"), "p2", LEASE)
    assert taken[0].status is ClaimStatus.IN_DOUBT
    assert taken[0].previous_owner == "p1"
    assert taken[0].pending_since is not None
    assert taken[0].previous_fingerprint == "f1"
    # The takeover is a claim of its own: the old owner now finds it busy.
    back = await store.begin(entries("a"), "p1", LEASE)
    assert back[0].status is ClaimStatus.BUSY
    assert back[0].previous_owner == "p2"


async def test_release_drops_only_our_pending_claims(store: DedupeStore) -> None:
    await store.begin(entries("a"), "p1", LEASE)
    await store.begin(entries("b"), "p2", LEASE)
    await store.commit(entries("c"), "p1")
    await store.release(["a", "b", "c"], "p1")
    claims = await store.begin(entries("a", "b", "c"), "p3", LEASE)
    assert [c.status for c in claims] == [ClaimStatus.NEW, ClaimStatus.BUSY, ClaimStatus.DUPLICATE]


async def test_commit_keeps_the_first_published_fingerprint(store: DedupeStore) -> None:
    await store.commit(entries("a", fingerprint="f1"), "p1")
    await store.commit(entries("a", fingerprint="f2"), "p2")
    claims = await store.begin(entries("a", fingerprint="f1"), "p3", LEASE)
    assert claims[0].status is ClaimStatus.DUPLICATE


async def test_done_expires_with_the_window(store: DedupeStore) -> None:
    await store.begin(entries("a", ttl=0.3), "p1", LEASE)
    await store.commit(entries("a", ttl=0.3), "p1")
    assert (await store.begin(entries("a"), "p2", LEASE))[0].status is ClaimStatus.DUPLICATE
    await asyncio.sleep(0.45)
    assert (await store.begin(entries("a"), "p2", LEASE))[0].status is ClaimStatus.NEW


async def test_pending_expires_with_the_window(store: DedupeStore) -> None:
    await store.begin(entries("a", ttl=0.3), "p1", 0.1)
    await asyncio.sleep(0.45)
    # Past the window even the pending trace is gone: plain NEW, nothing in doubt.
    assert (await store.begin(entries("a"), "p2", LEASE))[0].status is ClaimStatus.NEW


async def test_batch_of_5000_ids_in_one_call(store: DedupeStore) -> None:
    ids = [f"evt-{n:05d}" for n in range(5000)]
    claims = await store.begin(entries(*ids), "p1", LEASE)
    assert all(c.status is ClaimStatus.NEW for c in claims)
    await store.commit(entries(*ids), "p1")
    mixed = entries(*ids[:2500]) + entries(*ids[2500:], fingerprint="other") + entries("fresh")
    answers = await store.begin(mixed, "p2", LEASE)
    assert {c.status for c in answers[:2500]} == {ClaimStatus.DUPLICATE}
    assert {c.status for c in answers[2500:5000]} == {ClaimStatus.CONFLICT}
    assert answers[-1].status is ClaimStatus.NEW


async def test_two_owners_racing_get_exactly_one_winner_per_id(store: DedupeStore) -> None:
    ids = [f"race-{n}" for n in range(500)]
    one, two = await asyncio.gather(
        store.begin(entries(*ids), "p1", LEASE), store.begin(entries(*reversed(ids)), "p2", LEASE)
    )
    by_id_two = dict(zip(reversed(ids), two, strict=True))
    for event_id, claim in zip(ids, one, strict=True):
        statuses = {claim.status, by_id_two[event_id].status}
        assert statuses == {ClaimStatus.NEW, ClaimStatus.BUSY}


async def test_message_events_give_delivery_time_and_same_second_links(store: DedupeStore) -> None:
    key = f"m-{uuid.uuid4().hex}"
    answers = await store.note_message_events(
        [
            (key, "delivered", 1000.5, ""),
            (key, "clicked", 1003.1, "https://a.example/1"),
            (key, "clicked", 1003.9, "https://a.example/2"),
            (key, "clicked", 1003.4, "https://a.example/1"),
            (key, "clicked", 1010.0, "https://a.example/3"),
            ("other", "clicked", 1003.0, "https://a.example/1"),
        ],
        3600,
    )
    assert [a.delivered_at for a in answers[:5]] == [1000.5] * 5
    # Every click of the burst sees the whole burst, the earlier ones included.
    assert [a.links_in_same_second for a in answers[1:]] == [2, 2, 2, 1, 1]
    assert answers[5].delivered_at is None
    later = await store.note_message_events([(key, "clicked", 1003.2, "https://a.example/4")], 3600)
    assert later[0].links_in_same_second == 3
    assert later[0].delivered_at == 1000.5


async def test_empty_calls_are_no_ops(store: DedupeStore) -> None:
    assert await store.begin([], "p1", LEASE) == []
    await store.commit([], "p1")
    await store.release([], "p1")
    assert await store.note_message_events([], 60) == []


async def test_sqlite_state_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "d" / "dedupe.sqlite3"
    first = SqliteDedupeStore(path)
    await first.begin(entries("a", "b"), "p1", LEASE)
    await first.commit(entries("a"), "p1")
    await first.close()
    second = SqliteDedupeStore(path)
    try:
        claims = await second.begin(entries("a", "b"), "p2", LEASE)
        assert [c.status for c in claims] == [ClaimStatus.DUPLICATE, ClaimStatus.BUSY]
    finally:
        await second.close()


async def test_sqlite_purges_expired_rows(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "dedupe.sqlite3"
    store = SqliteDedupeStore(path)
    try:
        await store.commit(entries("a", "b", ttl=0.1), "p1")
        await store.commit(entries("c"), "p1")
        await asyncio.sleep(0.2)
        await store.purge_expired()
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    try:
        assert [row[0] for row in conn.execute("SELECT id FROM claims")] == ["c"]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


async def test_sqlite_two_stores_on_one_file_agree(tmp_path: Path) -> None:
    path = tmp_path / "dedupe.sqlite3"
    one, two = SqliteDedupeStore(path), SqliteDedupeStore(path)
    try:
        ids = [f"e{n}" for n in range(300)]
        a, b = await asyncio.gather(one.begin(entries(*ids), "p1", LEASE), two.begin(entries(*ids), "p2", LEASE))
        for x, y in zip(a, b, strict=True):
            assert {x.status, y.status} == {ClaimStatus.NEW, ClaimStatus.BUSY}
    finally:
        await one.close()
        await two.close()


async def test_redis_down_raises_retriable_store_error() -> None:
    store = RedisDedupeStore.from_url("redis://127.0.0.1:1/0", "x:", timeout_seconds=0.5)
    try:
        with pytest.raises(DedupeStoreError) as caught:
            await store.begin(entries("a"), "p1", LEASE)
        assert caught.value.retriable
    finally:
        await store.close()


async def test_build_store_picks_the_backend(tmp_path: Path) -> None:
    made = build_store(DedupeConfig(store="sqlite"), tmp_path)
    try:
        assert isinstance(made, SqliteDedupeStore)
        assert made.path == tmp_path / "dedupe.sqlite3"
    finally:
        await made.close()
    memory = build_store(DedupeConfig(store="memory"), tmp_path)
    assert isinstance(memory, MemoryDedupeStore)
    await memory.close()


async def test_redis_keys_expire_with_the_window(redis_url: str) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    store = RedisDedupeStore.from_url(redis_url, prefix)
    client = aioredis.Redis.from_url(redis_url)
    try:
        await store.begin(entries("a", ttl=500.0), "p1", 5.0)
        assert 495_000 < await client.pttl(f"{prefix}a") <= 500_000
        await store.commit(entries("a", ttl=900.0), "p1")
        assert 895_000 < await client.pttl(f"{prefix}a") <= 900_000
        assert await client.get(f"{prefix}a") == b"d\tf1"
    finally:
        await client.aclose()
        await store.close()
        await forget_keys(redis_url, prefix)


async def test_fingerprints_with_separators_are_refused(redis_url: str) -> None:
    store = RedisDedupeStore.from_url(redis_url, f"test:{uuid.uuid4().hex}:")
    try:
        with pytest.raises(ValueError, match="tab or newline"):
            await store.begin([("a", "x\ty", 60.0)], "p1", LEASE)
    finally:
        await store.close()


async def test_ids_and_message_keys_may_hold_any_text(store: DedupeStore) -> None:
    # Non-ASCII, separators of the Redis store's argument blobs, and a long id.
    ids = ["é-ü-☃", "tab\there", "new\nline", "%09", "x" * 300, ""]
    assert {c.status for c in await store.begin(entries(*ids), "p1", LEASE)} == {ClaimStatus.NEW}
    await store.commit(entries(*ids), "p1")
    assert {c.status for c in await store.begin(entries(*ids), "p2", LEASE)} == {ClaimStatus.DUPLICATE}
    others = [f"{i}-other" for i in ids]
    await store.begin(entries(*others), "p1", LEASE)
    await store.release(others, "p1")
    assert {c.status for c in await store.begin(entries(*others), "p2", LEASE)} == {ClaimStatus.NEW}
    keys = [f"m\t{uuid.uuid4().hex}", f"m\n{uuid.uuid4().hex}é"]
    answers = await store.note_message_events(
        [(keys[0], "delivered", 50.25, ""), (keys[1], "clicked", 60.0, "a"), (keys[1], "clicked", 60.5, "b")], 3600
    )
    assert [(a.delivered_at, a.links_in_same_second) for a in answers] == [(50.25, 0), (None, 2), (None, 2)]


async def test_message_events_in_any_order_within_a_batch(store: DedupeStore) -> None:
    key = f"m-{uuid.uuid4().hex}"
    answers = await store.note_message_events(
        [
            (key, "clicked", 1005.0, "https://a.example/1"),
            (key, "delivered", 1001.0, ""),
            (key, "delivered", 1000.0, ""),
            (key, "clicked", 1005.5, "https://a.example/2"),
            (key, "delivered", 1002.0, ""),
        ],
        3600,
    )
    assert [(a.delivered_at, a.links_in_same_second) for a in answers] == [
        (1000.0, 2),
        (1000.0, 0),
        (1000.0, 0),
        (1000.0, 2),
        (1000.0, 0),
    ]
    later = await store.note_message_events([(key, "delivered", 999.5, ""), (key, "clicked", 1005.2, "x")], 3600)
    assert [(a.delivered_at, a.links_in_same_second) for a in later] == [(999.5, 0), (999.5, 3)]


async def test_a_claims_start_is_on_its_processors_clock_its_lease_on_redis(redis_url: str) -> None:
    """The next owner searches the events topic from a claim's start: the records it looks for are stamped
    by the claiming processor's clock, so that is the clock the start is read on, however far off it is."""
    prefix = f"test:{uuid.uuid4().hex}:"
    # A processor whose clock is decades behind.
    behind = RedisDedupeStore(aioredis.Redis.from_url(redis_url), prefix, clock=lambda: 1_000_000.0)
    on_time = RedisDedupeStore.from_url(redis_url, prefix)
    try:
        assert [c.status for c in await behind.begin(entries("a"), "p1", 0.2)] == [ClaimStatus.NEW]
        # Within the lease on Redis's clock (not expired at once by the skew), then lapsed.
        assert (await on_time.begin(entries("a"), "p2", LEASE))[0].status is ClaimStatus.BUSY
        await asyncio.sleep(0.35)
        taken = (await on_time.begin(entries("a"), "p2", LEASE))[0]
        assert taken.status is ClaimStatus.IN_DOUBT
        assert taken.pending_since == 1_000_000.0
    finally:
        await behind.close()
        await on_time.close()
        await forget_keys(redis_url, prefix)
