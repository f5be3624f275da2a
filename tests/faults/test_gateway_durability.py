"""Promise 1: a 2xx means durable. The broker goes away mid-load, the gateway is SIGKILLed while
spooling, the spool fills up: every acknowledged request still reaches espwire.raw, and nothing is
acknowledged that could not be kept."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from espwire.broker import free_port, wait_for_port
from espwire.envelope import Envelope
from tests.support.gateway import gateway_settings, running_gateway
from tests.support.kafka import consume_all
from tests.support.outage_proxy import ProxiedBroker
from tests.support.outage_proxy import proxied_broker as own_proxied_broker

SPARKPOST_BODY = Path(__file__).parents[1].joinpath("data/providers/sparkpost/auth_token.body").read_bytes()
AUTH = {"X-MessageSystems-Webhook-Token": "sp-test-token", "Content-Type": "application/json"}


@pytest.fixture
async def proxied_broker() -> AsyncIterator[ProxiedBroker]:
    """A broker of this test's own, reachable only through a proxy the test can cut."""
    async with own_proxied_broker() as proxied:
        yield proxied


async def _post(session: aiohttp.ClientSession, url: str) -> tuple[int, str | None]:
    try:
        async with session.post(url, data=SPARKPOST_BODY, headers=AUTH) as response:
            body = await response.json()
            return response.status, body.get("request_id")
    except (TimeoutError, aiohttp.ClientError):
        return -1, None


def _request_ids(records: list) -> list[str]:  # type: ignore[type-arg]
    return [Envelope.from_record(r.value, r.headers).request_id for r in records]


async def test_broker_outage_mid_load_loses_no_acknowledged_request(
    proxied_broker: ProxiedBroker, tmp_path: Path
) -> None:
    settings = gateway_settings("outage", tmp_path, ack_timeout_seconds=0.5)
    acknowledged: list[str] = []
    statuses: list[int] = []
    async with running_gateway(settings, proxied_broker.bootstrap) as gateway, aiohttp.ClientSession() as session:
        url = f"{gateway.url}/hooks/sparkpost"

        async def client(n: int) -> None:
            for _ in range(n):
                status, request_id = await _post(session, url)
                statuses.append(status)
                if status == 200 and request_id:
                    acknowledged.append(request_id)
                await asyncio.sleep(0.005)

        load = asyncio.gather(*(client(150) for _ in range(4)))
        await asyncio.sleep(0.4)
        proxied_broker.proxy.cut()  # the broker is gone mid-load
        await asyncio.sleep(2.5)
        spooled_during_outage = gateway.publisher.spool.size
        proxied_broker.proxy.restore()
        await load
        # Wait for the drain to empty the spool.
        for _ in range(100):
            if gateway.publisher.spool.is_empty():
                break
            await asyncio.sleep(0.2)
        assert gateway.publisher.spool.is_empty()
    assert spooled_during_outage > 0, "the outage should have sent requests to the spool"
    assert set(statuses) <= {200}, f"every request is acknowledged (spool takes over): {sorted(set(statuses))}"
    records = await consume_all(proxied_broker.bootstrap, "outage.raw", expect=len(acknowledged), idle_seconds=3)
    stored = _request_ids(records)
    missing = set(acknowledged) - set(stored)
    assert not missing, f"{len(missing)} acknowledged requests are not in Kafka"
    # At-least-once: a send that timed out may arrive as well as its spooled copy, but nothing unacknowledged.
    assert set(stored) == set(acknowledged)
    assert len(set(stored)) == len(acknowledged)


def _gateway_process(bootstrap: str, port: int, datadir: Path, prefix: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ESPWIRE_KAFKA_BOOTSTRAP": bootstrap,
        "ESPWIRE_KAFKA_TOPIC_PREFIX": prefix,
        "ESPWIRE_GATEWAY_PORT": str(port),
        "ESPWIRE_GATEWAY_ACK_TIMEOUT_SECONDS": "0.5",
        "ESPWIRE_DATADIR": str(datadir),
    }
    with open(datadir / "gateway.log", "ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "espwire.cli", "gateway"], env=env, stdout=subprocess.DEVNULL, stderr=log
        )


async def test_sigkill_while_spooling_then_restart_drains_everything(
    proxied_broker: ProxiedBroker, tmp_path: Path
) -> None:
    port = free_port()
    prefix = "killed"
    # Topics first, then the broker goes away: every request lands in the spool.
    from espwire.topics import ensure_topics

    await ensure_topics(proxied_broker.bootstrap, [f"{prefix}.raw"], 2)
    proxied_broker.proxy.cut()
    process = _gateway_process(proxied_broker.bootstrap, port, tmp_path, prefix)
    acknowledged: list[str] = []
    try:
        await asyncio.to_thread(wait_for_port, "127.0.0.1", port, 30)
        async with aiohttp.ClientSession() as session:
            results = await asyncio.gather(
                *(_post(session, f"http://127.0.0.1:{port}/hooks/sparkpost") for _ in range(60))
            )
        acknowledged = [rid for status, rid in results if status == 200 and rid]
        assert len(acknowledged) == 60
    finally:
        process.send_signal(signal.SIGKILL)  # no chance to flush or drain
        process.wait(10)
    assert any(p.stat().st_size for p in (tmp_path / "spool").rglob("*.seg"))

    proxied_broker.proxy.restore()
    process = _gateway_process(proxied_broker.bootstrap, port, tmp_path, prefix)
    try:
        records = await consume_all(proxied_broker.bootstrap, f"{prefix}.raw", expect=len(acknowledged), timeout=60)
    finally:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(15)
    assert set(acknowledged) <= set(_request_ids(records))


async def test_spool_full_answers_503_with_retry_after(
    proxied_broker: ProxiedBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from espwire.topics import ensure_topics

    await ensure_topics(proxied_broker.bootstrap, ["full.raw"], 2)
    proxied_broker.proxy.cut()
    settings = gateway_settings("full", tmp_path, ack_timeout_seconds=0.3, spool_max_bytes=8 * 1024)
    async with running_gateway(settings, proxied_broker.bootstrap) as gateway, aiohttp.ClientSession() as session:
        url = f"{gateway.url}/hooks/sparkpost"
        statuses = []
        for _ in range(20):
            async with session.post(url, data=SPARKPOST_BODY, headers=AUTH) as response:
                statuses.append(response.status)
                if response.status == 503:
                    assert response.headers["Retry-After"]
        assert statuses[0] == 200
        assert 503 in statuses
        first_refusal = statuses.index(503)
        assert set(statuses[first_refusal:]) == {503}, "once full, never a 200"
        refusals = [r for r in caplog.records if r.getMessage() == "refused: kafka down and spool full"]
        assert len(refusals) == statuses.count(503), "each refusal is logged"
        assert all(getattr(r, "request_id", "") for r in refusals), "with the request id it would have had"
        async with session.get(f"{gateway.url}/readyz") as response:
            assert response.status == 503
        accepted = statuses.count(200)
        proxied_broker.proxy.restore()
        for _ in range(100):
            if gateway.publisher.spool.is_empty():
                break
            await asyncio.sleep(0.2)
        async with session.get(f"{gateway.url}/readyz") as response:
            assert response.status == 200, "ready again once the spool has drained"
    records = await consume_all(proxied_broker.bootstrap, "full.raw", expect=accepted, idle_seconds=2)
    assert len(set(_request_ids(records))) == accepted
