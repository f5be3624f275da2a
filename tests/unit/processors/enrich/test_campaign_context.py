"""Campaign context: attributes by campaign id or mailing id, reloaded when the file changes."""

from __future__ import annotations

import os
from pathlib import Path

from processors.enrich.campaign_context import CampaignContextEnricher
from tests.unit.processors.enrich.conftest import make_event


async def test_lookup_and_reload(tmp_path: Path) -> None:
    table = tmp_path / "campaigns.csv"
    table.write_text("campaign_id,mailing_id,team,budget\nc1,,growth,100\n,mail-7,retention,\n")
    enricher = CampaignContextEnricher(table, check_seconds=0)
    events = [
        make_event(n=1, campaign={"id": "c1"}),
        make_event(n=2, message={"mailing_id": "mail-7"}),
        make_event(n=3, campaign={"id": "nope"}),
    ]
    await enricher.enrich_batch(events)
    assert events[0]["data"]["campaign_context"] == {"team": "growth", "budget": "100"}
    assert events[1]["data"]["campaign_context"] == {"team": "retention"}
    assert "campaign_context" not in events[2]["data"]

    table.write_text("campaign_id,team\nc1,brand\nnope,found-now\n")
    stat = table.stat()
    os.utime(table, (stat.st_atime, stat.st_mtime + 5))
    again = [make_event(n=4, campaign={"id": "c1"}), make_event(n=5, campaign={"id": "nope"})]
    await enricher.enrich_batch(again)
    assert again[0]["data"]["campaign_context"] == {"team": "brand"}
    assert again[1]["data"]["campaign_context"] == {"team": "found-now"}


async def test_unreadable_file_is_noted_not_fatal(tmp_path: Path) -> None:
    enricher = CampaignContextEnricher(tmp_path / "missing.csv", check_seconds=0)
    events = [make_event(n=1, campaign={"id": "c1"}), make_event(n=2)]
    await enricher.enrich_batch(events)
    assert events[0]["data"]["enrichment_errors"][0].startswith("campaign_context: cannot read missing.csv")
    assert "enrichment_errors" not in events[1]["data"]


async def test_header_without_a_key_column(tmp_path: Path) -> None:
    table = tmp_path / "bad.csv"
    table.write_text("name,team\nx,y\n")
    enricher = CampaignContextEnricher(table, check_seconds=0)
    event = make_event(campaign={"id": "x"})
    await enricher.enrich_batch([event])
    assert "needs a campaign_id or mailing_id column" in event["data"]["enrichment_errors"][0]
