"""The dedupe stage against a real Redis: what the consumer relies on when slices overlap."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import orjson
import pytest
import redis.asyncio as aioredis

from espwire.event import CanonicalEvent
from espwire.topics import ensure_topics
from processors.dedupe import RedisDedupeStore
from processors.deduplicate import Deduplicator, EventsTopicCheck, content_fingerprint
from tests.support.kafka import produce
from tests.support.redis_keys import forget_keys


def _event(n: int) -> CanonicalEvent:
    raw = {"msys": {"message_event": {"type": "delivery", "event_id": str(n)}}}
    data: dict[str, Any] = {"provider": "sparkpost", "source_id": "sp", "provider_event_id": str(n), "raw": raw}
    return cast(CanonicalEvent, {"id": f"evt-{n}", "type": "email.delivered", "data": data})


@pytest.fixture
async def dedupe(redis_url: str) -> AsyncIterator[Deduplicator]:
    prefix = f"test:{uuid.uuid4().hex}:"
    store = RedisDedupeStore.from_url(redis_url, prefix)
    try:
        yield Deduplicator(store, window_seconds=600.0)
    finally:
        await store.close()
        await forget_keys(redis_url, prefix)


async def test_a_batch_filtered_while_the_previous_one_is_confirmed_drops_its_ids(dedupe: Deduplicator) -> None:
    first = [_event(n) for n in range(200)]
    kept, _ = await dedupe.filter(first)
    assert len(kept) == 200
    # The next slice is filtered while this one's commit is on its way to the store: our own pending
    # claims would answer NEW there, so the ids must still count as in flight until the commit is done.
    redelivered = [_event(n) for n in range(200)] + [_event(1000)]
    _, (kept_again, conflicts) = await asyncio.gather(dedupe.confirm(kept), dedupe.filter(redelivered))
    assert [e["id"] for e in kept_again] == ["evt-1000"]
    assert conflicts == []
    # And once confirmed, the store itself answers: duplicates.
    await dedupe.confirm(kept_again)
    kept_later, _ = await dedupe.filter([_event(5), _event(1000), _event(2000)])
    assert [e["id"] for e in kept_later] == ["evt-2000"]


async def test_overlapping_filters_see_each_others_claims(dedupe: Deduplicator) -> None:
    batch = [_event(n) for n in range(300)]
    (one, _), (two, _) = await asyncio.gather(dedupe.filter(batch), dedupe.filter(list(reversed(batch))))
    assert len(one) + len(two) == 300


def test_fingerprints_stay_what_the_store_already_holds() -> None:
    # The fingerprints of the window's done ids were written as blake2b of the sorted JSON with
    # OPT_NON_STR_KEYS: any faster way must give the same values, or redeliveries turn into conflicts.
    for raw in ({"b": 1, "a": [{"y": "é", "x": None}]}, {1: "int key", "a": 2}, {"z": 1.5, "msys": {}}):
        event = _event(7)
        event["data"]["raw"] = raw
        legacy = orjson.dumps([event["type"], raw], option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
        assert content_fingerprint(event) == hashlib.blake2b(legacy, digest_size=16).hexdigest()


async def test_each_source_keeps_ids_for_its_own_window(redis_url: str) -> None:
    """``dedupe_window_hours`` of a source: its ids expire from the store after that window, the rest after
    the default one (the expiry Redis holds for each id, claim and done alike)."""
    prefix = f"test:{uuid.uuid4().hex}:"
    store = RedisDedupeStore.from_url(redis_url, prefix)
    client = aioredis.Redis.from_url(redis_url)
    try:
        dedupe = Deduplicator(store, window_seconds=72 * 3600.0, source_windows={"short": 1800.0})
        long_lived, short_lived = _event(1), _event(2)
        short_lived["data"]["source_id"] = "short"
        kept, _ = await dedupe.filter([long_lived, short_lived])
        assert len(kept) == 2
        pending = {e["id"]: await client.pttl(f"{prefix}{e['id']}") for e in kept}
        await dedupe.confirm(kept)
        done = {e["id"]: await client.pttl(f"{prefix}{e['id']}") for e in kept}
        for ttl in (pending, done):
            assert 1_790_000 < ttl["evt-2"] <= 1_800_000
            assert 72 * 3_600_000 - 10_000 < ttl["evt-1"] <= 72 * 3_600_000
    finally:
        await store.close()
        await client.aclose()
        await forget_keys(redis_url, prefix)


async def test_a_lapsed_claim_for_other_content_that_went_out_is_a_conflict_not_a_duplicate(
    redis_url: str, kafka_bootstrap: str
) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    topic = f"lapsed-{uuid.uuid4().hex[:8]}.events"
    await ensure_topics(kafka_bootstrap, [topic], 1)
    store = RedisDedupeStore.from_url(redis_url, prefix)
    try:
        crashed = Deduplicator(store, window_seconds=600.0, lease_seconds=0.2)
        original = _event(7)
        kept, _ = await crashed.filter([original])  # claimed and published, then the process died: no confirm
        assert len(kept) == 1
        await produce(kafka_bootstrap, topic, [(None, orjson.dumps(original), [("ce_id", b"evt-7")])])
        await asyncio.sleep(0.35)
        check = EventsTopicCheck(kafka_bootstrap, topic)  # the real search of the events topic
        survivor = Deduplicator(store, window_seconds=600.0, published_check=check)
        other = _event(7)
        other["data"]["raw"] = {"msys": {"message_event": {"type": "delivery", "event_id": "7", "rcpt_to": "x@y"}}}
        kept, conflicts = await survivor.filter([other])
        assert kept == [] and [reason for _, reason in conflicts] == ["conflicting_duplicate"]
        # What the store now holds as done is the content that went out: the original is a duplicate.
        kept, conflicts = await survivor.filter([_event(7)])
        assert kept == [] and conflicts == []
    finally:
        await store.close()
        await forget_keys(redis_url, prefix)
