"""Campaign context: attributes by campaign id or mailing id, reloaded when the file changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from processors.enrich.campaign_context import CampaignContextEnricher, CsvTable, PostgresTable, quoted_table
from tests.unit.processors.enrich.conftest import make_event


async def test_lookup_and_reload(tmp_path: Path) -> None:
    table = tmp_path / "campaigns.csv"
    table.write_text("campaign_id,mailing_id,team,budget\nc1,,growth,100\n,mail-7,retention,\n")
    enricher = CampaignContextEnricher(CsvTable(table, check_seconds=0))
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
    enricher = CampaignContextEnricher(CsvTable(tmp_path / "missing.csv", check_seconds=0))
    events = [make_event(n=1, campaign={"id": "c1"}), make_event(n=2)]
    await enricher.enrich_batch(events)
    assert events[0]["data"]["enrichment_errors"][0].startswith("campaign_context: cannot read missing.csv")
    assert "enrichment_errors" not in events[1]["data"]


async def test_header_without_a_key_column(tmp_path: Path) -> None:
    table = tmp_path / "bad.csv"
    table.write_text("name,team\nx,y\n")
    enricher = CampaignContextEnricher(CsvTable(table, check_seconds=0))
    event = make_event(campaign={"id": "x"})
    await enricher.enrich_batch([event])
    assert "needs a campaign_id or mailing_id column" in event["data"]["enrichment_errors"][0]


async def test_postgres_table_lookup_refresh_and_outage(postgres_dsn: str, pg_schema: str) -> None:
    """The same lookup from a real PostgreSQL table: typed columns come out as text, a change is seen on
    the next refresh, and a database that stops answering keeps the last good table (with a note only
    for ids it cannot find)."""
    import asyncpg

    from tests.support.outage_proxy import OutageProxy

    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute(
            f'CREATE TABLE "{pg_schema}".campaigns (campaign_id text, mailing_id text, team text, budget int, '
            "starts date, note text)"
        )
        await conn.execute(
            f"""INSERT INTO "{pg_schema}".campaigns VALUES
            ('c1', NULL, 'growth', 100, '2026-12-01', NULL), (NULL, '000042', 'retention', NULL, NULL, '  ')"""
        )
        proxy = OutageProxy("127.0.0.1", 5432)
        await proxy.start()
        dsn = postgres_dsn.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        assert dsn != postgres_dsn
        enricher = CampaignContextEnricher(PostgresTable(dsn, f"{pg_schema}.campaigns", check_seconds=0))
        events = [make_event(n=1, campaign={"id": "c1"}), make_event(n=2, message={"mailing_id": "000042"})]
        await enricher.enrich_batch(events)
        assert events[0]["data"]["campaign_context"] == {"team": "growth", "budget": "100", "starts": "2026-12-01"}
        assert events[1]["data"]["campaign_context"] == {"team": "retention"}

        await conn.execute(f"""UPDATE "{pg_schema}".campaigns SET team = 'brand' WHERE campaign_id = 'c1'""")
        again = [make_event(n=3, campaign={"id": "c1"})]
        await enricher.enrich_batch(again)
        assert again[0]["data"]["campaign_context"]["team"] == "brand"

        proxy.cut()
        during = [make_event(n=4, campaign={"id": "c1"}), make_event(n=5, campaign={"id": "c9"})]
        await enricher.enrich_batch(during)
        assert during[0]["data"]["campaign_context"]["team"] == "brand", "the last good table"
        assert "enrichment_errors" not in during[0]["data"]
        assert during[1]["data"]["enrichment_errors"][0].startswith(f"campaign_context: cannot read table {pg_schema}")
        await proxy.stop()
    finally:
        await conn.close()


def test_postgres_table_names_are_checked() -> None:
    assert quoted_table("public.campaigns") == '"public"."campaigns"'
    for bad in ("campaigns; DROP TABLE x", 'a"b', "a.b.c", ""):
        with pytest.raises(ValueError, match="is not a table name"):
            quoted_table(bad)
