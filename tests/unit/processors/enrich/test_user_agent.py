"""User-agent enricher: device class, OS, browser, mail client; the provider's own values win."""

from __future__ import annotations

import pytest

from processors.enrich.user_agent import UserAgentEnricher, describe
from tests.unit.processors.enrich.conftest import make_event

IPHONE_MAIL = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
)
IPAD_SAFARI = (
    "Mozilla/5.0 (iPad; CPU OS 16_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.0 Mobile/15E148 Safari/604.1"
)
PIXEL_CHROME = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36"
)
HEADLESS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36"
)
CHROME_WIN = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)


@pytest.mark.parametrize(
    ("agent", "device", "os", "browser", "client"),
    [
        (IPHONE_MAIL, "mobile", "iOS", "Mobile Safari UI/WKWebView", "Apple Mail"),
        (CHROME_WIN, "desktop", "Windows", "Chrome", None),
        (
            "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)",
            "desktop",
            "Windows",
            "Outlook",
            "Outlook",
        ),
        (
            # Outlook 2013-365 for Windows loading images: the Office probe's tokens, and the client's name.
            "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 10.0; WOW64; Trident/7.0; .NET4.0C; .NET4.0E; "
            "Microsoft Outlook 16.0.5149; ms-office; MSOffice 16)",
            "desktop",
            "Windows",
            "Outlook",
            "Outlook",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
            "desktop",
            "Mac OS X",
            "Apple Mail",
            "Apple Mail",
        ),
        (
            IPAD_SAFARI,
            "tablet",
            "iOS",
            "Mobile Safari",
            None,
        ),
        (
            PIXEL_CHROME,
            "mobile",
            "Android",
            "Chrome",
            None,
        ),
        (
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
            "bot",
            None,
            "GmailImageProxy",
            "Gmail",
        ),
        (
            HEADLESS,
            "bot",
            "Linux",
            "HeadlessChrome",
            None,
        ),
        ("Mozilla/5.0", None, None, None, None),
        # The Google app's browser on iOS (GSA: Google Search App) is not Gmail.
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "GSA/300.0.598994205 Mobile/15E148 Safari/604.1",
            "mobile",
            "iOS",
            "Google",
            None,
        ),
        # In-app browsers: an iOS web view that names its app after "Mobile/..." is not Apple Mail.
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Mobile/15E148 [FBAN/FBIOS;FBDV/iPhone14,5;FBMD/iPhone;FBSN/iOS;FBSV/16.6;FBSS/3;FBID/phone;"
            "FBLC/en_US;FBOP/5]",
            "mobile",
            "iOS",
            "Facebook",
            None,
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Mobile/15E148 LinkedInApp/9.29.6",
            "mobile",
            "iOS",
            "Mobile Safari UI/WKWebView",
            None,
        ),
        # Office's link-existence probe (Word, Excel, Teams following a link before opening it).
        ("Microsoft Office Existence Discovery", "bot", None, None, None),
    ],
)
def test_describe(agent: str, device: str | None, os: str | None, browser: str | None, client: str | None) -> None:
    info = describe(agent)
    assert (info.device, info.os, info.browser, info.email_client) == (device, os, browser, client)


async def test_fills_only_what_the_provider_left_empty() -> None:
    given = make_event(client={"user_agent": CHROME_WIN, "device": "smart-tv"})
    bare = make_event(client={"user_agent": IPHONE_MAIL})
    no_client = make_event()
    await UserAgentEnricher(cache_size=10).enrich_batch([given, bare, no_client])
    assert given["data"]["client"] == {
        "user_agent": CHROME_WIN,
        "device": "smart-tv",
        "os": "Windows",
        "browser": "Chrome",
    }
    assert bare["data"]["client"]["device"] == "mobile"
    assert bare["data"]["client"]["email_client"] == "Apple Mail"
    assert "client" not in no_client["data"]


async def test_repeated_agents_hit_the_cache() -> None:
    enricher = UserAgentEnricher(cache_size=10)
    await enricher.enrich_batch([make_event(n=n, client={"user_agent": CHROME_WIN}) for n in range(50)])
    info = enricher._describe.cache_info()
    assert (info.misses, info.hits) == (1, 49)
