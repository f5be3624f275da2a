"""Bot clicks: scanner agents and networks, clicks right after delivery, several links in one second."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from processors.dedupe import MemoryDedupeStore, MessageEvent, MessageState
from processors.enrich import bot_click
from processors.enrich.bot_click import BotClickEnricher, event_epoch
from tests.unit.processors.enrich.conftest import make_event

HUMAN_UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15"
)


def click(n: int, at: str, url: str, *, message_id: str = "m1", **client: Any) -> dict[str, Any]:
    return make_event(
        "email.clicked",
        n=n,
        occurred_at=at,
        message={"message_id": message_id},
        link={"url": url},
        client={"user_agent": HUMAN_UA, "ip": "81.2.69.142", **client},
    )


def delivery(n: int, at: str, message_id: str = "m1") -> dict[str, Any]:
    return make_event("email.delivered", n=n, occurred_at=at, message={"message_id": message_id})


async def test_scanner_agent_and_network() -> None:
    enricher = BotClickEnricher(None, scanner_asns=[8075])
    events = [
        click(1, "2026-11-20T08:00:00Z", "https://x.example/a", user_agent="Mozilla/5.0 Mimecast Link Scanner"),
        click(2, "2026-11-20T08:00:00Z", "https://x.example/a", user_agent="python-requests/2.31"),
        click(3, "2026-11-20T08:00:00Z", "https://x.example/a"),
        click(4, "2026-11-20T08:00:00Z", "https://x.example/a"),
        click(5, "2026-11-20T08:00:00Z", "https://x.example/a"),
    ]
    events[2]["data"]["geo"] = {"asn": 8075, "as_org": "MICROSOFT-CORP-MSN-AS-BLOCK"}
    events[3]["data"]["geo"] = {"asn": None, "as_org": "Proofpoint, Inc."}
    await enricher.enrich_batch(events)
    assert [e["data"]["click"] for e in events] == [
        {"bot": True, "reason": "scanner:mimecast"},
        {"bot": True, "reason": "scanner:http_library"},
        {"bot": True, "reason": "scanner_network:AS8075"},
        {"bot": True, "reason": "scanner_network:proofpoint"},
        {"bot": False, "reason": None},
    ]


@pytest.mark.parametrize(
    ("agent", "as_org", "reason"),
    [
        # Office's link-existence probe, beside its protocol-discovery one.
        ("Microsoft Office Existence Discovery", None, "scanner:microsoft_office_discovery"),
        (
            "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
            None,
            "scanner:crawler",
        ),
        # AS names as the registries (and the bundled database) spell them.
        (HUMAN_UA, "AS2-TRENDMICRO-COM", "scanner_network:trend_micro"),
        (HUMAN_UA, "Trend Micro Incorporated", "scanner_network:trend_micro"),
        (HUMAN_UA, "IRONPORT-SYSTEMS-INC", "scanner_network:cisco_ironport"),
    ],
)
async def test_real_scanner_agents_and_networks(agent: str, as_org: str | None, reason: str) -> None:
    event = click(1, "2026-11-20T08:00:00Z", "https://x.example/a", user_agent=agent)
    if as_org is not None:
        event["data"]["geo"] = {"asn": None, "as_org": as_org}
    await BotClickEnricher(None).enrich_batch([event])
    assert event["data"]["click"] == {"bot": True, "reason": reason}


async def test_click_right_after_delivery_is_a_bot_one_later_is_not() -> None:
    store = MemoryDedupeStore()
    enricher = BotClickEnricher(store, seconds_after_delivery=10)
    await enricher.enrich_batch([delivery(1, "2026-11-20T08:00:00Z"), delivery(2, "2026-11-20T08:00:00Z", "m2")])
    fast = click(3, "2026-11-20T08:00:04Z", "https://x.example/a")
    slow = click(4, "2026-11-20T08:05:00Z", "https://x.example/b", message_id="m2")
    await enricher.enrich_batch([fast, slow])
    assert fast["data"]["click"] == {"bot": True, "reason": "click_soon_after_delivery"}
    assert slow["data"]["click"] == {"bot": False, "reason": None}
    await store.close()


async def test_a_gateway_scan_stamped_before_the_delivery_is_a_bot() -> None:
    """A gateway (Mimecast, Proofpoint, Defender) clicks while it accepts the message: the click is stamped
    before the provider's delivery event, which the gateway's acceptance completes."""
    store = MemoryDedupeStore()
    enricher = BotClickEnricher(store, seconds_after_delivery=10)
    scan = click(1, "2026-11-20T07:59:57Z", "https://x.example/a")
    await enricher.enrich_batch([scan, delivery(2, "2026-11-20T08:00:00Z")])
    assert scan["data"]["click"] == {"bot": True, "reason": "click_soon_after_delivery"}
    # Long before a delivery stamped late (a delivery time taken from a late import): no verdict from timing.
    early = click(3, "2026-11-20T07:00:00Z", "https://x.example/b", message_id="m2")
    await enricher.enrich_batch([early, delivery(4, "2026-11-20T08:00:00Z", "m2")])
    assert early["data"]["click"] == {"bot": False, "reason": None}
    await store.close()


async def test_delivery_and_click_in_the_same_batch() -> None:
    store = MemoryDedupeStore()
    events = [delivery(1, "2026-11-20T08:00:00Z"), click(2, "2026-11-20T08:00:02Z", "https://x.example/a")]
    await BotClickEnricher(store).enrich_batch(events)
    assert events[1]["data"]["click"]["reason"] == "click_soon_after_delivery"


async def test_every_link_in_one_second_flags_all_of_them() -> None:
    store = MemoryDedupeStore()
    enricher = BotClickEnricher(store)
    burst = [click(n, "2026-11-20T09:00:00.1Z", f"https://x.example/{n}") for n in range(3)]
    same_link_twice = [click(10 + n, "2026-11-20T09:10:00Z", "https://x.example/a", message_id="m9") for n in range(2)]
    await enricher.enrich_batch(burst + same_link_twice)
    assert all(e["data"]["click"] == {"bot": True, "reason": "links_clicked_same_second"} for e in burst)
    assert all(e["data"]["click"]["bot"] is False for e in same_link_twice)


class BrokenStore:
    async def note_message_events(self, items: Sequence[MessageEvent], ttl_seconds: float) -> list[MessageState]:
        raise ConnectionError("store down")


async def test_store_failure_keeps_the_static_verdict_and_notes_it() -> None:
    events = [click(1, "2026-11-20T08:00:00Z", "https://x.example/a"), delivery(2, "2026-11-20T08:00:00Z")]
    await BotClickEnricher(BrokenStore()).enrich_batch(events)
    assert events[0]["data"]["click"] == {"bot": False, "reason": None}
    assert events[0]["data"]["enrichment_errors"] == ["bot_click: timing rules skipped: store down"]
    assert "enrichment_errors" not in events[1]["data"]


def test_event_times_are_read_as_utc_also_when_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    at_eight = datetime(2026, 11, 20, 8, 0, 7, tzinfo=UTC).timestamp()
    expected = {
        "2026-11-20T08:00:07Z": at_eight,
        "2026-11-20T09:00:07.250+01:00": at_eight + 0.25,
        "2026-11-20T08:00:07": at_eight,  # no offset: UTC, as everywhere in the pipeline, not the host's zone
        "not a time": None,
    }
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        bot_click._EPOCHS.clear()
        for _ in range(2):  # the second time from the memo
            for text, epoch in expected.items():
                assert event_epoch(delivery(1, text)) == epoch
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_remembered_event_times_are_bounded() -> None:
    bot_click._EPOCHS.clear()
    for n in range(bot_click._EPOCHS_KEPT + 5):  # bounded
        assert event_epoch(delivery(1, f"2026-11-20T08:00:00.{n:06d}Z")) is not None
    assert len(bot_click._EPOCHS) <= bot_click._EPOCHS_KEPT


@pytest.mark.parametrize("as_org", ["ZSCALER-SJC1", "Forcepoint Cloud Ltd"])
async def test_a_cloud_web_proxy_is_no_scanner_network(as_org: str) -> None:
    # A company's people browse out through these proxies: their clicks carry its addresses.
    event = click(1, "2026-11-20T08:00:00Z", "https://x.example/a")
    event["data"]["geo"] = {"asn": None, "as_org": as_org}
    await BotClickEnricher(None).enrich_batch([event])
    assert event["data"]["click"] == {"bot": False, "reason": None}
