"""Suppression sink and the admin API on the real PostgreSQL: counts are exact under redelivery."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import aiohttp
import asyncpg  # type: ignore[import-untyped]
from aiohttp import web

from espwire.broker import free_port
from espwire.config import GatewayConfig, SinkConfig
from ingest_gateway.admin import SuppressionApi
from ingest_gateway.dispatch import Dispatcher
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
