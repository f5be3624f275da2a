"""Two real gateways behind a real HAProxy (deploy/haproxy/haproxy.cfg), one killed mid-load.

Promise under test: every request that got 200 through the balancer is on ``<prefix>.raw``, even
when a gateway is stopped (SIGTERM) while requests are in flight; and the balancer spreads the load.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
from yarl import URL

from espwire.broker import free_port
from espwire.envelope import Envelope
from espwire.topics import Topics, ensure_topics
from tests.deploy.processes import child_process, gateway_process, wait_http_ok
from tests.support.haproxy import haproxy_argv, haproxy_env, server_states
from tests.support.kafka import consume_all

BODY = (Path(__file__).parents[1] / "data/providers/sparkpost/auth_token.body").read_bytes()
HEADERS = {"X-MessageSystems-Webhook-Token": "sp-test-token", "Content-Type": "application/json"}
TOTAL = 300
KILL_AFTER = 120  # responses before the second gateway gets SIGTERM
CONCURRENCY = 16

pytestmark = pytest.mark.timeout(120)


def accepted_count(metrics_text: str) -> float:
    """Requests a gateway answered 200, from its own /metrics."""
    pattern = r'^espwire_gateway_requests_total\{[^}]*status="200"[^}]*\} (\S+)$'
    return sum(float(value) for value in re.findall(pattern, metrics_text, flags=re.MULTILINE))


async def wait_servers_up(session: aiohttp.ClientSession, stats_url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = await server_states(session, stats_url)
        if states and all(state == "UP" for state in states.values()):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"HAProxy's health checks on /readyz did not mark both gateways UP: {states}")


async def test_every_200_through_the_balancer_is_on_raw_when_a_gateway_dies(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, haproxy_binary: str
) -> None:
    await ensure_topics(kafka_bootstrap, Topics(topic_prefix).core(), 2)
    lb_port, stats_port = free_port(), free_port()
    with (
        gateway_process("gateway-1", kafka_bootstrap, topic_prefix, tmp_path / "gw1", tmp_path) as gw1,
        gateway_process("gateway-2", kafka_bootstrap, topic_prefix, tmp_path / "gw2", tmp_path) as gw2,
    ):
        await asyncio.gather(
            wait_http_ok(f"{gw1.url}/readyz", 30, gw1.child), wait_http_ok(f"{gw2.url}/readyz", 30, gw2.child)
        )
        env = haproxy_env(
            f"127.0.0.1:{lb_port}", f"127.0.0.1:{stats_port}", [f"127.0.0.1:{gw1.port}", f"127.0.0.1:{gw2.port}"]
        )
        with child_process("haproxy", haproxy_argv(haproxy_binary), tmp_path, env) as haproxy:
            stats_url = f"http://127.0.0.1:{stats_port}"
            await wait_http_ok(f"{stats_url}/healthz", 15, haproxy)
            timeout = aiohttp.ClientTimeout(total=15)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                await wait_servers_up(session, stats_url, 15)

                statuses: list[int] = []
                accepted: list[str] = []
                failures: list[str] = []
                before_kill: dict[str, float] = {}
                killed = asyncio.Event()
                queue: asyncio.Queue[int] = asyncio.Queue()
                for n in range(TOTAL):
                    queue.put_nowait(n)

                async def kill_second_gateway() -> None:
                    for gateway in (gw1, gw2):
                        async with session.get(f"{gateway.url}/metrics") as response:
                            before_kill[gateway.child.name] = accepted_count(await response.text())
                    gw2.child.process.send_signal(signal.SIGTERM)  # SIGTERM, as Kubernetes or compose would
                    killed.set()

                async def client() -> None:
                    while not queue.empty():
                        queue.get_nowait()
                        try:
                            async with session.post(
                                f"http://127.0.0.1:{lb_port}/hooks/sparkpost", data=BODY, headers=HEADERS
                            ) as response:
                                statuses.append(response.status)
                                if response.status == 200:
                                    accepted.append((await response.json())["request_id"])
                                else:
                                    await response.read()
                        except (TimeoutError, aiohttp.ClientError) as exc:
                            failures.append(repr(exc))
                        if len(statuses) + len(failures) == KILL_AFTER and not killed.is_set():
                            await kill_second_gateway()

                await asyncio.gather(*(client() for _ in range(CONCURRENCY)))

            assert killed.is_set()
            assert gw2.child.process.wait(20) == 0, f"gateway-2 did not stop cleanly:\n{gw2.child.log_tail()}"
            assert haproxy.process.poll() is None, f"HAProxy died:\n{haproxy.log_tail()}"

    # Both gateways took traffic before one of them was stopped.
    assert before_kill["gateway-1"] > 0 and before_kill["gateway-2"] > 0, before_kill
    # The balancer retried or redispatched what the stopped gateway could not take: nearly all got 200.
    assert len(accepted) >= TOTAL * 0.95, (
        f"{len(accepted)} of {TOTAL} accepted; statuses {statuses}, errors {failures[:5]}"
    )

    records = await consume_all(kafka_bootstrap, f"{topic_prefix}.raw", expect=len(accepted), idle_seconds=2)
    on_raw = {Envelope.from_record(record.value, record.headers).request_id for record in records}
    missing = set(accepted) - on_raw
    assert not missing, f"{len(missing)} requests answered 200 are not on {topic_prefix}.raw"


async def test_a_get_batch_with_a_long_query_passes_the_balancer_as_sent(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, haproxy_binary: str
) -> None:
    await ensure_topics(kafka_bootstrap, Topics(topic_prefix).core(), 2)
    lb_port, stats_port = free_port(), free_port()
    query = urlencode(
        {"events": json.dumps([{"user_id": f"u-{n}", "event": "Goal", "ts": 1795162100} for n in range(2500)])}
    )
    assert 16384 < len(query) < 256 * 1024  # past HAProxy's default buffer, within the gateway's limit
    with gateway_process("gateway", kafka_bootstrap, topic_prefix, tmp_path / "gw", tmp_path) as gw:
        await wait_http_ok(f"{gw.url}/readyz", 30, gw.child)
        env = haproxy_env(f"127.0.0.1:{lb_port}", f"127.0.0.1:{stats_port}", [f"127.0.0.1:{gw.port}"] * 2)
        with child_process("haproxy", haproxy_argv(haproxy_binary), tmp_path, env) as haproxy:
            await wait_http_ok(f"http://127.0.0.1:{stats_port}/healthz", 15, haproxy)
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
                await wait_servers_up(session, f"http://127.0.0.1:{stats_port}", 15)
                url = URL(f"http://127.0.0.1:{lb_port}/hooks/recurly_engage?{query}", encoded=True)
                async with session.get(url, headers={"x-api-key": "re-test-key"}) as response:
                    assert response.status == 200, await response.text()
    records = await consume_all(kafka_bootstrap, f"{topic_prefix}.raw", expect=1, idle_seconds=2)
    assert [Envelope.from_record(r.value, r.headers).query for r in records] == [query]
