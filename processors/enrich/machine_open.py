"""Tells machine opens from human ones on ``email.opened``: ``data.open = {machine, reason}``.

Machine opens: Apple Mail Privacy Protection (Apple's network or its bare ``Mozilla/5.0`` agent), mail
providers' image proxies (Gmail, Yahoo), security scanners and bots. Guarantees: every open gets
``data.open`` with a boolean ``machine``, so human opens are exactly ``data.open.machine == false``;
a human open's ``reason`` is null. Only the open's own fields are read: no I/O.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

from processors.enrich.base import Event, per_event_failure
from processors.enrich.geoip import bare_address
from processors.enrich.known_agents import IMAGE_PROXIES, is_bare_mozilla, match_table, scanner_agent

# Apple's own address blocks. MPP fetches images from Apple's network: Apple documents its egress list
# (mask-api.icloud.com/egress-ip-ranges.csv) for Private Relay, whose ranges sit at partner CDNs and
# would catch real Safari users; Mail Privacy Protection's fetchers sit in Apple's registered blocks.
# 17.0.0.0/8 is Apple's (ARIN); the IPv6 blocks are Apple's registrations at ARIN, RIPE and APNIC.
APPLE_NETWORKS = tuple(
    ipaddress.ip_network(block) for block in ("17.0.0.0/8", "2620:149::/32", "2a01:b740::/32", "2403:300::/32")
)


def in_apple_network(ip: str) -> bool:
    ip = bare_address(ip)  # "17.58.101.7:443", "[2620:149::1]"
    if ip.count(".") == 3 and ":" not in ip:
        # Dotted IPv4 (the common case): Apple's one IPv4 block is 17/8, a prefix test saves the parse.
        return ip.startswith("17.")
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == n.version and address in n for n in APPLE_NETWORKS)


@lru_cache(maxsize=10_000)
def machine_agent(user_agent: str) -> str | None:
    """Why this agent is a machine's, or None; cached, since opens repeat a few hundred agents."""
    proxy = match_table(user_agent, IMAGE_PROXIES)
    if proxy:
        return proxy
    if is_bare_mozilla(user_agent):
        return "apple_mpp"
    return scanner_agent(user_agent)


def classify_open(user_agent: str | None, apple_ip: bool) -> tuple[bool, str | None]:
    reason = machine_agent(user_agent) if user_agent else None
    if reason is None and apple_ip:
        reason = "apple_mpp"
    return reason is not None, reason


class MachineOpenEnricher:
    name = "machine_open"

    def __init__(self) -> None:
        self._apple_ip: dict[str, bool] = {}  # MPP opens repeat a small set of Apple addresses

    def _is_apple(self, ip: str) -> bool:
        known = self._apple_ip.get(ip)
        if known is None:
            if len(self._apple_ip) > 50_000:
                self._apple_ip.clear()
            known = self._apple_ip[ip] = in_apple_network(ip)
        return known

    async def enrich_batch(self, events: list[Event]) -> None:
        for event in events:
            if event["type"] != "email.opened":
                continue
            data = event["data"]
            try:
                client: dict[str, Any] = data.get("client") or {}
                agent = client.get("user_agent")
                ip = client.get("ip")
                apple = self._is_apple(ip) if isinstance(ip, str) and ip else False
                machine, reason = classify_open(agent if isinstance(agent, str) else None, apple)
                data["open"] = {"machine": machine, "reason": reason}
            except Exception as exc:
                per_event_failure(self.name, event, exc)
