"""Files sink: JSON Lines and Parquet, locally and on S3 (a real moto server), each event in exactly one file."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import orjson
import pyarrow.parquet as pq
import pytest
from moto.server import ThreadedMotoServer

from espwire.config import SinkConfig
from sinks.base import DestinationUnavailable, Position
from sinks.files import FilesOptions, FilesSink, parse_file_name
from sinks.runner import run_sink
from tests.integration.sinks.conftest import crash, publish_events, running_sink, sink_settings, wait_until
from tests.unit.sinks.factory import make_event


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _s3_sink(endpoint: str, bucket: str, **options: Any) -> tuple[Any, SinkConfig]:
    """A client of the moto server, a new bucket on it, and a files sink's config writing to it."""
    s3 = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )
    s3.create_bucket(Bucket=bucket)
    config = SinkConfig(
        type="files",
        path=f"s3://{bucket}/lake",
        s3_endpoint_url=endpoint,
        s3_key_id="test",
        s3_secret="test",
        s3_region="us-east-1",
        **options,
    )
    return s3, config


def _local_lines(root: Path) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for path in sorted(root.rglob("part-*.jsonl.gz")):
        events.extend(orjson.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines())
    return events


def _typed(i: int) -> dict[str, Any]:
    return make_event(i, type=("email.delivered", "email.opened", "email.clicked")[i % 3])


