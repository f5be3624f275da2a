"""`espwire gateway --workers N`: N processes on one port, metrics summed over all of them, clean stop."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from espwire.broker import free_port, wait_for_port
from tests.support.kafka import consume_all

BODY = Path(__file__).parents[1].joinpath("data/providers/sparkpost/auth_token.body").read_bytes()


async def test_two_workers_share_the_port(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "ESPWIRE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "ESPWIRE_KAFKA_TOPIC_PREFIX": topic_prefix,
        "ESPWIRE_DATADIR": str(tmp_path),
    }
    with open(tmp_path / "gateway.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "espwire.cli", "gateway", "--workers", "2", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=log,
        )
    try:
        await asyncio.to_thread(wait_for_port, "127.0.0.1", port, 30)
        await asyncio.sleep(1.0)  # let the second worker bind too
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:

            async def post() -> int:
                headers = {"X-MessageSystems-Webhook-Token": "sp-test-token"}
                async with session.post(f"{url}/hooks/sparkpost", data=BODY, headers=headers) as response:
                    return response.status

            statuses = await asyncio.gather(*(post() for _ in range(60)))
            assert statuses == [200] * 60
            # Each worker adds its counts to the shared files once a second: poll for the sum.
            total = 0.0
            for _ in range(30):
                async with session.get(f"{url}/metrics") as response:
                    text = await response.text()
                counted = re.search(r'espwire_gateway_requests_total\{[^}]*status="200"[^}]*\} (\S+)', text)
                total = float(counted.group(1)) if counted else 0.0
                if total >= 60:
                    break
                await asyncio.sleep(0.2)
        assert total == 60.0, "every worker's count is in the sum"
        assert len(list((tmp_path / "spool").glob("slot-*"))) == 2, "each worker holds its own spool slot"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    records = await consume_all(kafka_bootstrap, f"{topic_prefix}.raw", expect=60, idle_seconds=2)
    assert len(records) == 60
