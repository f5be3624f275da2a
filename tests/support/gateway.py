"""Runs a real gateway in the test's event loop, on a free port, against the test's broker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from espwire.broker import free_port
from espwire.config import EXAMPLE_CONFIG, Settings, load_settings
from espwire.topics import Topics, ensure_topics
from ingest_gateway.app import build_publisher, serving
from ingest_gateway.publisher import RawPublisher


def gateway_settings(prefix: str, datadir: Path, **gateway: Any) -> Settings:
    base = load_settings(EXAMPLE_CONFIG)
    return base.model_copy(
        update={
            "datadir": datadir,
            "kafka": base.kafka.model_copy(update={"topic_prefix": prefix, "partitions": 2}),
            "gateway": base.gateway.model_copy(update={"port": free_port(), **gateway}),
        }
    )


@dataclass
class RunningGateway:
    url: str
    settings: Settings
    publisher: RawPublisher
    topics: Topics


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings, bootstrap: str) -> AsyncIterator[RunningGateway]:
    topics = Topics(settings.kafka.topic_prefix)
    with contextlib.suppress(Exception):
        await ensure_topics(bootstrap, topics.core(), settings.kafka.partitions)
    publisher = build_publisher(settings, bootstrap)
    try:
        async with serving(settings, publisher, "127.0.0.1", settings.gateway.port):
            yield RunningGateway(f"http://127.0.0.1:{settings.gateway.port}", settings, publisher, topics)
    finally:
        await asyncio.sleep(0)
