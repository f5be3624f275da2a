"""A record the adapter could not handle goes to espwire.dlq whole; `replay dlq` brings it back once fixed."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import ClassVar

import orjson

from espwire.clock import parse_utc
from espwire.envelope import Envelope
from espwire.topics import Topics, ensure_topics
from processors.adapters import ADAPTERS
from processors.adapters.base import AdaptResult, Failure
from processors.consumer import run_processor
from processors.dead_letter import (
    Selection,
    dead_letter_headers,
    dead_letter_info,
    list_dead_letters,
    replay_dead_letters,
)
from processors.pipeline import Pipeline
from tests.fixture_cases import load_cases
from tests.support.gateway import gateway_settings
from tests.support.kafka import consume_all, produce


class BrokenSparkPost:
    """Stands in for an adapter with a bug that a later release fixes."""

    provider: ClassVar[str] = "sparkpost"
    version: ClassVar[str] = "0-broken"

    def adapt(self, envelope: Envelope) -> AdaptResult:
        return AdaptResult(failures=[Failure("adapter_error", "simulated bug")])


async def _run_until(settings, bootstrap, pipeline, topic, expect):  # type: ignore[no-untyped-def]
    stop = asyncio.Event()
    task = asyncio.create_task(run_processor(settings, bootstrap, stop, pipeline=pipeline))
    records = await consume_all(bootstrap, topic, expect=expect, idle_seconds=2, timeout=60)
    stop.set()
    await task
    return records


async def test_replay_after_fix_gives_the_events(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    settings = gateway_settings(topic_prefix, tmp_path)
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics.core(), 2)
    case = next(c for c in load_cases("sparkpost") if c.name == "cust_sibling")
    envelope = Envelope(
        "sparkpost", "sparkpost", "req-1", "2026-11-24T00:00:00Z", "POST", "application/json", case.body
    )
    await produce(kafka_bootstrap, topics.raw, [(envelope.key, envelope.body, envelope.kafka_headers())])

    broken = Pipeline(topics, adapters={**ADAPTERS, "sparkpost": BrokenSparkPost()})
    dead = await _run_until(settings, kafka_bootstrap, broken, topics.dlq, 1)
    assert len(dead) == 1
    info = dead_letter_info(dead[0].headers)
    assert info is not None and info["reason"] == "adapter_error" and info["adapter_version"] == "0-broken"
    assert dead[0].value == case.body

    assert await replay_dead_letters(settings, kafka_bootstrap, Selection(source="other-source")) == 0
    assert await replay_dead_letters(settings, kafka_bootstrap, Selection(source="sparkpost")) == 1

    settings = settings.model_copy(update={"processor": settings.processor.model_copy(update={"group_id": "fixed"})})
    fixed = Pipeline(topics)
    # The fixed processor reads raw from the start: the original and the replayed copy give the same ids.
    events = await _run_until(settings, kafka_bootstrap, fixed, topics.events, 2 * len(case.expect_events))
    ids = [orjson.loads(r.value)["id"] for r in events]
    assert len(ids) == 2 * len(case.expect_events)
    assert len(set(ids)) == len(case.expect_events), "replayed events carry the same deterministic ids"


async def test_stale_replays_only_what_an_older_adapter_refused(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = gateway_settings(topic_prefix, tmp_path)
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics.core(), 2)
    case = next(c for c in load_cases("sparkpost") if c.name == "cust_sibling")
    good = Envelope("sparkpost", "sparkpost", "req-1", "2026-11-24T00:00:00Z", "POST", "application/json", case.body)
    await produce(kafka_bootstrap, topics.raw, [(good.key, good.body, good.kafka_headers())])
    broken = Pipeline(topics, adapters={**ADAPTERS, "sparkpost": BrokenSparkPost()})
    assert len(await _run_until(settings, kafka_bootstrap, broken, topics.dlq, 1)) == 1

    # Upgraded: this adapter reads the first request, and refuses a body that is not JSON at all.
    bad = Envelope("sparkpost", "sparkpost", "req-2", "2026-11-24T00:00:01Z", "POST", "application/json", b"{oops")
    await produce(kafka_bootstrap, topics.raw, [(bad.key, bad.body, bad.kafka_headers())])
    settings = settings.model_copy(update={"processor": settings.processor.model_copy(update={"group_id": "fixed"})})
    dead = await _run_until(settings, kafka_bootstrap, Pipeline(topics), topics.dlq, 2)
    versions = {info["reason"]: info["adapter_version"] for r in dead if (info := dead_letter_info(r.headers))}
    assert versions == {"adapter_error": "0-broken", "invalid_json": ADAPTERS["sparkpost"].version}

    assert await replay_dead_letters(settings, kafka_bootstrap, Selection(reason="invalid_json")) == 1

    # More history: the first request refused twice by the old version; a third by the old one, then by this one.
    third = Envelope("sparkpost", "sparkpost", "req-3", "2026-11-24T00:00:02Z", "POST", "application/json", b"{no")
    old_bug, now = [Failure("adapter_error", "simulated bug")], ADAPTERS["sparkpost"].version
    await produce(
        kafka_bootstrap,
        topics.dlq,
        [
            (good.key, good.body, dead_letter_headers(good, old_bug, "0-broken")),
            (third.key, third.body, dead_letter_headers(third, old_bug, "0-broken")),
            (third.key, third.body, dead_letter_headers(third, [Failure("invalid_json", "no")], now)),
        ],
    )
    before = Counter(r.value for r in await consume_all(kafka_bootstrap, topics.raw, expect=3, idle_seconds=2))
    assert await replay_dead_letters(settings, kafka_bootstrap, Selection(stale=True)) == 1
    after = Counter(r.value for r in await consume_all(kafka_bootstrap, topics.raw, expect=4, idle_seconds=2))
    assert after - before == Counter({case.body: 1}), "once, and only what no adapter of this version refused"


async def test_a_request_as_large_as_the_gateway_takes_is_replayed(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = gateway_settings(topic_prefix, tmp_path)
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics.core(), 2)
    body = b"[" + b" " * (3 * 1024 * 1024) + b"{oops"  # 3 MiB: over aiokafka's default 1 MB request
    large = Envelope("sparkpost", "sparkpost", "req-big", "2026-11-24T00:00:00Z", "POST", "application/json", body)
    headers = dead_letter_headers(large, [Failure("invalid_json", "no")], "0-broken")
    await produce(kafka_bootstrap, topics.dlq, [(large.key, large.body, headers)])
    assert await replay_dead_letters(settings, kafka_bootstrap) == 1
    replayed = await consume_all(kafka_bootstrap, topics.raw, expect=1, idle_seconds=1)
    assert [r.value for r in replayed] == [body]


async def test_dead_letters_are_listed_for_people_with_the_replay_filters(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = gateway_settings(topic_prefix, tmp_path)
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics.core(), 1)
    one = Envelope("sparkpost", "sparkpost", "req-1", "2026-11-24T00:00:00Z", "POST", "application/json", b"{oops")
    two = Envelope("falconide", "falconide", "req-2", "2026-11-24T00:00:00Z", "POST", "application/json", b"")
    await produce(
        kafka_bootstrap,
        topics.dlq,
        [
            (one.key, one.body, dead_letter_headers(one, [Failure("invalid_json", "bad")], "4")),
            (two.key, two.body, dead_letter_headers(two, [Failure("empty_body", "no content")], "4")),
        ],
    )
    listed = [letter async for letter in list_dead_letters(settings, kafka_bootstrap)]
    assert [(x["key"], x["reason"], x["source_id"], x["bytes"], x["request"]) for x in listed] == [
        ("req-1", "invalid_json", "sparkpost", 5, True),
        ("req-2", "empty_body", "falconide", 0, True),
    ]
    only = [x["key"] async for x in list_dead_letters(settings, kafka_bootstrap, Selection(reason="empty_body"))]
    assert only == ["req-2"]
    # A time without an offset is UTC (it raised comparing naive and aware times).
    later = Selection(since=parse_utc("2999-01-01T00:00:00"))
    assert [x async for x in list_dead_letters(settings, kafka_bootstrap, later)] == []
