"""Issue 5's "done means": a processor killed mid-batch, or a redelivered batch, leaves each event
exactly once on espwire.events (real broker; real Redis, and the SQLite dev store)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest

from espwire.envelope import Envelope
from espwire.failpoints import EXIT_CODE
from espwire.topics import Topics, ensure_topics
from tests.support.kafka import consume_all
from tests.support.processor import post_raw, sparkpost_request, start_processor
from tests.support.redis_keys import forget_keys


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

    survivor = start_processor(kafka_bootstrap, prefix, tmp_path, redis_url, extra_env=env)
    try:
        records = await consume_all(kafka_bootstrap, topics.events, expect=400, idle_seconds=4, timeout=90)
    finally:
        survivor.terminate()
        await asyncio.to_thread(survivor.wait, 30)
        await forget_keys(redis_url, f"test:{prefix}:")
    ids = Counter(orjson.loads(r.value)["id"] for r in records)
    assert len(ids) == 400, "no event lost"
    assert [i for i, n in ids.items() if n > 1] == [], "no event twice"
