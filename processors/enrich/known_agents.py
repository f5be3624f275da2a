"""User-agent signatures of machines that fetch or click email content: image proxies, prefetchers,
security scanners and headless browsers. Shared by the user-agent, machine-open and bot-click enrichers.

Matching is by lower-case substring, against tokens that real people's clients never send.
"""

from __future__ import annotations

import re
from functools import lru_cache

# Mail providers' image proxies: they fetch images (opens) for the user, or ahead of them.
IMAGE_PROXIES: tuple[tuple[str, str], ...] = (
    ("googleimageproxy", "google_image_proxy"),
    ("ggpht.com", "google_image_proxy"),
    ("yahoomailproxy", "yahoo_mail_proxy"),
    ("ymailproxy", "yahoo_mail_proxy"),
    ("front/", "front_app_proxy"),
    ("superhuman", "superhuman_prefetch"),
)

# Link and attachment scanners of mail gateways, and automation clients no person clicks with.
SCANNERS: tuple[tuple[str, str], ...] = (
    ("barracuda", "barracuda"),
    ("mimecast", "mimecast"),
    ("proofpoint", "proofpoint"),
    ("urldefense", "proofpoint"),
    ("safelinks", "microsoft_safelinks"),
    ("microsoft office protocol discovery", "microsoft_office_discovery"),
    ("microsoft office existence discovery", "microsoft_office_discovery"),
    ("ms-office; msoffice", "microsoft_office_prefetch"),
    ("bingpreview", "microsoft_bing_preview"),
    ("symantec", "symantec"),
    ("messagelabs", "symantec"),
    ("trendmicro", "trend_micro"),
    ("forcepoint", "forcepoint"),
    ("sophos", "sophos"),
    ("fortiguard", "fortinet"),
    ("ironport", "cisco_ironport"),
    ("zscaler", "zscaler"),
    ("paloalto", "palo_alto"),
    ("checkpoint", "check_point"),
    ("headlesschrome", "headless_browser"),
    ("phantomjs", "headless_browser"),
    ("puppeteer", "headless_browser"),
    ("playwright", "headless_browser"),
    ("selenium", "headless_browser"),
    ("python-requests", "http_library"),
    ("python-urllib", "http_library"),
    ("aiohttp", "http_library"),
    ("go-http-client", "http_library"),
    ("okhttp", "http_library"),
    ("java/", "http_library"),
    ("apache-httpclient", "http_library"),
    ("libwww-perl", "http_library"),
    ("curl/", "http_library"),
    ("wget/", "http_library"),
    ("googlebot", "crawler"),
    ("bingbot", "crawler"),
    ("yahoo! slurp", "crawler"),  # Yahoo Search's crawler, not Yahoo Mail's image proxy
    ("facebookexternalhit", "link_preview"),
    ("slackbot", "link_preview"),
    ("twitterbot", "link_preview"),
    ("linkedinbot", "link_preview"),
    ("whatsapp", "link_preview"),
    ("skypeuripreview", "link_preview"),
    ("discordbot", "link_preview"),
)

# Organisations of autonomous systems that run link scanning for mail gateways (names as registries spell
# them). A click from one of these networks is a scanner's, whatever user agent it claims. Not the cloud
# web proxies (Zscaler, Forcepoint): a company's people browse out through those, so their clicks come
# from its addresses too.
SCANNER_NETWORKS: tuple[tuple[str, str], ...] = (
    ("proofpoint", "proofpoint"),
    ("mimecast", "mimecast"),
    ("barracuda", "barracuda"),
    ("trend micro", "trend_micro"),
    ("trendmicro", "trend_micro"),  # registries' spelling: AS2-TRENDMICRO-COM
    ("symantec", "symantec"),
    ("ironport", "cisco_ironport"),  # Cisco Secure Email: IRONPORT-SYSTEMS-INC
    ("microsoft-corp", "microsoft"),  # Defender for Office 365 Safe Links detonates links from Azure
)

# Scanner tokens that a real client's agent carries too, and the client's name that tells them apart:
# Outlook for Windows loads images as "...Microsoft Outlook 16.0.5149; ms-office; MSOffice 16)", Office's
# link probe as "Mozilla/4.0 (compatible; ms-office; MSOffice 16)".
_CLIENTS_WITH_SCANNER_TOKENS: dict[str, str] = {"microsoft_office_prefetch": "microsoft outlook"}

# "...Bot/1.0" and "bot" as a word; Cubot is a phone maker, not a bot.
_GENERIC_BOT = re.compile(r"(?<!cu)(?:bot|crawler|spider|scanner|fetcher)\b|\b(?:preview|monitor)\b", re.IGNORECASE)


def match_table(text: str, table: tuple[tuple[str, str], ...]) -> str | None:
    lowered = text.lower()
    for token, label in table:
        if token in lowered:
            return label
    return None


def looks_automated(user_agent: str) -> bool:
    """A generic bot word in the agent (``SomethingBot/1.0``, ``link preview``)."""
    return _GENERIC_BOT.search(user_agent) is not None


def is_bare_mozilla(user_agent: str) -> bool:
    """Apple Mail Privacy Protection fetches images with exactly ``Mozilla/5.0`` and nothing more."""
    return user_agent.strip() == "Mozilla/5.0"


def scanner_label(user_agent: str) -> str | None:
    """The scanner or automation client this agent names (``SCANNERS``), or None."""
    label = match_table(user_agent, SCANNERS)
    client = _CLIENTS_WITH_SCANNER_TOKENS.get(label or "")
    if client is not None and client in user_agent.lower():
        return None
    return label


@lru_cache(maxsize=10_000)
def scanner_agent(user_agent: str) -> str | None:
    """Why this agent is a security scanner's or a bot's, or None; cached per agent string (they repeat)."""
    scanner = scanner_label(user_agent)
    if scanner:
        return f"scanner:{scanner}"
    if looks_automated(user_agent):
        return "bot_user_agent"
    return None
