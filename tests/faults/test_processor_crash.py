"""Issue 5's "done means": a processor killed mid-batch, or a redelivered batch, leaves each event
exactly once on espwire.events (real broker; real Redis, and the SQLite dev store)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import orjson
import pytest

from espwire.broker import free_port
from espwire.envelope import Envelope
from espwire.failpoints import EXIT_CODE
from espwire.topics import Topics, ensure_topics
from tests.support.kafka import consume_all
from tests.support.processor import metric_value, post_raw, sparkpost_request, start_processor
from tests.support.redis_keys import forget_keys


async def _until_redelivery_committed(url: str, requests: int, survivor: subprocess.Popen[bytes]) -> None:
    deadline = asyncio.get_running_loop().time() + 90
    while True:
        assert survivor.poll() is None, "the survivor runs"
        with contextlib.suppress(aiohttp.ClientError):
            read = await metric_value(url, "espwire_processor_records_total", provider="sparkpost")
            committed = await metric_value(url, "espwire_processor_batch_seconds_count")
            if (read or 0) >= requests and (committed or 0) >= 1:
                return
        assert asyncio.get_running_loop().time() < deadline, "the survivor did not process the redelivery"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize(
    ("store", "failpoint"),
    [
        ("redis", "processor.before_publish"),
        ("redis", "processor.after_publish"),
        ("redis", "processor.after_confirm"),
        # The dev store (SQLite in the data dir) across a kill and a restart, as `espwire dev` runs it.
        ("sqlite", "processor.before_publish"),
        ("sqlite", "processor.after_publish"),
    ],
)
async def test_killed_processor_gives_each_event_once(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path, store: str, failpoint: str
) -> None:
    prefix = f"crash{uuid.uuid4().hex[:8]}"
    topics = Topics(prefix)
    await ensure_topics(kafka_bootstrap, topics.core(), 2)
    envelopes = [sparkpost_request(b, 50) for b in range(8)]
    # A provider retry too: the same batch delivered twice (SparkPost retries anything but a 2xx).
    envelopes.append(
        Envelope(
            "sparkpost", "sparkpost", "req-retry", "2026-11-24T00:00:05Z", "POST", "application/json", envelopes[0].body
        )
    )
    await post_raw(kafka_bootstrap, topics.raw, envelopes)

    env = {"ESPWIRE_DEDUPE_STORE": store}
    crashing = start_processor(kafka_bootstrap, prefix, tmp_path, redis_url, failpoint=failpoint, extra_env=env)
    assert await asyncio.to_thread(crashing.wait, 60) == EXIT_CODE, "the failpoint killed it mid-batch"

    metrics_port = free_port()
    survivor = start_processor(kafka_bootstrap, prefix, tmp_path, redis_url, metrics_port=metrics_port, extra_env=env)
    try:
        # Events the crashed one published are on the topic already: wait until the survivor has itself
        # read the nine uncommitted requests again and committed them, or it proves nothing.
        await _until_redelivery_committed(f"http://127.0.0.1:{metrics_port}", len(envelopes), survivor)
        records = await consume_all(kafka_bootstrap, topics.events, expect=400, idle_seconds=4, timeout=90)
    finally:
        survivor.terminate()
        await asyncio.to_thread(survivor.wait, 30)
        await forget_keys(redis_url, f"test:{prefix}:")
    ids = Counter(orjson.loads(r.value)["id"] for r in records)
    assert len(ids) == 400, "no event lost"
    assert [i for i, n in ids.items() if n > 1] == [], "no event twice"
