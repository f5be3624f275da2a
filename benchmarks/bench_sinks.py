"""Sink throughput without Kafka: ``write_batch`` of the PostgreSQL sink and the files sink on realistic events.

    python -m benchmarks.bench_sinks --events 200000 --batch 5000 --dsn postgresql://... --out F

Events look like the processor's output (recipient, client, message, campaign, tags, a raw payload of
about 600 bytes), each with a distinct id and time. The PostgreSQL run writes into a fresh schema
(dropped afterwards) through the sink's own path: binary COPY straight into ``events`` (through the
staging table and INSERT ... ON CONFLICT DO NOTHING for the re-written part), one transaction per part.
The files run writes gzip JSON Lines and Parquet into a temporary directory, with a flush (files
complete, fsync'ed, renamed) at the end. Each event comes with its JSON, as the runner gives it when
the sink's privacy settings keep everything. The time includes building the rows (timestamp parsing),
as in the service, which this runs like: uvloop, and the service's GC tuning once the events exist.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import uvloop

from benchmarks.procs import process_cpu_seconds
from espwire.config import Settings, SinkConfig
from espwire.runtime import tune_gc
from sinks.base import Position, Sink
from sinks.files import FilesOptions, FilesSink
from sinks.postgres import PostgresOptions, PostgresSink, quote_ident

TYPES = ("email.delivered", "email.opened", "email.clicked", "email.bounced", "email.sent")


def synthetic_events(count: int) -> list[dict[str, Any]]:
    base = datetime(2026, 11, 20, tzinfo=UTC)
    events = []
    for i in range(count):
        moment = (base + timedelta(milliseconds=37 * i)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        email = f"customer{i % 50_000}@mail{i % 17}.example.com"
        event_type = TYPES[i % len(TYPES)]
        raw = {
            "msys": {
                "message_event": {
                    "type": event_type.split(".")[1],
                    "event_id": str(10**17 + i),
                    "rcpt_to": email,
                    "message_id": f"000443ee14578172be22-{i}",
                    "transmission_id": str(65832150921904138 + i),
                    "campaign_id": "Black Friday 2026",
                    "friendly_from": "deals@shop.example.com",
                    "ip_address": "203.0.113.7",
                    "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15",
                    "timestamp": moment,
                    "rcpt_meta": {"customer_tier": "gold", "locale": "en-GB"},
                }
            }
        }
        events.append(
            {
                "specversion": "1.0",
                "id": str(uuid.uuid4()),
                "source": "/hooks/sparkpost",
                "type": event_type,
                "time": moment,
                "datacontenttype": "application/json",
                "subject": email,
                "data": {
                    "provider": "sparkpost",
                    "source_id": "sparkpost",
                    "request_id": str(uuid.uuid4()),
                    "provider_event_type": event_type.split(".")[1],
                    "provider_event_id": str(10**17 + i),
                    "occurred_at": moment,
                    "received_at": moment,
                    "time_source": "provider",
                    "recipient": {"email": email},
                    "message": {"message_id": f"000443ee14578172be22-{i}", "subject": "Black Friday starts now"},
                    "campaign": {"id": "Black Friday 2026"},
                    "client": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)"},
                    "tags": ["promo"],
                    "raw": raw,
                },
            }
        )
    return events


async def drive(sink: Sink, events: list[dict[str, Any]], encoded: list[bytes], batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        positions = [Position(0, start + i) for i in range(len(chunk))]
        await sink.write_batch(chunk, positions, encoded[start : start + batch])
    await sink.flush()
    return time.perf_counter() - started


def _cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU of these processes (the server's backends when it runs on this machine), else None."""
    try:
        return sum(process_cpu_seconds(pid) for pid in pids)
    except (OSError, IndexError, ValueError):
        return None


async def _backend_pids(sink: PostgresSink) -> list[int]:
    """Opens every connection of the sink's pool now (the run then uses these), and their server pids."""
    pool = sink._pool
    conns = [await pool.acquire() for _ in range(sink.pg.pool_size)]
    try:
        return [conn.get_server_pid() for conn in conns]
    finally:
        for conn in conns:
            await pool.release(conn)


