"""`espwire dev`: broker, gateway, processor and the configured sinks in one process, for one machine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from espwire.broker import EmbeddedBroker, port_answers
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


async def _run_all(settings: Settings, bootstrap: str, embedded: bool) -> bool:
    """Runs every component until a signal or the first failure; True when one failed."""
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
    failed = False
    for task in done:
        if task.get_name() != "" and not task.cancelled() and task.exception() is not None:
            failed = True
            log.error(
                "component failed; stopping", extra={"component": task.get_name(), "error": repr(task.exception())}
            )
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return failed


def run_dev(settings: Settings, *, kafka_port: int = 19092) -> int:
    """Exit status: 0 after Ctrl-C or SIGTERM, 1 when a component failed, 2 when the broker's port is taken."""
    Path(settings.datadir).mkdir(parents=True, exist_ok=True)
    if settings.kafka.bootstrap:
        return 1 if run(_run_all(settings, settings.kafka.bootstrap, embedded=False)) else 0
    if port_answers("127.0.0.1", kafka_port):
        # Another `espwire dev` most likely: joining its broker would join its consumer groups too.
        print(
            f"espwire dev: port {kafka_port} is taken (another espwire dev?); stop it, or use --kafka-port",
            file=sys.stderr,
        )
        return 2
    broker = EmbeddedBroker(port=kafka_port, log_path=Path(settings.datadir) / "broker.log")
    broker.start()
    try:
        settings = settings.model_copy(
            update={"kafka": settings.kafka.model_copy(update={"bootstrap": broker.bootstrap})}
        )
        failed = run(_run_all(settings, broker.bootstrap, embedded=True))
    finally:
        broker.stop()
    return 1 if failed else 0
