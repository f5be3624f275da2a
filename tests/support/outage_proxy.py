"""A TCP proxy the test controls, to simulate a dependency going away without touching the real server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from espwire.broker import EmbeddedBroker, free_port


class OutageProxy:
    """Forwards 127.0.0.1:<port> to a target; ``cut()`` drops every connection and refuses new ones;
    ``delay`` (seconds, changeable at any time) holds each chunk that long each way: a slow network."""

    def __init__(self, target_host: str, target_port: int, port: int | None = None, delay: float = 0.0) -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self.delay = delay
        self._server: asyncio.Server | None = None
        self._cut = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut(self) -> None:
        self._cut = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self._cut = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.get_running_loop().create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while chunk := await src.read(65536):
                if self.delay:
                    await asyncio.sleep(self.delay)
                dst.write(chunk)
                await dst.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(dst)
            with contextlib.suppress(Exception):
                dst.transport.abort()


@dataclass
class ProxiedBroker:
    proxy: OutageProxy
    broker: EmbeddedBroker

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.proxy.port}"


@contextlib.asynccontextmanager
async def proxied_broker() -> AsyncIterator[ProxiedBroker]:
    """A broker of the caller's own, reachable only through a proxy it can cut (the broker
    advertises the proxy's port, so clients reconnect through it too)."""
    proxy_port = free_port()
    broker = EmbeddedBroker(advertised_port=proxy_port)
    await asyncio.to_thread(broker.start)
    proxy = OutageProxy("127.0.0.1", broker.port, port=proxy_port)
    await proxy.start()
    try:
        yield ProxiedBroker(proxy, broker)
    finally:
        await proxy.stop()
        await asyncio.to_thread(broker.stop)
