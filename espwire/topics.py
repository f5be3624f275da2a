"""Topic names, and creating them with the configured partitions before anything produces."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

log = logging.getLogger("espwire.topics")

# The largest record espwire writes: a raw request (its body up to the gateway's limits, plus the
# envelope header) on espwire.raw, or the same request again on a dead-letter topic. Kafka's default
# is 1 MiB a record batch, so with a stock topic a 2 MiB webhook would be refused for good, and the
# gateway would keep it in its spool forever. Topics espwire creates carry this limit
# (max.message.bytes), and every producer may send this much.
MAX_RECORD_BYTES = 16 * 1024 * 1024
TOPIC_CONFIGS = {"max.message.bytes": str(MAX_RECORD_BYTES)}


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str = "espwire"

    @property
    def raw(self) -> str:
        return f"{self.prefix}.raw"

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.dlq"

    def sink_dlq(self, sink_name: str) -> str:
        return f"{self.prefix}.dlq.{sink_name}"

    def core(self) -> list[str]:
        return [self.raw, self.events, self.dlq]


async def ensure_topics(bootstrap: str, names: list[str], partitions: int, replication: int = 1) -> None:
    """Creates the topics that do not exist yet (with ``TOPIC_CONFIGS``); existing ones are left as
    they are, with a warning when their record size limit is below ``MAX_RECORD_BYTES``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            name, num_partitions=partitions, replication_factor=replication, topic_configs=TOPIC_CONFIGS
                        )
                        for name in missing
                    ]
                )
        await _warn_about_small_records(admin, [n for n in names if n in existing])
    finally:
        await admin.close()


async def _warn_about_small_records(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    if not names:
        return
    try:
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in names])
    except (KafkaError, OSError) as exc:  # a broker or an ACL that does not allow it: say so once, go on
        log.info("could not read the topics' max.message.bytes", extra={"error": repr(exc)})
        return
    for response in responses:
        for error_code, _message, _type, name, entries, *_ in response.resources:
            if error_code:
                continue
            for entry in entries:
                if entry[0] == "max.message.bytes" and int(entry[1]) < MAX_RECORD_BYTES:
                    log.warning(
                        "topic %s takes records of at most %s bytes: larger webhooks will be refused; "
                        "set max.message.bytes=%d on it",
                        name,
                        entry[1],
                        MAX_RECORD_BYTES,
                        extra={"topic": name, "max_message_bytes": int(entry[1])},
                    )
