"""Raw records our gateway would never write (another producer on espwire.raw) are dead letters, not a crash."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from espwire.envelope import ENVELOPE_HEADER, Envelope
from espwire.topics import Topics, ensure_topics
from processors.consumer import run_processor
from processors.dead_letter import dead_letter_info
from tests.support.gateway import gateway_settings
from tests.support.kafka import consume_all, produce
from tests.support.processor import post_raw, sparkpost_batch, sparkpost_request

# Each a valid JSON envelope with one field of a type the gateway never writes: each crashed the
# processor (outside any handler) on every restart, holding back the partition's good records.
MISTYPED: list[dict[str, Any]] = [
    {"options": "abc"},
    {"provider": ["sparkpost"]},
    {"source_id": {"a": 1}},
    {"provider": "nope", "request_id": 5},
    {"provider": "falconide", "received_at": 1795163700},
    {"headers": {"x-a": 1}},
    {"remote_addr": 7},
]


@pytest.mark.parametrize("wrong", MISTYPED, ids=lambda wrong: ",".join(wrong))
def test_a_mistyped_envelope_field_is_refused(wrong: dict[str, Any]) -> None:
    meta = {**sparkpost_request(1, 1, "req-bad").metadata(), **wrong}
    with pytest.raises(ValueError, match="is not of its type"):
        Envelope.from_record(b"[]", [(ENVELOPE_HEADER, orjson.dumps(meta))])


async def test_mistyped_envelopes_are_dead_letters_and_the_partition_flows(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = gateway_settings(topic_prefix, tmp_path)
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics.core(), 1)  # one partition: the good record sits behind the bad
    records = []
    for n, wrong in enumerate(MISTYPED):
        bad = sparkpost_request(1, 3, f"req-bad-{n}")
        meta = {**bad.metadata(), **wrong}
        records.append((bad.key, bad.body, [(ENVELOPE_HEADER, orjson.dumps(meta))]))
    good = sparkpost_request(2, 10, "req-good")
    records.append((good.key, good.body, good.kafka_headers()))
    await produce(kafka_bootstrap, topics.raw, records)

    stop = asyncio.Event()
    task = asyncio.create_task(run_processor(settings, kafka_bootstrap, stop))
    try:
        events = await consume_all(kafka_bootstrap, topics.events, expect=10, idle_seconds=2, timeout=60)
        dead = await consume_all(kafka_bootstrap, topics.dlq, expect=len(MISTYPED), idle_seconds=1, timeout=30)
        assert not task.done(), "the processor is still running"
    finally:
        stop.set()
        await task
    assert len({orjson.loads(r.value)["id"] for r in events}) == 10
    reasons = [(dead_letter_info(r.headers) or {}).get("reason") for r in dead]
    assert reasons == ["bad_envelope"] * len(MISTYPED)
    assert sorted(r.value for r in dead) == sorted(body for _, body, _ in records[:-1]), "each kept whole"


async def test_an_event_over_the_record_limit_is_a_dead_letter_and_the_rest_come_out_once(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """A body under the gateway's limit can make an event over the broker's (``data.metadata`` repeats the
    ``rcpt_meta`` that ``data.raw`` holds): real Kafka refuses that record, and the processor stopped on it on
    every restart. It is an ``event_too_large`` dead letter instead, the other events come out once."""
    settings = gateway_settings(topic_prefix, tmp_path)
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics.core(), 1)
    items = orjson.loads(sparkpost_batch(3, 5))
    huge = {f"k{i}": "x" * 1000 for i in range(8600)}  # 8.6 MB, twice in the event
    big = {"type": "delivery", "event_id": "900000000001", "rcpt_to": "big@example.com", "rcpt_meta": huge}
    items.insert(2, {"msys": {"message_event": big}})
    request = Envelope(
        "sparkpost", "sparkpost", "req-big", "2026-11-24T00:00:00Z", "POST", "application/json", orjson.dumps(items)
    )
    assert len(request.body) < settings.gateway.max_body_bytes
    await post_raw(kafka_bootstrap, topics.raw, [request])

    stop = asyncio.Event()
    task = asyncio.create_task(run_processor(settings, kafka_bootstrap, stop))
    try:
        events = await consume_all(kafka_bootstrap, topics.events, expect=5, idle_seconds=2, timeout=60)
        dead = await consume_all(kafka_bootstrap, topics.dlq, expect=1, idle_seconds=1, timeout=30)
        assert not task.done(), "the processor is still running"
    finally:
        stop.set()
        await task
    assert sorted(orjson.loads(r.value)["data"]["provider_event_id"] for r in events) == [
        f"{3:06d}{n:06d}" for n in range(5)
    ]
    assert len(dead) == 1
    info = dead_letter_info(dead[0].headers) or {}
    assert info["reason"] == "event_too_large" and "req-big" in info["detail"]
    slim = orjson.loads(dead[0].value)
    assert slim["data"]["provider_event_id"] == "900000000001"
    assert slim["data"]["recipient"] == {"email": "big@example.com"}
    assert "raw" not in slim["data"] and "metadata" not in slim["data"]
