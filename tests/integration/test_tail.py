"""`espwire tail`: new events as they arrive, filtered by type, as JSON lines when piped."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import orjson
from aiokafka.admin import AIOKafkaAdminClient

from espwire.topics import Topics, ensure_topics
from tests.support.kafka import produce
from tests.unit.sinks.factory import event_record, make_event


async def test_tail_prints_matching_events(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = Topics(topic_prefix).events
    await ensure_topics(kafka_bootstrap, [topic], 2)
    old = make_event(0, type="email.bounced")
    await produce(kafka_bootstrap, topic, [event_record(old)])
    env = {**os.environ, "ESPWIRE_KAFKA_BOOTSTRAP": kafka_bootstrap, "ESPWIRE_KAFKA_TOPIC_PREFIX": topic_prefix}
    tail = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "espwire.cli",
        "tail",
        "--type",
        "email.bounced",
        "--format",
        "json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await asyncio.sleep(8)  # the group join; then only new events count
        new = [make_event(1, type="email.bounced"), make_event(2, type="email.opened")]
        await produce(kafka_bootstrap, topic, [event_record(e) for e in new])
        assert tail.stdout is not None
        line = await asyncio.wait_for(tail.stdout.readline(), timeout=30)
        printed = orjson.loads(line)
        assert printed["id"] == new[0]["id"], "the new bounce, not the old one nor the open"
    finally:
        tail.send_signal(signal.SIGINT)
        await asyncio.wait_for(tail.wait(), timeout=30)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        topics = await admin.list_topics()
    finally:
        await admin.close()
    assert not [t for t in topics if t.startswith(f"{topic_prefix}.dlq.tail-")], "a tail leaves no topic behind"
