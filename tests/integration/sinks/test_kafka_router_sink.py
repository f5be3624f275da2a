"""Kafka router on the real broker: events re-published by rules, key and CloudEvents headers kept."""

from __future__ import annotations

from pathlib import Path

import orjson

from espwire.config import SinkConfig
from tests.integration.sinks.conftest import publish_events, running_sink, sink_settings
from tests.support.kafka import consume_all
from tests.unit.sinks.factory import make_event


async def test_routes_by_type_and_field(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    config = SinkConfig(
        name="router",
        type="kafka_router",
        batch_wait_ms=50,
        partitions=3,
        routes=[
            {"match": {"type": ["email.bounced", "email.complained"]}, "topic": "{prefix}.{type}"},
            {
                "match": {"provider": ["falconide"], "where": {"data.client.ip": "203.0.113.7"}},
                "topic": "{prefix}.falc",
            },
        ],
    )  # type: ignore[call-arg]
    settings = sink_settings(topic_prefix, tmp_path, config, bootstrap=kafka_bootstrap)
    events = [
        make_event(0, type="email.bounced", bounce={"severity": "hard"}),
        make_event(1, type="email.opened"),
        make_event(2, type="email.complained", provider="falconide", source_id="falc"),
        make_event(3, type="email.delivered", provider="falconide", source_id="falc"),
    ]
    await publish_events(kafka_bootstrap, topic_prefix, events)
    async with running_sink(settings, config, kafka_bootstrap):
        bounced = await consume_all(kafka_bootstrap, f"{topic_prefix}.email.bounced", expect=1, idle_seconds=1)
        falc = await consume_all(kafka_bootstrap, f"{topic_prefix}.falc", expect=2, idle_seconds=1)
        complained = await consume_all(kafka_bootstrap, f"{topic_prefix}.email.complained", expect=1, idle_seconds=1)
    assert [orjson.loads(r.value) for r in bounced] == [events[0]]
    assert dict(bounced[0].headers)["ce_id"] == events[0]["id"].encode()
    assert bounced[0].key == b"user0@example.com"
    # Re-publishing is at least once: a retried send may repeat a record, consumers dedupe by ce_id.
    assert {dict(r.headers)["ce_id"].decode() for r in falc} == {events[2]["id"], events[3]["id"]}
    assert {orjson.loads(r.value)["id"] for r in complained} == {events[2]["id"]}
