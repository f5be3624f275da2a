"""`espwire dev`: broker, gateway, processor and the configured sinks in one process, for one machine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from espwire.broker import EmbeddedBroker
from espwire.config import Settings
from espwire.runtime import run
from espwire.topics import Topics, ensure_topics

log = logging.getLogger("espwire.dev")


def _banner(settings: Settings, bootstrap: str, embedded: bool) -> str:
    gateway = settings.gateway
    lines = [
        "espwire dev is running",
        f"  gateway   http://{gateway.host}:{gateway.port}  (health /healthz, readiness /readyz, metrics /metrics)",
        f"  kafka     {bootstrap}{'  (embedded Tansu, memory only)' if embedded else ''}",
        f"  topics    {', '.join(Topics(settings.kafka.topic_prefix).core())}",
        f"  data dir  {Path(settings.datadir).resolve()}",
        "  sources:",
    ]
    for source in settings.sources:
        kinds = ", ".join(rule.type for rule in source.auth)
        lines.append(
            f"    http://{gateway.host}:{gateway.port}/hooks/{source.id:<16} {source.provider:<15} auth: {kinds}"
        )
    sinks = ", ".join(f"{s.name} ({s.type})" for s in settings.sinks if s.enabled) or "none"
    lines.append(f"  sinks     {sinks}")
    lines.append("Ctrl-C stops everything.")
    return "\n".join(lines)


async def _run_all(settings: Settings, bootstrap: str, embedded: bool) -> None:
    from ingest_gateway.app import serve
    from processors.consumer import run_processor

    topics = Topics(settings.kafka.topic_prefix)
    await ensure_topics(bootstrap, topics.core(), settings.kafka.partitions, settings.kafka.replication)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [
        asyncio.create_task(serve(settings, bootstrap, stop=stop), name="gateway"),
        asyncio.create_task(run_processor(settings, bootstrap, stop), name="processor"),
    ]
    with contextlib.suppress(ImportError):
        from sinks.runner import run_sink  # type: ignore[import-not-found,unused-ignore]

        for sink in settings.sinks:
            if sink.enabled:
                tasks.append(asyncio.create_task(run_sink(settings, sink, bootstrap, stop), name=f"sink-{sink.name}"))
    await asyncio.sleep(0.5)
    print(_banner(settings, bootstrap, embedded), file=sys.stderr, flush=True)
    done, _ = await asyncio.wait([*tasks, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        if task.get_name() != "" and not task.cancelled() and task.exception() is not None:
            log.error(
                "component failed; stopping", extra={"component": task.get_name(), "error": repr(task.exception())}
            )
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)


def run_dev(settings: Settings, *, kafka_port: int = 19092) -> int:
    Path(settings.datadir).mkdir(parents=True, exist_ok=True)
    if settings.kafka.bootstrap:
        run(_run_all(settings, settings.kafka.bootstrap, embedded=False))
        return 0
    broker = EmbeddedBroker(port=kafka_port, log_path=Path(settings.datadir) / "broker.log")
    broker.start()
    try:
        settings = settings.model_copy(
            update={"kafka": settings.kafka.model_copy(update={"bootstrap": broker.bootstrap})}
        )
        run(_run_all(settings, broker.bootstrap, embedded=True))
    finally:
        broker.stop()
    return 0
