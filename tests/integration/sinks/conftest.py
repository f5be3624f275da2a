"""Shared pieces of the sink tests: settings for one test, running a sink against the real broker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from espwire.config import KafkaConfig, Settings, SinkConfig
from espwire.topics import Topics, ensure_topics
from sinks.runner import SinkStatus, run_sink
from tests.support.kafka import produce
from tests.unit.sinks.factory import event_record


def sink_settings(prefix: str, datadir: Path, *sinks: SinkConfig, bootstrap: str | None = None) -> Settings:
    return Settings(
        kafka=KafkaConfig(topic_prefix=prefix, partitions=2, bootstrap=bootstrap),
        datadir=datadir,
        sinks=list(sinks),
    )


async def publish_events(bootstrap: str, prefix: str, events: list[dict[str, Any]]) -> None:
    topics = Topics(prefix)
    await ensure_topics(bootstrap, [topics.events], 2)
    await produce(bootstrap, topics.events, [event_record(e) for e in events])


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 60.0, every: float = 0.1) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def running_sink(
    settings: Settings, config: SinkConfig, bootstrap: str, status: SinkStatus | None = None
) -> AsyncIterator[asyncio.Event]:
    """Runs the sink while the block runs; a clean stop (flush and commit) at the end of the block."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_sink(settings, config, bootstrap, stop, status=status))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def crash(task: asyncio.Task[None]) -> None:
    """Cancels a running sink: no flush, no commit, like a killed process."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
