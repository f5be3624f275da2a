"""Files sink: JSON Lines (gzip) or Parquet files, by event date and type, on a local disk or S3 (fsspec).

Layout: ``<path>/dt=2026-11-20/type=email.opened/part-p00003-00000000000000001200-00000000000000001399.jsonl.gz``
— one open file per (date, type, Kafka partition), closed when it reaches ``roll_bytes`` (uncompressed)
or ``roll_seconds`` of age, or when the sink stops cleanly. The name says which Kafka partition and
which offsets (first and last event in the file) it holds.

Delivery: exactly once by event, under one writer per partition (the consumer group's assignment):
- A file becomes visible only when complete: locally it is written under a hidden ``.part-*.tmp`` name
  in its final directory, fsync'ed, renamed, and the directory fsync'ed; on S3 it is staged on local disk
  and the object is put once (single PUT or multipart complete). Readers never see half a file.
  (Tools that read a directory — Spark, pyarrow, DuckDB — skip names starting with "." or "_".)
- Offsets are committed only up to the first offset of the oldest file still open in each partition,
  so every event at or after the committed offset is either in a complete file or in none.
- After a crash or a rebalance the partition is re-read from the committed offset. Before writing an
  event, the sink checks the complete files of its (date, type) directory for this partition: if one
  covers the event's offset, the event is already there and is skipped. An open file holds every event
  of its (date, type, partition) between its first and last offset, so that check is exact; the files
  written after the restart start after the last complete one, so none overlap and nothing is doubled.
- Names are fixed by (partition, first offset, last offset): if the same file is written twice (a crash
  after the rename, before anything else), the second write replaces it with the same content.
- A write to an open file that fails part way (a full disk) leaves its compressed stream and its bytes
  on disk out of step: the file is dropped, never published, and the sink raises ``SinkStateLost``, so the
  runner starts over from the committed offsets and the events it held are read again.
Limits: two processes writing one partition at once (a member that lost its partition but has not
noticed yet) can still write overlapping files; the consumer group makes that a short window, and the
runner drops revoked partitions' records and open files as soon as it is told. The names assume the
offsets of espwire.events only grow: deleting and recreating the topic needs a new ``path``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Literal

import orjson
from pydantic import Field, SecretStr

from espwire.config import Settings
from sinks import metrics
from sinks.base import BatchOutcome, DestinationUnavailable, Event, Poison, Position, Sink, SinkOptions, SinkStateLost
from sinks.postgres import parse_instant

_TYPE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_PART = re.compile(r"^part-p(\d+)-(\d+)-(\d+)\.")


class FilesOptions(SinkOptions):
    # A local directory, or a URL fsspec knows (s3://bucket/prefix).
    path: str
    format: Literal["jsonl", "parquet"] = "jsonl"
    roll_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    roll_seconds: float = Field(default=300.0, gt=0)
    max_open_files: int = Field(default=256, ge=1)
    gzip_level: int = Field(default=3, ge=1, le=9)
    parquet_compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"
    # S3-compatible storage (MinIO, moto, ...): all optional, s3fs falls back to its usual sources.
    s3_endpoint_url: str | None = None
    s3_key_id: str | None = None
    s3_secret: SecretStr | None = None
    s3_region: str | None = None
    # Where files for a remote destination are staged until complete (default <datadir>/files-staging/<name>).
    staging_dir: Path | None = None


def file_name(partition: int, first: int, last: int, fmt: str) -> str:
    suffix = "jsonl.gz" if fmt == "jsonl" else "parquet"
    return f"part-p{partition:05d}-{first:020d}-{last:020d}.{suffix}"


def parse_file_name(name: str) -> tuple[int, int, int] | None:
    """(partition, first offset, last offset) of a complete file's name, None for anything else."""
    match = _PART.match(name)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


@dataclass(slots=True)
class _OpenFile:
    directory: str  # relative: dt=.../type=...
    partition: int
    first: int
    tmp_path: Path
    handle: BinaryIO
    opened_at: float
    compressor: Any = None
    last: int = -1
    size: int = 0
    count: int = 0


