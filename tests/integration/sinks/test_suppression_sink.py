"""Suppression sink and the admin API on the real PostgreSQL: counts are exact under redelivery."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import aiohttp
import asyncpg  # type: ignore[import-untyped]
from aiohttp import web

from espwire.broker import free_port
from espwire.config import GatewayConfig, SinkConfig
from ingest_gateway.admin import SuppressionApi
from ingest_gateway.dispatch import Dispatcher
from sinks.postgres import migrate, migrations
from sinks.suppression import SuppressionOptions, SuppressionSink, SuppressionStore, suppressions_csv
from tests.integration.sinks.conftest import publish_events, running_sink, sink_settings, wait_until
from tests.unit.sinks.factory import BASE_TIME, make_event


def _events() -> list[dict[str, object]]:
    return [
        make_event(1, type="email.bounced", email="Hard@Example.com", bounce={"severity": "hard"}),
        make_event(
            2,
            type="email.bounced",
            email="hard@example.com",
            reject_reason="bounced",
            time=BASE_TIME + timedelta(days=1),
        ),
        make_event(
            3, type="email.bounced", email="soft@example.com", bounce={"severity": "soft"}, reject_reason="bounced"
        ),
        make_event(4, type="email.complained", email="angry@example.com", provider="falconide", source_id="falc"),
        make_event(5, type="email.unsubscribed", email="bye@example.com"),
        make_event(6, type="email.opened", email="happy@example.com"),
    ]


async def test_redelivery_counts_once_and_queries(
    kafka_bootstrap: str, topic_prefix: str, postgres_dsn: str, pg_schema: str, tmp_path: Path
) -> None:
    config = SinkConfig(name="suppress", type="suppression", dsn=postgres_dsn, schema=pg_schema, batch_wait_ms=50)  # type: ignore[call-arg]
    settings = sink_settings(topic_prefix, tmp_path, config)
    events = _events()
    await publish_events(kafka_bootstrap, topic_prefix, events + events)  # delivered twice
    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=2)
    try:
        store = SuppressionStore(pool, pg_schema)

        async def all_applied() -> bool:
            try:
                return len(await store.list_suppressions()) == 3 and await _applied(pool, pg_schema) == 4
            except asyncpg.UndefinedTableError:
                return False

        async with running_sink(settings, config, kafka_bootstrap):
            await wait_until(all_applied)
        # And once more straight into the sink: a redelivered batch changes nothing.
        sink = SuppressionSink(SuppressionOptions.from_config(config))
        await sink.start()
        try:
            outcome = await sink.write_batch(events)
            assert (outcome.written, outcome.skipped) == (4, 2)
        finally:
            await sink.close()

        hard = await store.get_suppression("HARD@example.com ")
        assert hard is not None
        assert (hard["reason"], hard["count"], hard["provider"]) == ("hard_bounce", 2, "sparkpost")
        assert hard["last_seen"] - hard["first_seen"] == timedelta(days=1) - timedelta(seconds=1)
        assert await store.get_suppression("soft@example.com") is None
        assert await store.get_suppression("happy@example.com") is None
        assert (await store.get_suppression("angry@example.com") or {})["reason"] == "complaint"
        recent = await store.list_suppressions(since=BASE_TIME + timedelta(hours=1))
        assert [r["email"] for r in recent] == ["hard@example.com"]
        text = suppressions_csv(await store.list_suppressions())
        assert text.splitlines()[0] == "email,reason,provider,source,first_seen,last_seen,count"
        assert len(text.splitlines()) == 4
    finally:
        await pool.close()

    await _admin_api(settings.model_copy(update={"gateway": GatewayConfig(admin_token="s3cret")}))  # type: ignore[arg-type]


async def _applied(pool: asyncpg.Pool, schema: str) -> int:
    return int(await pool.fetchval(f'SELECT count(*) FROM "{schema}".suppression_events'))


async def _admin_api(settings: object) -> None:
    api = SuppressionApi(settings)  # type: ignore[arg-type]
    dispatcher = Dispatcher()
    api.add_routes(dispatcher)
    await api.start()
    runner = web.ServerRunner(web.Server(dispatcher, access_log=None))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}/api/suppressions"
    good = {"Authorization": "Bearer s3cret"}
    try:
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
                async with http.get(f"{base}/hard@example.com", headers=headers) as response:
                    assert response.status == 401
            async with http.get(f"{base}/Hard@Example.com", headers=good) as response:
                assert response.status == 200
                body = await response.json()
                assert body["email"] == "hard@example.com" and body["count"] == 2
            async with http.get(f"{base}/nobody@example.com", headers=good) as response:
                assert response.status == 404
            async with http.get(base, params={"since": "2026-11-21T00:00:00Z"}, headers=good) as response:
                assert [r["email"] for r in (await response.json())["suppressions"]] == ["hard@example.com"]
            async with http.get(base, params={"format": "csv"}, headers=good) as response:
                assert response.content_type == "text/csv" and len((await response.text()).splitlines()) == 4
            async with http.get(base, params={"since": "yesterday"}, headers=good) as response:
                assert response.status == 400
    finally:
        await runner.cleanup()
        await api.close()


# As SparkPost's adapter and the bounce_class enricher give them (tests/data/providers/sparkpost/batch_300):
# a 5xx reply where the provider's own reading says nothing about the address.
_TEMPLATE_FAILED = {
    "smtp_status": "554",
    "enhanced_status": "5.3.3",
    "reason": "554 5.3.3 [internal] Error while rendering part html: substitution value missing",
    "category": "protocol_error",
    "inferred_severity": "hard",
}
_DELAYED_USER_UNKNOWN = {
    "category": "mailbox_unknown",
    "class_code": "10",
    "smtp_status": "550",
    "enhanced_status": "5.1.1",
    "reason": "550 5.1.1 <dev.patel26@example.com>: Recipient address rejected: User unknown",
    "inferred_severity": "hard",
}


async def test_only_addresses_known_bad_are_suppressed_and_stored_bare(postgres_dsn: str, pg_schema: str) -> None:
    events = [
        # Not the address's fault: a template that did not render, a deferral the provider still retries.
        make_event(
            1, type="email.rejected", email="june.kim10@example.com", reject_reason="other", bounce=_TEMPLATE_FAILED
        ),
        make_event(2, type="email.deferred", email="dev.patel26@example.com", bounce=_DELAYED_USER_UNKNOWN),
        make_event(
            3, type="email.rejected", email="ivan@example.com", reject_reason="blocked", bounce={"severity": "block"}
        ),
        # The provider's display form and stray spaces: one entry under the bare address; a subaddress is its own.
        make_event(4, type="email.bounced", email=' "Nora Lind" <Nora.Lind@Example.org> ', bounce={"severity": "hard"}),
        make_event(5, type="email.complained", email="nora.lind@example.org"),
        make_event(6, type="email.unsubscribed", email="Nora.Lind+News@example.org"),
        make_event(7, type="email.rejected", email="marco@example.com", reject_reason="invalid", provider="falconide"),
    ]
    config = SinkConfig(name="suppress", type="suppression", dsn=postgres_dsn, schema=pg_schema)  # type: ignore[call-arg]
    sink = SuppressionSink(SuppressionOptions.from_config(config))
    await sink.start()
    try:
        outcome = await sink.write_batch(events)
        assert (outcome.written, outcome.skipped, outcome.poison) == (4, 3, [])
        store = SuppressionStore(sink._pool, pg_schema)
        rows = await store.list_suppressions()
        assert sorted(r["email"] for r in rows) == [
            "marco@example.com",
            "nora.lind+news@example.org",
            "nora.lind@example.org",
        ]
        nora = await store.get_suppression("Nora Lind <nora.lind@example.org>")
        assert nora is not None and (nora["count"], nora["reason"]) == (2, "complaint")
    finally:
        await sink.close()


def test_the_csv_export_does_not_hand_a_spreadsheet_formulas() -> None:
    seen = BASE_TIME
    rows = [
        {
            "email": '=HYPERLINK("http://evil.example/")@x.com',
            "reason": "complaint",
            "provider": "sparkpost",
            "source": "+cmd|' /C calc'!A0",
            "first_seen": seen,
            "last_seen": seen,
            "count": 1,
        },
        {
            "email": "-2+3@example.com",
            "reason": "hard_bounce",
            "provider": "ipost",
            "source": "@SUM(1)",
            "first_seen": seen,
            "last_seen": seen,
            "count": 2,
        },
        {
            "email": "plain@example.com",
            "reason": "unsubscribe",
            "provider": "pure360",
            "source": "p360",
            "first_seen": seen,
            "last_seen": seen,
            "count": 3,
        },
    ]
    cells = list(csv.reader(io.StringIO(suppressions_csv(rows))))
    assert [row[:4] for row in cells[1:]] == [
        ['\'=HYPERLINK("http://evil.example/")@x.com', "complaint", "sparkpost", "'+cmd|' /C calc'!A0"],
        ["'-2+3@example.com", "hard_bounce", "ipost", "'@SUM(1)"],
        ["plain@example.com", "unsubscribe", "pure360", "p360"],
    ]
    assert cells[3][4:] == [seen.isoformat(), seen.isoformat(), "3"]


async def test_an_opt_in_after_unsubscribing_lifts_only_unsubscribes(postgres_dsn: str, pg_schema: str) -> None:
    # Pure360 sends OPTIN (email.subscribed) when a contact opts back in; before, an address that had
    # unsubscribed once stayed suppressed for ever whatever it did after.
    def at(minutes: int) -> dict[str, object]:
        return {"time": BASE_TIME + timedelta(minutes=minutes), "provider": "pure360", "source_id": "p360"}

    config = SinkConfig(name="suppress", type="suppression", dsn=postgres_dsn, schema=pg_schema)  # type: ignore[call-arg]
    sink = SuppressionSink(SuppressionOptions.from_config(config))
    await sink.start()
    try:
        store = SuppressionStore(sink._pool, pg_schema)

        async def suppressed() -> list[str]:
            return sorted(r["email"] for r in await store.list_suppressions())

        first = [
            make_event(1, type="email.unsubscribed", email="back@example.com", **at(0)),
            make_event(2, type="email.complained", email="angry@example.com", **at(0)),
            make_event(3, type="email.unsubscribed", email="angry@example.com", **at(1)),
            make_event(4, type="email.bounced", email="gone@example.com", bounce={"severity": "hard"}, **at(0)),
            make_event(5, type="email.subscribed", email="late@example.com", **at(10)),
        ]
        assert (await sink.write_batch(first)).written == 5
        assert await suppressed() == ["angry@example.com", "back@example.com", "gone@example.com"]

        opt_ins = [
            make_event(6, type="email.subscribed", email="Back@Example.com", **at(5)),
            make_event(7, type="email.subscribed", email="angry@example.com", **at(5)),
            make_event(8, type="email.subscribed", email="gone@example.com", **at(5)),
            # Older than late@'s opt-in, delivered after it: no suppression.
            make_event(9, type="email.unsubscribed", email="late@example.com", **at(3)),
        ]
        await sink.write_batch(opt_ins)
        await sink.write_batch(first + opt_ins)  # redelivered: nothing changes
        assert await suppressed() == ["angry@example.com", "gone@example.com"]
        assert await store.get_suppression("back@example.com") is None
        assert await store.get_suppression("late@example.com") is None

        await sink.write_batch([make_event(10, type="email.unsubscribed", email="back@example.com", **at(20))])
        back = await store.get_suppression("back@example.com")
        assert back is not None and (back["reason"], back["count"]) == ("unsubscribe", 2)
        assert await suppressed() == ["angry@example.com", "back@example.com", "gone@example.com"]
    finally:
        await sink.close()


async def test_the_migration_keeps_earlier_entries_suppressed(postgres_dsn: str, pg_schema: str) -> None:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        async with conn.transaction():
            await conn.execute(f'SET LOCAL search_path TO "{pg_schema}"')
            await conn.execute(
                "CREATE TABLE schema_migrations "
                "(version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for version, sql in migrations()[:3]:
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            await conn.execute(
                "INSERT INTO suppressions VALUES "
                "('one@example.com', 'unsubscribe', 'pure360', 'p', $1, $1, 1), "
                "('two@example.com', 'unsubscribe', 'pure360', 'p', $1, $1, 2), "
                "('three@example.com', 'complaint', 'pure360', 'p', $1, $1, 1)",
                BASE_TIME,
            )
    finally:
        await conn.close()
    assert await migrate(postgres_dsn, pg_schema) == ["0004_resubscriptions"]
    config = SinkConfig(name="suppress", type="suppression", dsn=postgres_dsn, schema=pg_schema)  # type: ignore[call-arg]
    sink = SuppressionSink(SuppressionOptions.from_config(config))
    await sink.start()
    try:
        later = BASE_TIME + timedelta(hours=1)
        opt_ins = [
            make_event(i, type="email.subscribed", email=e, time=later)
            for i, e in enumerate(("one@example.com", "two@example.com", "three@example.com"))
        ]
        await sink.write_batch(opt_ins)
        rows = await SuppressionStore(sink._pool, pg_schema).list_suppressions()
        # Only the entry that surely held one unsubscribe is lifted; the one counted twice may hold more.
        assert sorted(r["email"] for r in rows) == ["three@example.com", "two@example.com"]
    finally:
        await sink.close()
