"""Issue 6's "every fixture event lands once in each": all fixtures through gateway, processor and
the PostgreSQL, suppression and files sinks at once, on the real broker and the real PostgreSQL."""

from __future__ import annotations

import asyncio
import gzip
import io
from pathlib import Path

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import orjson

from espwire.config import SinkConfig
from processors.consumer import run_processor
from sinks.runner import run_sink
from tests.fixture_cases import all_http_cases
from tests.support.gateway import gateway_settings, running_gateway
from tests.support.kafka import consume_all

CASES = [c for c in all_http_cases() if c.meta["expect_status"] == 200]


async def test_fixture_events_land_once_in_every_sink(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, postgres_dsn: str, pg_schema: str
) -> None:
    sinks = [
        SinkConfig(name="pg", type="postgres", dsn=postgres_dsn, schema=pg_schema),  # type: ignore[call-arg]
        SinkConfig(name="suppress", type="suppression", dsn=postgres_dsn, schema=pg_schema),  # type: ignore[call-arg]
        SinkConfig(name="files", type="files", path="events"),  # type: ignore[call-arg]
    ]
    settings = gateway_settings(topic_prefix, tmp_path).model_copy(update={"sinks": sinks})
    stop = asyncio.Event()
    tasks = [asyncio.create_task(run_processor(settings, kafka_bootstrap, stop))]
    tasks += [asyncio.create_task(run_sink(settings, sink, kafka_bootstrap, stop)) for sink in sinks]
    try:
        async with running_gateway(settings, kafka_bootstrap) as gateway, aiohttp.ClientSession() as session:
            for case in CASES:
                query = f"?{case.meta['query']}" if case.meta.get("query") else ""
                url = f"{gateway.url}/hooks/{case.provider}{query}"
                body = io.BytesIO(case.body) if case.meta["method"] not in ("GET", "HEAD") else None
                async with session.request(case.meta["method"], url, data=body, headers=case.headers) as response:
                    assert response.status == 200, case.id
            expected = sum(len(c.expect_events) for c in CASES if not c.meta.get("duplicate_of"))
            records = await consume_all(kafka_bootstrap, f"{topic_prefix}.events", expect=expected)
            events = [orjson.loads(r.value) for r in records]
            assert len(events) == expected
            ids = {e["id"] for e in events}

            conn = await asyncpg.connect(postgres_dsn)
            try:

                async def rows() -> int:
                    return int(await conn.fetchval(f'SELECT count(*) FROM "{pg_schema}".events'))

                for _ in range(300):
                    if await rows() >= expected:
                        break
                    await asyncio.sleep(0.2)
                await asyncio.sleep(1.0)  # a late duplicate would show up now
                stored = {str(r["id"]) for r in await conn.fetch(f'SELECT id FROM "{pg_schema}".events')}
                assert await rows() == expected and stored == ids

                suppressed_expected = {
                    e["subject"].lower()
                    for e in events
                    if e.get("subject")
                    and "@" in e["subject"]
                    and (
                        e["type"] in ("email.complained", "email.unsubscribed")
                        or (e["type"] == "email.bounced" and e["data"].get("bounce", {}).get("severity") == "hard")
                    )
                }
                for _ in range(100):
                    emails = {r["email"] for r in await conn.fetch(f'SELECT email FROM "{pg_schema}".suppressions')}
                    if suppressed_expected <= emails:
                        break
                    await asyncio.sleep(0.2)
                assert suppressed_expected and suppressed_expected <= emails
            finally:
                await conn.close()
    except BaseException:
        # Stop the pipeline before failing: its producers and consumers must not outlive this test.
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
        raise
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 60)

    # The files sink flushes on a clean stop: every event in exactly one complete file.
    lines = [
        orjson.loads(line)
        for path in (tmp_path / "events").rglob("*.jsonl.gz")
        for line in gzip.decompress(path.read_bytes()).splitlines()
    ]
    assert sorted(e["id"] for e in lines) == sorted(ids)
