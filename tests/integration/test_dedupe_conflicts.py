"""Dedupe through a real processor, broker and Redis: a provider's retry is dropped and counted by
provider and source (SparkPost's event ids, and Falconide's content fingerprints); the same event id
with other content (in a later request or within one) goes to espwire.dlq as conflicting_duplicate,
counted, while the first content stays the one published."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import orjson

from espwire.broker import free_port
from espwire.envelope import Envelope
from espwire.topics import Topics, ensure_topics
from processors.dead_letter import DLQ_HEADER
from tests.deploy.processes import wait_http_ok
from tests.support.kafka import consume_all, produce
from tests.support.processor import metric_value, sparkpost_batch, start_processor
from tests.support.redis_keys import forget_keys


def _request(request_id: str, body: bytes, provider: str = "sparkpost") -> Envelope:
    return Envelope(provider, provider, request_id, "2026-11-24T00:00:00Z", "POST", "application/json", body)


FALCONIDE = Path(__file__).parents[1] / "data" / "providers" / "falconide" / "all_events_array.body"


def _with_other_recipients(body: bytes) -> bytes:
    items = orjson.loads(body)
    for item in items:
        item["msys"]["message_event"]["rcpt_to"] = "someone.else@example.com"
    return orjson.dumps(items)


async def test_retries_are_dropped_and_conflicts_dead_lettered_and_counted(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    prefix = f"conflict{uuid.uuid4().hex[:8]}"
    topics = Topics(prefix)
    await ensure_topics(kafka_bootstrap, topics.core(), 1)  # one partition: the requests are read in order
    original = sparkpost_batch(0, 10)
    same_id_twice = sparkpost_batch(1, 1)
    within = orjson.dumps(orjson.loads(same_id_twice) + orjson.loads(_with_other_recipients(same_id_twice)))
    requests = [
        _request("req-original", original),
        _request("req-retry", original),  # SparkPost's retry: the same body
        _request("req-conflict", _with_other_recipients(sparkpost_batch(0, 5))),  # 5 known ids, other content
        _request("req-within", within),  # one new id, twice, with two contents
        # Falconide gives no event ids (ids are content fingerprints) and never retries, but a replay or
        # a proxy in front of espwire may send a request twice: its nine events still come out once.
        _request("req-falconide", FALCONIDE.read_bytes(), "falconide"),
        _request("req-falconide-again", FALCONIDE.read_bytes(), "falconide"),
    ]
    await produce(kafka_bootstrap, topics.raw, [(e.key, e.body, e.kafka_headers()) for e in requests])
    metrics_port = free_port()
    url = f"http://127.0.0.1:{metrics_port}"
    processor = start_processor(kafka_bootstrap, prefix, tmp_path, redis_url, metrics_port=metrics_port)
    try:
        await wait_http_ok(f"{url}/readyz", 60)
        events = await consume_all(kafka_bootstrap, topics.events, expect=20, idle_seconds=3, timeout=60)
        dead = await consume_all(kafka_bootstrap, topics.dlq, expect=6, idle_seconds=2, timeout=30)
        conflicts = await metric_value(url, "espwire_dedupe_conflicts_total", provider="sparkpost", source="sparkpost")
        dropped = await metric_value(
            url, "espwire_dedupe_duplicates_dropped_total", provider="sparkpost", source="sparkpost"
        )
        falconide_dropped = await metric_value(
            url, "espwire_dedupe_duplicates_dropped_total", provider="falconide", source="falconide"
        )
        claims = await metric_value(url, "espwire_dedupe_store_seconds_count", store="redis", operation="begin")
        dead_letters = await metric_value(url, "espwire_processor_dead_letters_total", reason="conflicting_duplicate")
    finally:
        processor.terminate()
        await asyncio.to_thread(processor.wait, 30)
        await forget_keys(redis_url, f"test:{prefix}:")

    published = [orjson.loads(r.value) for r in events]
    ids = Counter(e["id"] for e in published)
    assert len(ids) == 20 and max(ids.values()) == 1, "each id once: 10 + 1 SparkPost, 9 Falconide"
    assert sum(e["data"]["provider"] == "falconide" for e in published) == 9
    assert all(e["subject"] != "someone.else@example.com" for e in published), "the first content stays"
    reasons = [orjson.loads(dict(r.headers)[DLQ_HEADER])["reason"] for r in dead]
    assert reasons == ["conflicting_duplicate"] * 6
    assert {orjson.loads(r.value)["subject"] for r in dead} == {"someone.else@example.com"}
    assert dict(dead[0].headers)["ce_id"].decode() in ids, "the dead letter names the id it conflicts with"
    assert conflicts == 6 and dead_letters == 6
    assert dropped == 10, "the retry's ten events, counted by provider and source"
    assert falconide_dropped == 9
    assert claims is not None and claims >= 1, "store latency is recorded"
