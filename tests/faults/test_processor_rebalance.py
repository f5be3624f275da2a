"""A processor whose partitions move to a new member while its slices are still in flight keeps
running, and every event comes out once (real broker; real Redis behind a slow link, so that slices
are mid-way through their store round trips when the group rebalances)."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from espwire.topics import Topics, ensure_topics
from tests.support.kafka import consume_all
from tests.support.outage_proxy import OutageProxy
from tests.support.processor import post_raw, sparkpost_request, start_processor
from tests.support.redis_keys import forget_keys

BATCHES, SIZE = 24, 50


async def _post(bootstrap: str, topic: str, first: int, count: int) -> None:
    await post_raw(bootstrap, topic, [sparkpost_request(b, SIZE) for b in range(first, first + count)])


async def _stop(process: subprocess.Popen[bytes]) -> int | None:
    process.terminate()
    return await asyncio.to_thread(process.wait, 30)


async def test_partitions_moving_mid_slice_keep_the_processor_running_and_events_once(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    prefix = f"rebal{uuid.uuid4().hex[:8]}"
    topics = Topics(prefix)
    await ensure_topics(kafka_bootstrap, topics.core(), 4)
    target = urlsplit(redis_url)
    slow = OutageProxy(target.hostname or "127.0.0.1", target.port or 6379, delay=0.4)
    await slow.start()
    store_url = f"redis://127.0.0.1:{slow.port}{target.path or '/0'}"
    env = {"ESPWIRE_DEDUPE_LEASE_SECONDS": "30", "ESPWIRE_PROCESSOR_MAX_BATCH_BYTES": "16384"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = start_processor(kafka_bootstrap, prefix, tmp_path / "a", store_url, extra_env=env)
    second: subprocess.Popen[bytes] | None = None
    try:
        await _post(kafka_bootstrap, topics.raw, 0, BATCHES // 2)
        # The first member is busy with its slices (each store call takes ~0.8 s) when the second joins.
        started = await consume_all(kafka_bootstrap, topics.events, expect=1, idle_seconds=0.5, timeout=60)
        assert started, "the first processor publishes"
        second = start_processor(kafka_bootstrap, prefix, tmp_path / "b", store_url, extra_env=env)
        await _post(kafka_bootstrap, topics.raw, BATCHES // 2, BATCHES // 2)
        await asyncio.sleep(8)
        assert first.poll() is None, (tmp_path / "a" / "processor.log").read_text()[-3000:]
        assert second.poll() is None, (tmp_path / "b" / "processor.log").read_text()[-3000:]
        slow.delay = 0.0
        records = await consume_all(kafka_bootstrap, topics.events, expect=BATCHES * SIZE, idle_seconds=4, timeout=120)
        assert first.poll() is None, (tmp_path / "a" / "processor.log").read_text()[-3000:]
    finally:
        codes = [await _stop(p) for p in (first, second) if p is not None]
        await slow.stop()
        await forget_keys(redis_url, f"test:{prefix}:")
    ids = Counter(orjson.loads(r.value)["id"] for r in records)
    assert len(ids) == BATCHES * SIZE, "no event lost"
    assert [i for i, n in ids.items() if n > 1] == [], "no event twice"
    assert codes == [0, 0], "both stop cleanly"