async def bench_postgres(
    dsn: str, events: list[dict[str, Any]], encoded: list[bytes], batch: int, parallelism: int
) -> dict[str, Any]:
    import asyncpg  # type: ignore[import-untyped]

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    config = SinkConfig(name="bench", type="postgres", dsn=dsn, schema=schema, write_parallelism=parallelism)  # type: ignore[call-arg]
    sink = PostgresSink(PostgresOptions.from_config(config))
    await sink.start()
    try:
        await sink.write_batch(events[:10])  # partitions and pool warm; those 10 are then skipped
        pids = await _backend_pids(sink)
        client_before, server_before = time.process_time(), _cpu_seconds(pids)
        seconds = await drive(sink, events, encoded, batch)
        client_cpu, server_after = time.process_time() - client_before, _cpu_seconds(pids)
        redeliver = await drive(sink, events[: batch * 4], encoded, batch)
    finally:
        await sink.close()
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetchval(f"SELECT count(*) FROM {quote_ident(schema)}.events")
            await conn.execute(f"DROP SCHEMA {quote_ident(schema)} CASCADE")
        finally:
            await conn.close()
    return {
        "sink": "postgres",
        "events": len(events),
        "rows": rows,
        "batch": batch,
        "write_parallelism": parallelism,
        "seconds": round(seconds, 3),
        "events_per_second": round(len(events) / seconds),
        "redelivered_events_per_second": round(batch * 4 / redeliver),
        # CPU per event moves less than the rate on a shared machine: the sink's process, and its
        # PostgreSQL backends (WAL writer, checkpointer and background writer not included).
        "client_cpu_us_per_event": round(client_cpu / len(events) * 1e6, 1),
        "backends_cpu_us_per_event": (
            None
            if server_before is None or server_after is None
            else round((server_after - server_before) / len(events) * 1e6, 1)
        ),
    }


def _written(root: Path) -> tuple[int, int]:
    files = list(root.rglob("part-*"))
    return len(files), sum(p.stat().st_size for p in files)


async def bench_files(fmt: str, events: list[dict[str, Any]], encoded: list[bytes], batch: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(datadir=Path(tmp))
        config = SinkConfig(name="bench", type="files", path=f"{tmp}/out", format=fmt)  # type: ignore[call-arg]
        sink = FilesSink(FilesOptions.from_config(config), settings)
        await sink.start()
        try:
            seconds = await drive(sink, events, encoded, batch)
        finally:
            await sink.close()
        files, size = await asyncio.to_thread(_written, Path(tmp, "out"))
    return {
        "sink": f"files ({fmt})",
        "events": len(events),
        "batch": batch,
        "files": files,
        "bytes_written": size,
        "seconds": round(seconds, 3),
        "events_per_second": round(len(events) / seconds),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description="Measure sink throughput (events/s) on synthetic events.")
    parser.add_argument("--events", type=int, default=200_000, help="events per run")
    parser.add_argument("--batch", type=int, default=5000, help="events per write_batch (the runner's batch)")
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test", help="PostgreSQL to write to")
    parser.add_argument("--pg-parallelism", type=int, default=4, help="the PostgreSQL sink's write_parallelism")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-files", action="store_true", help="measure the PostgreSQL sink only")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    events = synthetic_events(args.events)
    # What the runner reads from Kafka and hands to the sink with the events (privacy keeping everything).
    encoded = [orjson.dumps(event) for event in events]
    # As the service runs (espwire.runtime): without it, every young collection would re-scan the
    # whole set of synthetic events, which the service never holds, and the figure would be the GC's.
    tune_gc()
    size = sum(len(e) for e in encoded[:1000]) / 1000
    results = []
    if not args.skip_postgres:
        results.append(await bench_postgres(args.dsn, events, encoded, args.batch, args.pg_parallelism))
    if not args.skip_files:
        results.append(await bench_files("jsonl", events, encoded, args.batch))
        results.append(await bench_files("parquet", events, encoded, args.batch))
    print(f"{args.events} events, {size:.0f} bytes each as JSON, batches of {args.batch}")
    print(f"{'sink':<16} {'events/s':>10} {'seconds':>9}  CPU per event")
    for result in results:
        cpu = ""
        if "client_cpu_us_per_event" in result:
            here, there = result["client_cpu_us_per_event"], result["backends_cpu_us_per_event"]
            cpu = f"  {here} µs here, {there} µs in the backends"
        print(f"{result['sink']:<16} {result['events_per_second']:>10,} {result['seconds']:>9.2f}{cpu}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"event_bytes": round(size), "results": results}
        args.out.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    uvloop.run(main())  # the service's event loop
