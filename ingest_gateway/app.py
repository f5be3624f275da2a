"""Builds and runs the gateway: one aiohttp application per process, N processes on one port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from espwire.config import Settings
from espwire.topics import Topics
from ingest_gateway.publisher import RawPublisher
from ingest_gateway.routes import HookHandler, healthz, metrics_handler, readyz_handler
from ingest_gateway.spool import Spool

log = logging.getLogger("espwire.gateway")


def build_publisher(settings: Settings, bootstrap: str) -> RawPublisher:
    gateway = settings.gateway
    spool = Spool.claim_slot(Path(settings.datadir) / "spool", gateway.spool_max_bytes, gateway.spool_segment_bytes)
    return RawPublisher(
        bootstrap,
        Topics(settings.kafka.topic_prefix).raw,
        spool,
        ack_timeout=gateway.ack_timeout_seconds,
        linger_ms=gateway.linger_ms,
        compression=settings.kafka.compression,
        client_id=f"{settings.kafka.client_id}-gateway",
    )


def build_app(settings: Settings, publisher: RawPublisher) -> web.Application:
    app = web.Application()
    hooks = HookHandler(settings, publisher)
    app.router.add_route("*", "/hooks/{source_id}", hooks.handle)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz_handler(publisher))
    app.router.add_get("/metrics", metrics_handler(hooks.tally))
    if settings.gateway.admin_token is not None:
        from ingest_gateway.admin import add_admin_routes

        add_admin_routes(app, settings)  # /api/suppressions, token protected

    async def flush_tally_every_second() -> None:
        while True:
            await asyncio.sleep(1.0)
            hooks.tally.flush()

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await publisher.start()
        flusher = asyncio.get_running_loop().create_task(flush_tally_every_second(), name="metrics-tally")
        yield
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        hooks.tally.flush()
        await publisher.stop()

    app.cleanup_ctx.append(lifecycle)
    return app


async def serve(
    settings: Settings, bootstrap: str, *, reuse_port: bool = False, stop: asyncio.Event | None = None
) -> None:
    """Runs one gateway process until ``stop`` is set (or SIGTERM/SIGINT when none is given)."""
    publisher = build_publisher(settings, bootstrap)
    app = build_app(settings, publisher)
    # auto_decompress off: the gateway inflates bodies itself, in bounded steps (limits.py).
    runner = web.AppRunner(app, auto_decompress=False, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.gateway.host, settings.gateway.port, reuse_port=reuse_port, backlog=1024)
    await site.start()
    log.info("gateway listening", extra={"host": settings.gateway.host, "port": settings.gateway.port})
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def _worker(settings: Settings, bootstrap: str) -> None:
    from espwire.runtime import run

    run(serve(settings, bootstrap, reuse_port=True))


def run_workers(settings: Settings, bootstrap: str, workers: int) -> None:
    """N processes on one port (SO_REUSEPORT): the kernel spreads connections over them."""
    if workers <= 1:
        from espwire.runtime import run

        run(serve(settings, bootstrap))
        return
    metrics_dir = Path(settings.datadir) / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)  # counts of a previous run must not add up with ours
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)  # inherited by the spawned workers
    ctx = multiprocessing.get_context("spawn")
    processes = [ctx.Process(target=_worker, args=(settings, bootstrap), daemon=False) for _ in range(workers)]
    for process in processes:
        process.start()

    def forward(signum: int, _frame: object) -> None:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for process in processes:
        process.join()
