"""Child processes of the deployment tests (gateways, HAProxy, Prometheus), always stopped at the end.

Every child gets its own session (a stray signal from the test never reaches it by accident), writes
its output to a log file in the test's tmp_path, and is stopped with SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from espwire.broker import free_port


@dataclass
class ChildProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def terminate(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, wait, then SIGKILL; returns the exit code (None if it had to be killed)."""
        if self.process.poll() is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            return None


@contextlib.contextmanager
def child_process(
    name: str, argv: Sequence[str], log_dir: Path, env: Mapping[str, str] | None = None
) -> Iterator[ChildProcess]:
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    child = ChildProcess(name, process, log_path)
    try:
        yield child
    finally:
        child.terminate()


@dataclass
class GatewayProcess:
    child: ChildProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def gateway_process(
    name: str, bootstrap: str, topic_prefix: str, data_dir: Path, log_dir: Path
) -> Iterator[GatewayProcess]:
    """``espwire gateway`` on a free 127.0.0.1 port with the example configuration and its own data dir."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("ESPWIRE_")}
    env.update(
        {
            "ESPWIRE_KAFKA_BOOTSTRAP": bootstrap,
            "ESPWIRE_KAFKA_TOPIC_PREFIX": topic_prefix,
            "ESPWIRE_KAFKA_PARTITIONS": "2",
            "ESPWIRE_DATADIR": str(data_dir),
        }
    )
    argv = [sys.executable, "-m", "espwire.cli", "gateway", "--host", "127.0.0.1", "--port", str(port)]
    with child_process(name, argv, log_dir, env) as child:
        yield GatewayProcess(child, port)


async def wait_http_ok(url: str, timeout: float, child: ChildProcess | None = None) -> None:
    """Polls ``url`` until it answers 200; fails with the child's log when it does not in time."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if child is not None and child.process.poll() is not None:
                raise AssertionError(f"{child.name} exited with {child.process.returncode}:\n{child.log_tail()}")
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
                    last = f"HTTP {response.status}"
            except (TimeoutError, aiohttp.ClientError) as exc:
                last = repr(exc)
            await asyncio.sleep(0.1)
    log = child.log_tail() if child is not None else ""
    raise AssertionError(f"{url} did not answer 200 within {timeout:.0f}s ({last})\n{log}")
