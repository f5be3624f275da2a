"""Device class, OS, browser and mail client from ``data.client.user_agent`` (ua-parser 1.x).

Guarantees: fills ``client.device`` / ``os`` / ``browser`` / ``email_client`` only where the provider
left them empty; never changes the agent string. Results are cached per agent string (LRU), since a
campaign's opens repeat a few hundred agents, and one parse costs ~10 us.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import ua_parser

from processors.enrich.base import Event, per_event_failure
from processors.enrich.known_agents import IMAGE_PROXIES, is_bare_mozilla, looks_automated, match_table, scanner_label

_TABLETS = ("ipad", "tablet", "kindle", "silk/", "playbook", "nexus 7", "nexus 9", "nexus 10", "sm-t", "gt-p")

# Mail clients that ua-parser reports as a generic engine or not at all: token -> our name.
_MAIL_CLIENTS: tuple[tuple[str, str], ...] = (
    ("microsoft outlook", "Outlook"),
    ("outlook-ios", "Outlook"),
    ("outlook-android", "Outlook"),
    ("outlook-express", "Outlook Express"),
    ("ms-office", "Outlook"),
    ("msoffice", "Outlook"),
    ("windows-mail", "Windows Mail"),
    ("windowsmail", "Windows Mail"),
    ("thunderbird", "Thunderbird"),
    ("airmail", "Airmail"),
    ("spark/", "Spark"),
    ("samsungemail", "Samsung Email"),
    ("yahoomobilemail", "Yahoo Mail"),
    ("yahoomailproxy", "Yahoo Mail"),
    ("googleimageproxy", "Gmail"),
    ("ggpht.com", "Gmail"),
    ("em client", "eM Client"),
    ("postbox", "Postbox"),
    ("lotus-notes", "Lotus Notes"),
    ("superhuman", "Superhuman"),
)


class AgentInfo(NamedTuple):
    device: str | None  # desktop | mobile | tablet | bot
    os: str | None
    browser: str | None
    email_client: str | None


def describe(user_agent: str) -> AgentInfo:
    """One agent string, uncached (the enricher caches it)."""
    lowered = user_agent.lower()
    proxy = match_table(user_agent, IMAGE_PROXIES) is not None
    if proxy or scanner_label(user_agent) or looks_automated(user_agent):
        device: str | None = "bot"
    else:
        device = None
    result = ua_parser.parse(user_agent)
    # An image proxy's OS token is a fixed fake (Gmail's says Windows XP), not the reader's.
    os_name = result.os.family if result.os and result.os.family != "Other" and not proxy else None
    browser = result.user_agent.family if result.user_agent and result.user_agent.family != "Other" else None
    email_client = match_table(lowered, _MAIL_CLIENTS)
    if email_client is None and browser == "Outlook":
        email_client = "Outlook"
    if email_client is None and browser == "Apple Mail":
        email_client = "Apple Mail"
    if (
        email_client is None
        and "applewebkit" in lowered
        and "safari" not in lowered
        and lowered.rstrip().rpartition(" ")[2].startswith("mobile/")
    ):
        # An iOS web view that ends at its "Mobile/15E148" build token, as Apple Mail's does (or a web view
        # of an app that adds nothing). Apps that append their own name (Facebook's [FBAN/...], Instagram,
        # LinkedInApp, the Google app's GSA/) are those apps' in-app browsers, not a mail client.
        email_client = "Apple Mail"
    if email_client is None and "macintosh" in lowered and "applewebkit" in lowered and "safari" not in lowered:
        email_client = "Apple Mail"
    if device is None:
        family = (result.device.family if result.device else "") or ""
        if family == "Spider":
            device = "bot"
        elif any(token in lowered for token in _TABLETS) or (os_name == "Android" and "mobile" not in lowered):
            device = "tablet"
        elif os_name in ("iOS", "Android", "Windows Phone", "BlackBerry OS") or "mobile" in lowered:
            device = "mobile"
        elif os_name is not None:
            device = "desktop"
    if is_bare_mozilla(user_agent):
        # Apple's privacy proxy: tells nothing of the reader's device.
        return AgentInfo(None, None, None, None)
    return AgentInfo(device, os_name, browser, email_client)


class UserAgentEnricher:
    name = "user_agent"

    def __init__(self, cache_size: int = 10_000) -> None:
        self._describe = lru_cache(maxsize=cache_size)(describe)

    async def enrich_batch(self, events: list[Event]) -> None:
        cached = self._describe
        for event in events:
            client = event["data"].get("client")
            if not client:
                continue
            agent = client.get("user_agent")
            if not agent or not isinstance(agent, str):
                continue
            try:
                info = cached(agent)
            except Exception as exc:
                per_event_failure(self.name, event, exc)
                continue
            # The provider's own classification wins: fill only what it left empty.
            if info.device and not client.get("device"):
                client["device"] = info.device
            if info.os and not client.get("os"):
                client["os"] = info.os
            if info.browser and not client.get("browser"):
                client["browser"] = info.browser
            if info.email_client and not client.get("email_client"):
                client["email_client"] = info.email_client
