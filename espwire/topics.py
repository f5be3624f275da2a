"""Topic names, and creating them with the configured partitions before anything produces."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError


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
    """Creates the topics that do not exist yet; existing ones are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(name, num_partitions=partitions, replication_factor=replication) for name in missing]
                )
    finally:
        await admin.close()
