"""Machine opens: Apple MPP, image proxies, scanners; human opens counted by open.machine == false."""

from __future__ import annotations

import pytest

from processors.enrich.machine_open import MachineOpenEnricher, in_apple_network
from tests.unit.processors.enrich.conftest import make_event

HUMAN_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
OUTLOOK_DESKTOP = (
    "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 10.0; WOW64; Trident/7.0; .NET4.0C; .NET4.0E; "
    "Microsoft Outlook 16.0.5149; ms-office; MSOffice 16)"
)


@pytest.mark.parametrize(
    ("agent", "ip", "machine", "reason"),
    [
        ("Mozilla/5.0", "17.58.101.7", True, "apple_mpp"),
        ("Mozilla/5.0", "203.0.113.9", True, "apple_mpp"),
        (HUMAN_UA, "17.120.3.3", True, "apple_mpp"),
        (None, "2620:149:a44::1", True, "apple_mpp"),
        (
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
            "66.249.84.1",
            True,
            "google_image_proxy",
        ),
        (
            "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
            "98.137.1.1",
            True,
            "yahoo_mail_proxy",
        ),
        ("Mozilla/5.0 (compatible; Barracuda Sentinel)", "64.235.144.1", True, "scanner:barracuda"),
        ("SomeCorpBot/2.1", "198.51.100.3", True, "bot_user_agent"),
        (HUMAN_UA, "81.2.69.142", False, None),
        (HUMAN_UA, None, False, None),
        # Outlook for Windows loading images is a person; Office's link probe, with the same tokens, is not.
        (OUTLOOK_DESKTOP, "81.2.69.142", False, None),
        ("Mozilla/4.0 (compatible; ms-office; MSOffice 16)", "81.2.69.142", True, "scanner:microsoft_office_prefetch"),
        # Apple's addresses with a port or in brackets, as some providers pass them on.
        (HUMAN_UA, "17.58.101.7:443", True, "apple_mpp"),
        (HUMAN_UA, "[2620:149:a44::1]:443", True, "apple_mpp"),
        # Yahoo! Slurp is Yahoo Search's crawler, not Yahoo Mail's image proxy.
        (
            "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
            "74.6.168.1",
            True,
            "scanner:crawler",
        ),
    ],
)
async def test_open_classification(agent: str | None, ip: str | None, machine: bool, reason: str | None) -> None:
    client = {k: v for k, v in (("user_agent", agent), ("ip", ip)) if v is not None}
    event = make_event("email.opened", client=client)
    await MachineOpenEnricher().enrich_batch([event])
    assert event["data"]["open"] == {"machine": machine, "reason": reason}


async def test_only_opens_get_an_open_section_and_every_open_gets_one() -> None:
    events = [make_event("email.opened", n=1), make_event("email.clicked", n=2, client={"user_agent": "Mozilla/5.0"})]
    await MachineOpenEnricher().enrich_batch(events)
    assert events[0]["data"]["open"] == {"machine": False, "reason": None}
    assert "open" not in events[1]["data"]


def test_apple_networks() -> None:
    assert in_apple_network("17.0.0.1")
    assert in_apple_network("::ffff:17.1.2.3")
    assert in_apple_network("17.1.2.3:8080")
    assert in_apple_network("[2a01:b740::1]")
    assert not in_apple_network("18.0.0.1:17")
    assert not in_apple_network("18.0.0.1")
    assert not in_apple_network("garbage")
