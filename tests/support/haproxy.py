"""A real HAProxy for tests, run from the very file the deployment uses (deploy/haproxy/haproxy.cfg).

That file takes every address from the environment, so the test only sets HAPROXY_BIND,
HAPROXY_STATS_BIND and ESPWIRE_GATEWAY_1/2 to loopback ports: what is tested is what is deployed.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import aiohttp

from espwire.config import REPO_ROOT

HAPROXY_CFG = REPO_ROOT / "deploy" / "haproxy" / "haproxy.cfg"


def haproxy_env(bind: str, stats_bind: str, gateways: list[str]) -> dict[str, str]:
    """The environment that points deploy/haproxy/haproxy.cfg at these addresses (two gateways)."""
    if len(gateways) != 2:
        raise ValueError("deploy/haproxy/haproxy.cfg balances exactly two gateways")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HAPROXY_", "ESPWIRE_GATEWAY_"))}
    env.update(
        {
            "HAPROXY_BIND": bind,
            "HAPROXY_STATS_BIND": stats_bind,
            "ESPWIRE_GATEWAY_1": gateways[0],
            "ESPWIRE_GATEWAY_2": gateways[1],
        }
    )
    return env


def haproxy_argv(binary: str, config: Path = HAPROXY_CFG) -> list[str]:
    # -db: stay in the foreground, no daemon; -W off: one process the test can signal.
    return [binary, "-db", "-f", str(config)]


async def server_states(session: aiohttp.ClientSession, stats_url: str, backend: str = "gateways") -> dict[str, str]:
    """Each server of ``backend`` and its state as HAProxy sees it ("UP", "DOWN", "UP 1/2"...)."""
    async with session.get(f"{stats_url}/stats;csv") as response:
        response.raise_for_status()
        text = (await response.text()).lstrip("# ")
    states: dict[str, str] = {}
    for row in csv.DictReader(io.StringIO(text)):
        if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND"):
            states[row["svname"]] = row.get("status", "")
    return states
