"""Issue 5: when the dedupe store is unreachable the processor neither drops nor crashes. By default it
pauses and reports not ready, then catches up once the store answers; with ``on_store_error = "pass"``
it keeps publishing without dedupe. Real broker, real Redis behind a TCP proxy the test cuts."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest

from espwire.broker import free_port
from espwire.envelope import Envelope
from espwire.topics import Topics, ensure_topics
from processors.consumer import run_processor
from processors.dedupe import Claim, ClaimEntry, DedupeStoreError, MessageEvent, MessageState, RedisDedupeStore
from processors.deduplicate import Deduplicator
from processors.pipeline import Pipeline
from tests.deploy.processes import wait_http_ok
from tests.support.gateway import gateway_settings
from tests.support.kafka import consume_all
from tests.support.outage_proxy import OutageProxy
from tests.support.processor import metric_value, post_raw, sparkpost_request, start_processor
from tests.support.redis_keys import forget_keys

BATCH = 50


def _envelope(batch: int, request_id: str) -> Envelope:
    return sparkpost_request(batch, BATCH, request_id)


async def _post(bootstrap: str, topic: str, *envelopes: Envelope) -> None:
    await post_raw(bootstrap, topic, list(envelopes))


async def _processor_behind_proxy(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, prefix: str, env: dict[str, str]
) -> tuple[OutageProxy, str, subprocess.Popen[bytes]]:
    """A proxy in front of Redis, and a processor that reaches Redis through it (with its /metrics URL)."""
    target = urlsplit(redis_url)
    proxy = OutageProxy(target.hostname or "127.0.0.1", target.port or 6379)
    await proxy.start()
    metrics_port = free_port()
    store_url = f"redis://127.0.0.1:{proxy.port}{target.path or '/0'}"
    processor = start_processor(kafka_bootstrap, prefix, tmp_path, store_url, metrics_port=metrics_port, extra_env=env)
    return proxy, f"http://127.0.0.1:{metrics_port}", processor


async def _readiness(url: str) -> int:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        async with session.get(f"{url}/readyz") as response:
            return response.status


async def _store_up(url: str) -> float | None:
    return await metric_value(url, "espwire_dedupe_store_up", store="redis")


async def _until_readiness(url: str, status: int, processor: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (current := await _readiness(url)) != status:
        assert processor.poll() is None, "the processor must not exit while the store is away"
        assert asyncio.get_running_loop().time() < deadline, f"/readyz stayed {current}, expected {status}"
        await asyncio.sleep(0.2)


def _ids(records: list[object]) -> Counter[str]:
    return Counter(orjson.loads(record.value)["id"] for record in records)  # type: ignore[attr-defined]


@pytest.mark.parametrize("on_store_error", ["pause", "pass"])
async def test_an_unreachable_store_pauses_or_passes_and_loses_nothing(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, on_store_error: str
) -> None:
    prefix = f"outage{uuid.uuid4().hex[:8]}"
    topics = Topics(prefix)
    await ensure_topics(kafka_bootstrap, topics.core(), 2)
    env = {"ESPWIRE_DEDUPE_ON_STORE_ERROR": on_store_error}
    proxy, url, processor = await _processor_behind_proxy(kafka_bootstrap, redis_url, tmp_path, prefix, env)
    try:
        await wait_http_ok(f"{url}/readyz", 60)
        await _post(kafka_bootstrap, topics.raw, _envelope(0, "req-0"))
        before = await consume_all(kafka_bootstrap, topics.events, expect=BATCH, timeout=60)
        assert len(_ids(before)) == BATCH
        assert await _store_up(url) == 1.0

        proxy.cut()
        await _post(kafka_bootstrap, topics.raw, _envelope(1, "req-1"))
        if on_store_error == "pause":
            # A provider's retry of the first batch arrives while the store is away: still a duplicate.
            await _post(kafka_bootstrap, topics.raw, _envelope(0, "req-0-retry"))
            await _until_readiness(url, 503, processor, timeout=30)
            assert await _store_up(url) == 0.0
            errors = await metric_value(url, "espwire_dedupe_store_errors_total", store="redis", operation="begin")
            assert errors is not None and errors >= 1
            await asyncio.sleep(2)
            during = await consume_all(kafka_bootstrap, topics.events, idle_seconds=2, timeout=30)
            assert len(during) == BATCH, "paused: nothing published without dedupe"
        else:
            during = await consume_all(kafka_bootstrap, topics.events, expect=2 * BATCH, timeout=60)
            assert len(_ids(during)) == 2 * BATCH, "passed: the batch came out without the store"
            assert await _store_up(url) == 0.0
            assert await _readiness(url) == 200, "passing events on, the processor stays ready"
            assert await metric_value(url, "espwire_dedupe_store_errors_total", store="redis", operation="begin")
        assert processor.poll() is None

        proxy.restore()
        await _until_readiness(url, 200, processor, timeout=60)
        await _post(kafka_bootstrap, topics.raw, _envelope(2, "req-2"))
        after = await consume_all(kafka_bootstrap, topics.events, expect=3 * BATCH, idle_seconds=3, timeout=90)
        assert await _store_up(url) == 1.0
    finally:
        processor.terminate()
        returncode = await asyncio.to_thread(processor.wait, 30)
        await proxy.stop()
        await forget_keys(redis_url, f"test:{prefix}:")
    ids = _ids(after)
    assert len(ids) == 3 * BATCH, "no event lost"
    assert [i for i, n in ids.items() if n > 1] == [], "no event twice"
    assert returncode == 0, (tmp_path / "processor.log").read_text()[-3000:]


async def test_passing_on_a_hanging_store_does_not_wait_a_timeout_per_batch(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    """A store that takes connections and never answers costs one client timeout (5 s), not one per
    batch: after a failure dedupe and the bot-click rules leave it alone for a while (StoreBackoff)."""
    prefix = f"hang{uuid.uuid4().hex[:8]}"
    topics = Topics(prefix)
    await ensure_topics(kafka_bootstrap, topics.core(), 1)
    # One request a slice: twelve slices, each of which would wait out the timeout without the back-off.
    env = {"ESPWIRE_DEDUPE_ON_STORE_ERROR": "pass", "ESPWIRE_PROCESSOR_MAX_BATCH_BYTES": "1024"}
    proxy, url, processor = await _processor_behind_proxy(kafka_bootstrap, redis_url, tmp_path, prefix, env)
    try:
        await wait_http_ok(f"{url}/readyz", 60)
        proxy.delay = 3600.0  # every byte either way is held: the store hangs
        await _post(kafka_bootstrap, topics.raw, *(_envelope(n, f"req-{n}") for n in range(12)))
        started = asyncio.get_running_loop().time()
        out = await consume_all(kafka_bootstrap, topics.events, expect=12 * BATCH, idle_seconds=1, timeout=90)
        took = asyncio.get_running_loop().time() - started
        assert len(_ids(out)) == 12 * BATCH
        # A 5 s timeout a slice would take a minute (61 s measured without the back-off, 14 s with it).
        assert took < 35, f"{took:.0f} s for twelve slices on a hanging store"
        assert await _store_up(url) == 0.0
    finally:
        processor.terminate()
        await asyncio.to_thread(processor.wait, 30)
        await proxy.stop()
        await forget_keys(redis_url, f"test:{prefix}:")


async def test_a_processor_paused_on_the_store_stops_on_sigterm_and_its_slice_comes_out_later(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    """SIGTERM while paused: the stuck slice gets a short drain, then is cancelled, so the process exits
    (a pod must not wait for Redis); its events come out once from the next processor."""
    prefix = f"stop{uuid.uuid4().hex[:8]}"
    topics = Topics(prefix)
    await ensure_topics(kafka_bootstrap, topics.core(), 2)
    proxy, url, processor = await _processor_behind_proxy(kafka_bootstrap, redis_url, tmp_path, prefix, {})
    try:
        await wait_http_ok(f"{url}/readyz", 60)
        proxy.cut()
        await _post(kafka_bootstrap, topics.raw, _envelope(0, "req-0"))
        await _until_readiness(url, 503, processor, timeout=30)
        stopped_at = asyncio.get_running_loop().time()
        processor.terminate()
        returncode = await asyncio.to_thread(processor.wait, 40)
        took = asyncio.get_running_loop().time() - stopped_at
        assert returncode == 0, (tmp_path / "processor.log").read_text()[-3000:]
        assert took < 25, f"stopped after {took:.0f} s"
        proxy.restore()
        processor = start_processor(kafka_bootstrap, prefix, tmp_path, redis_url)
        out = await consume_all(kafka_bootstrap, topics.events, expect=BATCH, idle_seconds=3, timeout=60)
    finally:
        processor.terminate()
        await asyncio.to_thread(processor.wait, 30)
        await proxy.stop()
        await forget_keys(redis_url, f"test:{prefix}:")
    ids = _ids(out)
    assert len(ids) == BATCH and max(ids.values()) == 1


async def test_a_processor_paused_past_the_poll_interval_hands_its_partitions_over(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    """A processor paused on the store stops fetching; past ``max_poll_interval_ms`` it leaves the group,
    and the processor that still reaches the store takes its partitions and publishes its share meanwhile.
    Once the store answers again the paused one drops what the other published (duplicates), rejoins and
    consumes again, and every event is on the topic once."""
    prefix = f"poll{uuid.uuid4().hex[:8]}"
    topics = Topics(prefix)
    await ensure_topics(kafka_bootstrap, topics.core(), 2)
    env = {"ESPWIRE_PROCESSOR_MAX_POLL_INTERVAL_MS": "4000"}
    (tmp_path / "cut").mkdir()
    (tmp_path / "direct").mkdir()
    proxy, url, cut = await _processor_behind_proxy(kafka_bootstrap, redis_url, tmp_path / "cut", prefix, env)
    direct = start_processor(kafka_bootstrap, prefix, tmp_path / "direct", redis_url, extra_env=env)
    posted: list[int] = []

    async def post(count: int) -> None:
        numbers = range(len(posted), len(posted) + count)
        await _post(kafka_bootstrap, topics.raw, *(_envelope(n, f"req-{n}") for n in numbers))
        posted.extend(numbers)

    try:
        await wait_http_ok(f"{url}/readyz", 60)
        await post(8)
        await consume_all(kafka_bootstrap, topics.events, expect=8 * BATCH, timeout=90)
        records_before = await metric_value(url, "espwire_processor_records_total", provider="sparkpost")
        assert records_before, "the member behind the proxy consumed too"

        proxy.cut()
        await post(12)
        await _until_readiness(url, 503, cut, timeout=30)
        # Past the poll interval the paused member leaves; the other takes both partitions and publishes all.
        during = await consume_all(kafka_bootstrap, topics.events, expect=20 * BATCH, timeout=90)
        assert len(_ids(during)) == 20 * BATCH, "the paused member's share came out through the other"
        assert cut.poll() is None and direct.poll() is None

        proxy.restore()
        await _until_readiness(url, 200, cut, timeout=60)
        records_paused = await metric_value(url, "espwire_processor_records_total", provider="sparkpost")
        # It rejoins and gets a partition back: records it consumes now raise its count.
        deadline = asyncio.get_running_loop().time() + 90
        while (await metric_value(url, "espwire_processor_records_total", provider="sparkpost") or 0) <= (
            records_paused or 0
        ):
            assert asyncio.get_running_loop().time() < deadline, "the paused member never consumed again"
            await post(4)
            await asyncio.sleep(3)
        after = await consume_all(
            kafka_bootstrap, topics.events, expect=len(posted) * BATCH, idle_seconds=4, timeout=120
        )
        assert cut.poll() is None, (tmp_path / "cut" / "processor.log").read_text()[-3000:]
    finally:
        codes = []
        for process in (cut, direct):
            process.terminate()
            codes.append(await asyncio.to_thread(process.wait, 30))
        await proxy.stop()
        await forget_keys(redis_url, f"test:{prefix}:")
    ids = _ids(after)
    assert len(ids) == len(posted) * BATCH, "no event lost"
    assert [i for i, n in ids.items() if n > 1] == [], "no event twice"
    assert codes == [0, 0], "both stop cleanly"


class _OutageThenBug:
    """The real Redis store, but its first claim meets an outage and its second a malformed answer (a bug
    in a store, or a proxy answering garbage): not a store error, so no retry covers it."""

    name = "redis"

    def __init__(self, store: RedisDedupeStore) -> None:
        self.store = store
        self.claims = 0

    async def begin(self, entries: Sequence[ClaimEntry], owner: str, lease_seconds: float) -> list[Claim]:
        self.claims += 1
        if self.claims == 1:
            raise DedupeStoreError("redis begin: connection refused", retriable=True)
        if self.claims == 2:
            raise ValueError("malformed reply")
        return await self.store.begin(entries, owner, lease_seconds)

    async def commit(self, entries: Sequence[ClaimEntry], owner: str) -> None:
        await self.store.commit(entries, owner)

    async def release(self, ids: Sequence[str], owner: str) -> None:
        await self.store.release(ids, owner)

    async def note_message_events(self, items: Sequence[MessageEvent], ttl_seconds: float) -> list[MessageState]:
        return await self.store.note_message_events(items, ttl_seconds)

    async def close(self) -> None:
        await self.store.close()


async def test_a_slice_failing_while_paused_on_the_store_stops_the_processor(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Paused (the store went away) and then the retrying slice fails for another reason: the processor
    raises it, as it does when not paused, instead of waiting for a store answer that nothing will ask for."""
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics.core(), 1)
    store = _OutageThenBug(RedisDedupeStore.from_url(redis_url, f"test:{topic_prefix}:"))
    pipeline = Pipeline(topics, dedupe=Deduplicator(store, window_seconds=600))
    await _post(kafka_bootstrap, topics.raw, _envelope(0, "req-0"))
    stop = asyncio.Event()
    settings = gateway_settings(topic_prefix, tmp_path)
    task = asyncio.create_task(run_processor(settings, kafka_bootstrap, stop, pipeline=pipeline))
    try:
        with pytest.raises(ValueError, match="malformed reply"):
            await asyncio.wait_for(task, 60)
        assert store.claims == 2
    finally:
        stop.set()
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()
        await forget_keys(redis_url, f"test:{topic_prefix}:")
