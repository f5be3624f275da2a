"""Topics against the real broker: created to take a whole webhook as one record, and a topic made
elsewhere with Kafka's 1 MiB default is reported at start-up instead of refusing large webhooks later."""

from __future__ import annotations

import logging

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from espwire.topics import MAX_RECORD_BYTES, Topics, ensure_topics


async def _max_message_bytes(bootstrap: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    [(error_code, _, _, _, entries, *_)] = response.resources
    assert error_code == 0
    return next(int(entry[1]) for entry in entries if entry[0] == "max.message.bytes")


async def test_created_topics_take_records_of_max_record_bytes(kafka_bootstrap: str, topic_prefix: str) -> None:
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics.core(), 2)
    for topic in topics.core():
        assert await _max_message_bytes(kafka_bootstrap, topic) == MAX_RECORD_BYTES == 16 * 1024 * 1024


async def test_an_existing_topic_with_the_1_mib_default_is_reported_by_name(
    kafka_bootstrap: str, topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    topics = Topics(topic_prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:  # as a stock Kafka makes it, or an operator who created it by hand
        await admin.create_topics([NewTopic(topics.raw, 2, 1, topic_configs={"max.message.bytes": "1048588"})])
    finally:
        await admin.close()
    with caplog.at_level(logging.WARNING, logger="espwire.topics"):
        await ensure_topics(kafka_bootstrap, topics.core(), 2)
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [getattr(r, "topic", None) for r in warned] == [topics.raw]  # the topics it created itself are fine
    assert "max.message.bytes=16777216" in warned[0].getMessage()
    assert await _max_message_bytes(kafka_bootstrap, topics.raw) == 1048588  # left as it is: the operator's call