async def test_crash_and_restart_give_every_event_in_exactly_one_file(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    root = tmp_path / "events"
    config = SinkConfig(
        name="files",
        type="files",
        path=str(root),
        roll_bytes=40_000,
        batch_max_events=40,
        batch_wait_ms=50,
        session_timeout_ms=3000,
    )  # type: ignore[call-arg]
    settings = sink_settings(topic_prefix, tmp_path, config)
    events = [_typed(i) for i in range(1200)]
    await publish_events(kafka_bootstrap, topic_prefix, events)

    task = asyncio.create_task(run_sink(settings, config, kafka_bootstrap, asyncio.Event()))

    async def some_files() -> bool:
        return len(list(root.rglob("part-*"))) >= 3

    await wait_until(some_files, every=0.02)
    await crash(task)  # open files are lost, complete ones stay; offsets stop before the oldest open file
    # Clean runs until everything is in complete files. Open files become complete at a clean stop;
    # what a run had not consumed yet stays in Kafka behind the committed offset, for the next run.
    for _ in range(6):
        async with running_sink(settings, config, kafka_bootstrap):

            async def all_written_or_open() -> bool:
                return len(_local_lines(root)) >= 1200

            with contextlib.suppress(AssertionError):
                await wait_until(all_written_or_open, timeout=8)
        if len(_local_lines(root)) >= 1200:
            break
    written = _local_lines(root)
    assert len(written) == 1200
    assert {e["id"] for e in written} == {e["id"] for e in events}
    assert not list(root.rglob(".*.tmp")), "no half-written file is left visible"
    for path in root.rglob("part-*"):
        assert path.parent.name.startswith("type=email.") and path.parent.parent.name == "dt=2026-11-20"
        _, first, last = parse_file_name(path.name) or (0, 0, -1)
        assert first <= last
        lines = [orjson.loads(x) for x in gzip.decompress(path.read_bytes()).splitlines()]
        assert {e["type"] for e in lines} == {path.parent.name.removeprefix("type=")}


async def test_parquet_files_and_a_restarted_sink_skips_what_is_written(tmp_path: Path) -> None:
    from tests.integration.sinks.conftest import sink_settings as settings_for

    config = SinkConfig(name="pq", type="files", path=str(tmp_path / "pq"), format="parquet")  # type: ignore[call-arg]
    settings = settings_for("unused", tmp_path)
    events = [_typed(i) for i in range(300)]
    positions = [Position(0, 1000 + i) for i in range(300)]

    sink = FilesSink(FilesOptions.from_config(config), settings)
    await sink.start()
    await sink.write_batch(events[:200], positions[:200])
    await sink.flush()
    assert sink.committable({0: 1200}) == {0: 1200}
    await sink.close()

    # A new process re-reads from an older offset: the first 200 are in complete files already.
    again = FilesSink(FilesOptions.from_config(config), settings)
    await again.start()
    outcome = await again.write_batch(events, positions)
    assert (outcome.written, outcome.skipped) == (100, 200)
    assert again.committable({0: 1300}) == {0: 1200}, "held back to the first offset of the open files"
    await again.flush()
    await again.close()

    tables = [pq.read_table(path) for path in sorted((tmp_path / "pq").rglob("part-*.parquet"))]
    ids = [i for t in tables for i in t.column("id").to_pylist()]
    assert sorted(ids) == sorted(e["id"] for e in events)
    first = tables[0].to_pylist()[0]
    assert orjson.loads(first["event"])["id"] == first["id"]
    assert first["time"].year == 2026 and first["provider"] == "sparkpost"


async def test_s3_objects_appear_complete_once_and_redelivery_adds_none(tmp_path: Path, s3_endpoint: str) -> None:
    s3, config = _s3_sink(s3_endpoint, "espwire-events", name="s3", roll_bytes=50_000)
    settings = sink_settings("unused", tmp_path)
    events = [_typed(i) for i in range(400)]
    positions = [Position(1, i) for i in range(400)]

    def keys() -> list[str]:
        listed = s3.list_objects_v2(Bucket="espwire-events", Prefix="lake/")
        return sorted(o["Key"] for o in listed.get("Contents", []))

    sink = FilesSink(FilesOptions.from_config(config), settings)
    await sink.start()
    try:
        await sink.write_batch(events[:250], positions[:250])
        complete_before_flush = keys()
        assert all(parse_file_name(k.rsplit("/", 1)[-1]) for k in complete_before_flush)
        await sink.flush()
    finally:
        await sink.close()
    restarted = FilesSink(FilesOptions.from_config(config), settings)
    await restarted.start()
    try:
        outcome = await restarted.write_batch(events, positions)
        assert outcome.skipped == 250
        await restarted.flush()
    finally:
        await restarted.close()

    lines: list[dict[str, Any]] = []
    for key in keys():
        assert key.startswith("lake/dt=2026-11-20/type=email.") and key.endswith(".jsonl.gz")
        body = s3.get_object(Bucket="espwire-events", Key=key)["Body"].read()
        lines.extend(orjson.loads(x) for x in gzip.GzipFile(fileobj=io.BytesIO(body)).read().splitlines())
    assert sorted(e["id"] for e in lines) == sorted(e["id"] for e in events)
    assert not list(tmp_path.rglob("*.tmp")), "staged files are removed once put"


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A real file system of ``size`` (tmpfs) at ``path``: writes past it fail with ENOSPC."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


async def test_a_full_disk_never_leaves_a_broken_file_and_nothing_is_lost(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with small_disk(tmp_path / "disk", "24k") as disk:
        root = disk / "events"
        config = SinkConfig(
            name="files",
            type="files",
            path=str(root),
            roll_bytes=400_000,
            roll_seconds=1.0,
            gzip_level=1,
            batch_max_events=50,
            batch_wait_ms=50,
            retry_initial_seconds=0.1,
            retry_max_seconds=0.5,
        )  # type: ignore[call-arg]
        settings = sink_settings(topic_prefix, tmp_path, config)
        events = [_typed(i) for i in range(600)]
        await publish_events(kafka_bootstrap, topic_prefix, events)
        async with running_sink(settings, config, kafka_bootstrap):

            async def disk_full() -> bool:  # a write failed part way: the sink started over
                return any("starting over" in r.getMessage() for r in caplog.records)

            await wait_until(disk_full, timeout=30)
            await asyncio.sleep(2)  # and again, while the disk stays full
            for path in root.rglob("part-*"):
                gzip.decompress(path.read_bytes())  # every published file reads whole
            subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)  # space again

            async def all_written() -> bool:
                return len(_local_lines(root)) >= 600

            await wait_until(all_written)
        written = _local_lines(root)
    assert sorted(e["id"] for e in written) == sorted(e["id"] for e in events), "each event once"


async def test_a_file_whose_publish_failed_takes_no_more_events_and_is_published_later(
    tmp_path: Path, s3_endpoint: str
) -> None:
    # The age roll (maintain, between batches) seals a file, then its PUT fails: the bucket is not there.
    # The runner counts that as the store being down and goes on with the next batch; before, that
    # batch's events for the same (date, type, partition) were appended to the sealed file: ValueError
    # (a write to a closed file) out of write_batch, which stopped the sink.
    s3, config = _s3_sink(s3_endpoint, "espwire-late", name="late", roll_seconds=0.2)
    events = [make_event(i) for i in range(6)]
    positions = [Position(2, i) for i in range(6)]
    sink = FilesSink(FilesOptions.from_config(config), sink_settings("unused", tmp_path))
    await sink.start()
    try:
        await sink.write_batch(events[:2], positions[:2])
        s3.delete_bucket(Bucket="espwire-late")
        await asyncio.sleep(0.3)
        with pytest.raises(DestinationUnavailable):
            await sink.maintain()
        with pytest.raises(DestinationUnavailable):
            await sink.write_batch(events[2:4], positions[2:4])
        s3.create_bucket(Bucket="espwire-late")
        outcome = await sink.write_batch(events[2:4], positions[2:4])  # the runner's retry of that batch
        assert outcome.ok and outcome.written == 2
        await sink.write_batch(events[4:], positions[4:])
        await sink.flush()
    finally:
        await sink.close()
    listed = s3.list_objects_v2(Bucket="espwire-late", Prefix="lake/")
    names = sorted(o["Key"].rsplit("/", 1)[-1] for o in listed.get("Contents", []))
    assert [parse_file_name(name) for name in names] == [(2, 0, 1), (2, 2, 5)]
    lines: list[dict[str, Any]] = []
    for obj in listed["Contents"]:
        body = s3.get_object(Bucket="espwire-late", Key=obj["Key"])["Body"].read()
        lines.extend(orjson.loads(x) for x in gzip.decompress(body).splitlines())
    assert sorted(e["id"] for e in lines) == sorted(e["id"] for e in events)