@dataclass(slots=True)
class _Listing:
    """Complete files of one directory: partition -> [(first, last)]."""

    ranges: dict[int, list[tuple[int, int]]] = field(default_factory=dict)

    def covers(self, partition: int, offset: int) -> bool:
        return any(first <= offset <= last for first, last in self.ranges.get(partition, ()))

    def add(self, partition: int, first: int, last: int) -> None:
        self.ranges.setdefault(partition, []).append((first, last))


class FilesSink(Sink):
    options_model: ClassVar[type[SinkOptions]] = FilesOptions

    def __init__(self, options: FilesOptions, settings: Settings) -> None:
        super().__init__(options)
        self.files = options
        self.remote = "://" in options.path and not options.path.startswith("file://")
        # A relative local path lives under the data dir, so `espwire dev --data-dir X` keeps it all in X.
        local = Path(options.path.removeprefix("file://"))
        self.root = options.path.rstrip("/") if self.remote else str(Path(settings.datadir) / local)
        self.staging = options.staging_dir or settings.datadir / "files-staging" / options.name
        self._fs: Any = None
        self._open: dict[tuple[str, int], _OpenFile] = {}
        self._listings: dict[str, _Listing] = {}

    # -- life cycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        if self.remote:
            import fsspec

            opts = self.files
            storage: dict[str, Any] = {"use_listings_cache": False, "skip_instance_cache": True}
            if opts.s3_endpoint_url:
                storage["endpoint_url"] = opts.s3_endpoint_url
            if opts.s3_key_id:
                storage["key"] = opts.s3_key_id
            if opts.s3_secret:
                storage["secret"] = opts.s3_secret.get_secret_value()
            if opts.s3_region:
                storage["client_kwargs"] = {"region_name": opts.s3_region}
            protocol = self.root.split("://", 1)[0]
            self._fs = fsspec.filesystem(protocol, **storage)
            try:
                await asyncio.to_thread(self._fs.ls, self.root)
            except FileNotFoundError:
                pass  # an empty prefix: fine, the bucket answered
            except Exception as exc:
                raise DestinationUnavailable(f"{self.root}: {exc!r}") from exc
            self.staging.mkdir(parents=True, exist_ok=True)
        else:
            await asyncio.to_thread(Path(self.root).mkdir, parents=True, exist_ok=True)

    async def close(self) -> None:
        # Not flushed: open files are dropped, their offsets were never committed.
        for open_file in list(self._open.values()):
            self._discard(open_file)
        self._open.clear()

    def release(self, partitions: set[int]) -> None:
        for key, open_file in list(self._open.items()):
            if open_file.partition in partitions:
                self._discard(open_file)
                del self._open[key]
        # Another member may have written files for these partitions meanwhile: list again next time.
        self._listings.clear()

    def committable(self, consumed: dict[int, int]) -> dict[int, int]:
        allowed = dict(consumed)
        for open_file in self._open.values():
            p = open_file.partition
            if p in allowed:
                allowed[p] = min(allowed[p], open_file.first)
        return allowed

    # -- writing ---------------------------------------------------------------------------------
    async def write_batch(
        self, events: list[Event], positions: list[Position] | None = None, encoded: list[bytes] | None = None
    ) -> BatchOutcome:
        if positions is None:
            # Outside the runner (tests, tools): a made-up partition beyond any real one, offsets from now.
            base = time.time_ns() // 1000
            positions = [Position(99999, base + i) for i in range(len(events))]
        outcome = BatchOutcome()
        lines: dict[tuple[str, int], list[bytes]] = {}
        last_offsets: dict[tuple[str, int], tuple[int, int]] = {}
        for index, (event, position) in enumerate(zip(events, positions, strict=True)):
            directory = self._directory(event)
            if directory is None:
                outcome.poison.append(Poison(index, "invalid_event", "time or type cannot name a directory"))
                continue
            open_file = self._open.get((directory, position.partition))
            if open_file is not None and open_file.first <= position.offset <= open_file.last:
                # Appended by an earlier attempt of this batch whose roll then failed. Exact: an open file
                # holds every event of its (date, type, partition) from its first offset to its last.
                # (A per-partition "consumed up to" mark was not: after a rebalance it skipped events
                # that were only in a discarded open file, and they were lost.)
                outcome.written += 1
                continue
            listing = await self._listing(directory)
            if listing.covers(position.partition, position.offset):
                outcome.skipped += 1
                metrics.SKIPPED.labels(self.name, "already_written").inc()
                continue
            key = (directory, position.partition)
            lines.setdefault(key, []).append(orjson.dumps(event) + b"\n")
            first, _ = last_offsets.get(key, (position.offset, position.offset))
            last_offsets[key] = (first, position.offset)
        for key, chunk in lines.items():
            first, last = last_offsets[key]
            sealed = self._open.get(key)
            if sealed is not None and sealed.handle.closed:
                # Rolled (sealed) by an earlier call whose publish failed (the store was down): it takes
                # nothing more. Published now, or this batch waits (DestinationUnavailable) until it can be.
                await self._complete(key, sealed)
                del self._open[key]
            open_file = self._open.get(key) or self._open_file(key, first)
            try:
                self._append(open_file, chunk, last)
            except OSError as exc:
                self._lose(key, open_file, exc)
            outcome.written += len(chunk)
        await self._roll(force=False)
        return outcome

    async def maintain(self) -> None:
        await self._roll(force=False)

    async def flush(self) -> None:
        await self._roll(force=True)

    def _directory(self, event: Event) -> str | None:
        moment = parse_instant(event.get("time"))
        event_type = event.get("type")
        if moment is None or not isinstance(event_type, str) or not _TYPE.match(event_type):
            return None
        return f"dt={moment.astimezone(UTC):%Y-%m-%d}/type={event_type}"

    def _open_file(self, key: tuple[str, int], first: int) -> _OpenFile:
        directory, partition = key
        if len(self._open) >= self.files.max_open_files:
            # Too many at once (late events over many days): the oldest is closed at the next roll.
            oldest = min(self._open.values(), key=lambda f: f.opened_at)
            oldest.opened_at = -1.0
        tmp_name = f".part-p{partition:05d}-{first:020d}-{uuid.uuid4().hex[:8]}.tmp"
        if self.remote:
            tmp_path = self.staging / directory.replace("/", "_") / tmp_name
        else:
            tmp_path = Path(self.root) / directory / tmp_name
        tmp_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(tmp_path, "wb")  # noqa: SIM115 - lives until the file is complete
        compressor = (
            zlib.compressobj(self.files.gzip_level, zlib.DEFLATED, 31) if self.files.format == "jsonl" else None
        )
        open_file = _OpenFile(directory, partition, first, tmp_path, handle, time.monotonic(), compressor)
        self._open[key] = open_file
        return open_file

    def _append(self, open_file: _OpenFile, chunk: list[bytes], last: int) -> None:
        data = b"".join(chunk)
        open_file.handle.write(open_file.compressor.compress(data) if open_file.compressor else data)
        open_file.size += len(data)
        open_file.count += len(chunk)
        open_file.last = last

    async def _roll(self, *, force: bool) -> None:
        now = time.monotonic()
        due = [
            (key, f)
            for key, f in self._open.items()
            if force or f.size >= self.files.roll_bytes or now - f.opened_at >= self.files.roll_seconds
        ]
        for key, open_file in due:
            await self._complete(key, open_file)
            del self._open[key]

    def _lose(self, key: tuple[str, int], open_file: _OpenFile, exc: OSError) -> None:
        """A write to an open file failed part way (a full disk): its compressed stream and bytes on disk no
        longer match, so it is dropped, and with it events of earlier batches the runner counts as written."""
        self._discard(open_file)
        self._open.pop(key, None)
        raise SinkStateLost(f"{open_file.tmp_path}: {exc!r}") from exc

    async def _complete(self, key: tuple[str, int], open_file: _OpenFile) -> None:
        name = file_name(open_file.partition, open_file.first, open_file.last, self.files.format)
        if not open_file.handle.closed:
            try:
                await asyncio.to_thread(self._seal, open_file)
            except OSError as exc:
                # Not retried: after a failed fsync the kernel may have dropped the pages, and a second
                # fsync could pass without them.
                self._lose(key, open_file, exc)
        try:
            await asyncio.to_thread(self._complete_blocking, open_file, name)
        except Exception as exc:
            # The open file is kept as it is (handle closed only on success): the next roll tries again.
            raise DestinationUnavailable(f"{self.root}/{open_file.directory}/{name}: {exc!r}") from exc
        self._listings.setdefault(open_file.directory, _Listing()).add(
            open_file.partition, open_file.first, open_file.last
        )

    @staticmethod
    def _seal(open_file: _OpenFile) -> None:
        """The open file's last bytes written and on disk, and its handle closed."""
        handle = open_file.handle
        if open_file.compressor is not None:
            handle.write(open_file.compressor.flush())
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()

    def _complete_blocking(self, open_file: _OpenFile, name: str) -> None:
        """Publishes a sealed file (converted, uploaded or renamed): retried as it is when this fails."""
        source = open_file.tmp_path
        if self.files.format == "parquet":
            source = self._to_parquet(open_file.tmp_path)
        if self.remote:
            self._fs.put_file(str(source), f"{self.root}/{open_file.directory}/{name}")
        else:
            final = Path(self.root) / open_file.directory / name
            os.replace(source, final)
            directory_fd = os.open(final.parent, os.O_RDONLY)
            try:
                os.fsync(directory_fd)
            finally:
                os.close(directory_fd)
        for path in {open_file.tmp_path, source}:
            path.unlink(missing_ok=True)

    def _to_parquet(self, jsonl_path: Path) -> Path:
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns: dict[str, list[Any]] = {name: [] for name in parquet_columns()}
        with open(jsonl_path, "rb") as handle:
            for line in handle:
                event = orjson.loads(line)
                data = event.get("data") or {}
                columns["id"].append(event["id"])
                columns["type"].append(event["type"])
                columns["time"].append(parse_instant(event["time"]))
                columns["source"].append(event.get("source"))
                columns["subject"].append(event.get("subject"))
                for name in ("provider", "source_id", "provider_event_type", "provider_event_id"):
                    value = data.get(name)
                    columns[name].append(None if value is None else str(value))
                columns["occurred_at"].append(parse_instant(data.get("occurred_at")))
                columns["received_at"].append(parse_instant(data.get("received_at")))
                columns["event"].append(line.rstrip(b"\n").decode())
        schema = parquet_columns()
        table = pa.table({name: pa.array(values, type=schema[name]) for name, values in columns.items()})
        out = jsonl_path.with_suffix(".parquet.tmp")
        compression = None if self.files.parquet_compression == "none" else self.files.parquet_compression
        pq.write_table(table, out, compression=compression)
        with open(out, "rb+") as handle:
            os.fsync(handle.fileno())
        return out

    def _discard(self, open_file: _OpenFile) -> None:
        with contextlib.suppress(OSError):
            open_file.handle.close()
        open_file.tmp_path.unlink(missing_ok=True)

    # -- what is already written -----------------------------------------------------------------
    async def _listing(self, directory: str) -> _Listing:
        listing = self._listings.get(directory)
        if listing is None:
            try:
                names = await asyncio.to_thread(self._list_names, directory)
            except Exception as exc:
                raise DestinationUnavailable(f"cannot list {self.root}/{directory}: {exc!r}") from exc
            listing = _Listing()
            for name in names:
                parsed = parse_file_name(name)
                if parsed is not None:
                    listing.add(*parsed)
            self._listings[directory] = listing
        return listing

    def _list_names(self, directory: str) -> list[str]:
        if self.remote:
            try:
                paths = self._fs.ls(f"{self.root}/{directory}", detail=False)
            except FileNotFoundError:
                return []
            return [str(p).rsplit("/", 1)[-1] for p in paths]
        try:
            return os.listdir(Path(self.root) / directory)
        except FileNotFoundError:
            return []


def parquet_columns() -> dict[str, Any]:
    """The Parquet schema: flat typed columns to filter on, plus the whole event as JSON."""
    import pyarrow as pa

    stamp = pa.timestamp("us", tz="UTC")
    return {
        "id": pa.string(),
        "type": pa.string(),
        "time": stamp,
        "source": pa.string(),
        "subject": pa.string(),
        "provider": pa.string(),
        "source_id": pa.string(),
        "provider_event_type": pa.string(),
        "provider_event_id": pa.string(),
        "occurred_at": stamp,
        "received_at": stamp,
        "event": pa.string(),  # the whole event as JSON: nothing is lost to the flat columns
    }
