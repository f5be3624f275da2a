"""Issue 4's "done means": every fixture posted to a running gateway + processor gives exactly its
events on espwire.events (or its dead letter on espwire.dlq), through the real broker."""

from __future__ import annotations

import asyncio
import io
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from espwire.event import EVENT_ADAPTER
from processors.consumer import run_processor
from processors.dead_letter import dead_letter_info
from tests.fixture_cases import all_http_cases, event_mismatches
from tests.support.gateway import gateway_settings, running_gateway
from tests.support.kafka import consume_all

CASES = [c for c in all_http_cases() if c.meta["expect_status"] == 200]


def unmatched(expected: list[dict[str, Any]], events: list[dict[str, Any]]) -> list[str]:
    """Matches as multisets: one request's events may sit on several partitions (keyed by recipient)."""
    remaining = list(events)
    problems = []
    for exp in expected:
        match = next((ev for ev in remaining if not event_mismatches(exp, ev)), None)
        if match is None:
            problems.append(f"no event like {exp}")
        else:
            remaining.remove(match)
    problems.extend(f"unexpected {ev['type']} {ev.get('subject')}" for ev in remaining)
    return problems


async def test_every_fixture_gives_its_events(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    settings = gateway_settings(topic_prefix, tmp_path)
    stop = asyncio.Event()
    processor = asyncio.create_task(run_processor(settings, kafka_bootstrap, stop))
    case_of_request: dict[str, Any] = {}
    async with running_gateway(settings, kafka_bootstrap) as gateway, aiohttp.ClientSession() as session:
        for case in CASES:
            url = f"{gateway.url}/hooks/{case.provider}" + (f"?{case.meta['query']}" if case.meta.get("query") else "")
            body = io.BytesIO(case.body) if case.meta["method"] not in ("GET", "HEAD") else None
            async with session.request(case.meta["method"], url, data=body, headers=case.headers) as response:
                assert response.status == 200, case.id
                if case.meta["method"] != "HEAD":
                    case_of_request[(await response.json())["request_id"]] = case
        dedupe = settings.dedupe.enabled
        expected_total = sum(len(c.expect_events) for c in CASES if not (dedupe and c.meta.get("duplicate_of")))
        expected_dlq = sum(1 for c in CASES if c.meta.get("expect_dlq"))
        records = await consume_all(kafka_bootstrap, f"{topic_prefix}.events", expect=expected_total, timeout=90)
        dead = await consume_all(kafka_bootstrap, f"{topic_prefix}.dlq", expect=expected_dlq, idle_seconds=2)
    stop.set()
    await processor

    by_case: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        event = orjson.loads(record.value)
        EVENT_ADAPTER.validate_python(event)
        assert dict(record.headers)["ce_id"] == event["id"].encode()
        case = case_of_request[event["data"]["request_id"]]
        # Original and redelivery may be adapted in one batch, in either order: whichever comes
        # first is published, once, so count a redelivery's events towards its original.
        original = case.meta.get("duplicate_of") if dedupe else None
        by_case[f"{case.folder}/{original}" if original else case.id].append(event)

    problems = {}
    for case in CASES:
        expected = case.expect_events
        if dedupe and case.meta.get("duplicate_of"):
            expected = []  # a redelivery: the original's events already went out once
        if issues := unmatched(expected, by_case.get(case.id, [])):
            problems[case.id] = issues
    assert not problems, problems
    assert len(records) == expected_total

    dead_cases = {case_of_request[orjson.loads(dict(r.headers)["espwire-envelope"])["request_id"]].id: r for r in dead}
    assert set(dead_cases) == {c.id for c in CASES if c.meta.get("expect_dlq")}
    for case_id, record in dead_cases.items():
        info = dead_letter_info(record.headers)
        assert info and info["reason"], case_id
        assert record.value == next(c for c in CASES if c.id == case_id).body, "the dead letter keeps the body"
