"""`espwire dev` keeps its dedupe memory (SQLite in the data dir) across a restart: a SparkPost batch
redelivered after the restart does not come out again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from espwire.broker import free_port, wait_for_port
from tests.fixture_cases import load_cases
from tests.support.kafka import consume_all

CASES = {c.name: c for c in load_cases("sparkpost")}


async def _post(port: int, name: str) -> None:
    case = CASES[name]
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"http://127.0.0.1:{port}/hooks/sparkpost", data=case.body, headers=case.headers
        ) as response:
            assert response.status == 200


def _dev(port: int, kafka_port: int, datadir: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESPWIRE_")}
    with open(datadir / "dev.log", "ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "espwire.cli",
                "dev",
                "--port",
                str(port),
                "--kafka-port",
                str(kafka_port),
                "--data-dir",
                str(datadir),
            ],
            env=env,
            stdout=log,
            stderr=log,
        )


async def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(process.wait, 30) == 0


async def test_redelivery_after_restart_is_dropped(tmp_path: Path) -> None:
    port, kafka_port = free_port(), free_port()
    bootstrap = f"127.0.0.1:{kafka_port}"
    dev = _dev(port, kafka_port, tmp_path)
    try:
        await asyncio.to_thread(wait_for_port, "127.0.0.1", port, 60)
        await _post(port, "batch_original")
        first = await consume_all(bootstrap, "espwire.events", expect=5, timeout=60)
        assert len(first) == 5
    finally:
        await _stop(dev)

    dev = _dev(port, kafka_port, tmp_path)  # a new, empty broker; the same data dir
    try:
        await asyncio.to_thread(wait_for_port, "127.0.0.1", port, 60)
        await _post(port, "batch_redelivered")
        await _post(port, "auth_token")  # a new event, to know the processor is running
        after = await consume_all(bootstrap, "espwire.events", expect=1, idle_seconds=4, timeout=60)
    finally:
        await _stop(dev)
    assert [r.headers for r in after if dict(r.headers)["ce_type"] != b"email.delivered"] == []
    assert len(after) == 1, "the redelivered batch's 5 events were recognised as already published"
