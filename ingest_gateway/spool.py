"""The local spool: where accepted requests wait, fsync'ed, while Kafka is away.

Append-only segment files of records ``magic | length | crc32 | payload``. Appends are
group-committed: every request waiting when a write starts shares one write and one fsync, and
each is acknowledged only after that fsync. A torn last record (a crash mid-write) fails its
length or CRC check and is skipped, never republished as garbage. One process owns a spool
directory at a time (flock), so gateway workers each take their own slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import struct
import zlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from espwire.envelope import ENVELOPE_HEADER, Envelope

log = logging.getLogger("espwire.spool")

_MAGIC = b"EWS1"
_HEADER = struct.Struct(">4sII")  # magic, payload length, crc32 of payload
_META_LEN = struct.Struct(">I")
_MAX_RECORD = 256 * 1024 * 1024
_SEGMENT_SUFFIX = ".seg"


class SpoolFull(Exception):
    """The spool is at its byte limit: the request must be refused (503), never acknowledged."""


def encode_record(envelope: Envelope) -> bytes:
    meta = orjson.dumps(envelope.metadata())
    payload = _META_LEN.pack(len(meta)) + meta + envelope.body
    return _HEADER.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload


def decode_payload(payload: bytes) -> Envelope:
    (meta_len,) = _META_LEN.unpack_from(payload)
    meta = payload[_META_LEN.size : _META_LEN.size + meta_len]
    body = payload[_META_LEN.size + meta_len :]
    return Envelope.from_record(body, [(ENVELOPE_HEADER, meta)])


@dataclass(frozen=True, slots=True)
class SegmentScan:
    envelopes: list[Envelope]
    torn_bytes: int  # bytes after the last good record (0 when the segment ends cleanly)


def read_segment(path: Path) -> SegmentScan:
    """Every intact record of a segment, stopping at the first torn or corrupt one."""
    data = path.read_bytes()
    envelopes: list[Envelope] = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        magic, length, crc = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        end = start + length
        if magic != _MAGIC or length > _MAX_RECORD or end > len(data):
            break
        payload = data[start:end]
        if zlib.crc32(payload) != crc:
            break
        try:
            envelopes.append(decode_payload(payload))
        except (ValueError, struct.error):
            break
        offset = end
    return SegmentScan(envelopes, len(data) - offset)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """One spool slot directory: a writer for new records and a drain for the closed segments."""

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int = 64 * 1024 * 1024) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock_fd: int | None = None
        self._active: Path | None = None
        self._active_fd: int | None = None
        self._active_size = 0
        self._next_seq = 0
        self._bytes = 0
        self._records = 0
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._io_lock = asyncio.Lock()
        self.torn_records_skipped = 0
        self._full = False

    # -- lifecycle -----------------------------------------------------------------------------
    @classmethod
    def claim_slot(cls, root: Path, max_bytes: int, segment_bytes: int, slots: int = 64) -> Spool:
        """The first slot directory under ``root`` that no live process holds."""
        root.mkdir(parents=True, exist_ok=True)
        for index in range(slots):
            spool = cls(root / f"slot-{index}", max_bytes, segment_bytes)
            if spool._try_lock():
                return spool
        raise RuntimeError(f"all {slots} spool slots under {root} are held by other processes")

    def _try_lock(self) -> bool:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def open(self) -> None:
        if self._lock_fd is None and not self._try_lock():
            raise RuntimeError(f"spool {self.directory} is held by another process")
        segments = self.segments()
        self._bytes = sum(p.stat().st_size for p in segments)
        self._next_seq = int(segments[-1].stem) + 1 if segments else 0
        self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name="spool-writer")

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        for _, future in self._pending:
            if not future.done():
                future.set_exception(RuntimeError("spool closed"))
        self._pending.clear()
        self._close_active()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- state ---------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return self._bytes

    @property
    def has_room(self) -> bool:
        # Full from the first refusal until a drain frees space: readiness must not flap per request.
        return not self._full and self._bytes < self.max_bytes

    def segments(self) -> list[Path]:
        return sorted(self.directory.glob(f"*{_SEGMENT_SUFFIX}"))

    def is_empty(self) -> bool:
        return not self._pending and not any(p.stat().st_size for p in self.segments())

    # -- writing -------------------------------------------------------------------------------
    async def append(self, envelope: Envelope) -> None:
        """Returns once the record is fsync'ed; raises SpoolFull when there is no room."""
        record = encode_record(envelope)
        if self._bytes + len(record) > self.max_bytes:
            self._full = True
            raise SpoolFull(f"spool at {self._bytes} of {self.max_bytes} bytes")
        self._bytes += len(record)  # reserved now, so concurrent appends cannot overshoot
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((record, future))
        self._wakeup.set()
        await future

    async def _write_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            try:
                async with self._io_lock:
                    await asyncio.to_thread(self._write_and_sync, [record for record, _ in batch])
            except Exception as exc:  # disk full, I/O error: every waiting request fails
                log.error("spool write failed", extra={"error": repr(exc)})
                self._bytes -= sum(len(r) for r, _ in batch)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self._records += len(batch)
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    def _write_and_sync(self, records: list[bytes]) -> None:
        if self._active_fd is None or self._active_size >= self.segment_bytes:
            self._close_active()
            self._active = self.directory / f"{self._next_seq:012d}{_SEGMENT_SUFFIX}"
            self._next_seq += 1
            self._active_fd = os.open(self._active, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._active_size = 0
            _fsync_dir(self.directory)
        data = b"".join(records)
        view = memoryview(data)
        while view:
            written = os.write(self._active_fd, view)
            view = view[written:]
        os.fsync(self._active_fd)
        self._active_size += len(data)

    def _close_active(self) -> None:
        if self._active_fd is not None:
            os.close(self._active_fd)
        self._active_fd = None
        self._active = None

    # -- draining ------------------------------------------------------------------------------
    async def drain(self, publish: Callable[[list[Envelope]], Awaitable[None]], chunk: int = 500) -> int:
        """Republishes every closed segment in order, deleting each once all of it is acknowledged.

        ``publish`` must return only when the broker has acknowledged the whole list; if it raises,
        the segment stays and the next drain starts it again (at-least-once: dedupe removes repeats).
        """
        async with self._io_lock:
            self._close_active()  # new appends start a fresh segment, which this drain leaves alone
            closed = self.segments()
        published = 0
        for path in closed:
            scan = await asyncio.to_thread(read_segment, path)
            if scan.torn_bytes:
                self.torn_records_skipped += 1
                log.warning(
                    "spool segment has a torn tail; skipping it",
                    extra={"segment": path.name, "torn_bytes": scan.torn_bytes},
                )
            for start in range(0, len(scan.envelopes), chunk):
                await publish(scan.envelopes[start : start + chunk])
            size = path.stat().st_size
            path.unlink()
            await asyncio.to_thread(_fsync_dir, self.directory)
            self._bytes = max(0, self._bytes - size)
            self._full = False
            published += len(scan.envelopes)
        return published


def iter_spool_dirs(root: Path) -> Iterator[Path]:
    return iter(sorted(p for p in root.glob("slot-*") if p.is_dir()))
