"""Builds and runs the gateway: one aiohttp low-level server per process, N processes on one port."""

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
from typing import TYPE_CHECKING

from aiohttp import web

from espwire.config import Settings
from espwire.topics import Topics
from ingest_gateway.dispatch import Dispatcher
from ingest_gateway.publisher import RawPublisher
from ingest_gateway.routes import HookHandler, healthz, metrics_handler, readyz_handler
from ingest_gateway.spool import Spool

if TYPE_CHECKING:
    from ingest_gateway.admin import SuppressionApi  # imported only with an admin token: it needs the sinks

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
        lanes=gateway.produce_lanes,
        compression=settings.kafka.compression,
        client_id=f"{settings.kafka.client_id}-gateway",
    )


class Gateway:
    """One process's routes, and what they need running from before the first request to after the last."""

    def __init__(self, settings: Settings, publisher: RawPublisher) -> None:
        self.publisher = publisher
        self.hooks = HookHandler(settings, publisher)
        self.dispatcher = Dispatcher()
        # Every method reaches the hook handler: an unknown source is 404 before a wrong method is 405.
        self.dispatcher.add_segment("/hooks", self.hooks.handle, methods=None)
        self.dispatcher.add_get("/healthz", healthz)
        self.dispatcher.add_get("/readyz", readyz_handler(publisher))
        self.dispatcher.add_get("/metrics", metrics_handler(self.hooks.tally))
        self.suppressions: SuppressionApi | None = None
        if settings.gateway.admin_token is not None:
            from ingest_gateway.admin import SuppressionApi

            self.suppressions = SuppressionApi(settings)  # /api/suppressions, token protected
            self.suppressions.add_routes(self.dispatcher)
        self._flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.suppressions is not None:
            await self.suppressions.start()  # first: a bad DSN fails here with nothing else running yet
        await self.publisher.start()
        self._flusher = asyncio.get_running_loop().create_task(self._flush_tally_every_second(), name="metrics-tally")

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        self.hooks.tally.flush()
        await self.publisher.stop()
        if self.suppressions is not None:
            await self.suppressions.close()

    async def _flush_tally_every_second(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.hooks.tally.flush()


@contextlib.asynccontextmanager
async def serving(
    settings: Settings, publisher: RawPublisher, host: str, port: int, *, reuse_port: bool = False
) -> AsyncIterator[Gateway]:
    """Serves until the block ends: the publisher is up before the port opens, and stops after the
    requests in flight are answered (aiohttp waits for them once the port is closed)."""
    gateway = Gateway(settings, publisher)
    await gateway.start()
    try:
        # auto_decompress off: the gateway inflates bodies itself, in bounded steps (limits.py).
        server = web.Server(
            gateway.dispatcher, auto_decompress=False, access_log=None, max_line_size=settings.gateway.max_url_bytes
        )
        runner = web.ServerRunner(server, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port, reuse_port=reuse_port, backlog=1024).start()
            yield gateway
        finally:
            await runner.cleanup()
    finally:
        await gateway.close()


async def serve(
    settings: Settings, bootstrap: str, *, reuse_port: bool = False, stop: asyncio.Event | None = None
) -> None:
    """Runs one gateway process until ``stop`` is set (or SIGTERM/SIGINT when none is given)."""
    publisher = build_publisher(settings, bootstrap)
    host, port = settings.gateway.host, settings.gateway.port
    async with serving(settings, publisher, host, port, reuse_port=reuse_port):
        log.info("gateway listening", extra={"host": host, "port": port})
        if stop is None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        grace = settings.gateway.shutdown_grace_seconds
        if grace > 0:
            publisher.refuse_readiness()
            log.info("stopping: /readyz answers 503 while requests are still served", extra={"seconds": grace})
            await asyncio.sleep(grace)


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
