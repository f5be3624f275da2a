"""The embedded dedupe store for ``espwire dev``: one SQLite file in the data dir, WAL mode.

Guarantees: each call is one transaction (``BEGIN IMMEDIATE``, so processes sharing the file take turns
and a claim is atomic); the file survives restarts; expired rows count as absent and are purged now and
then. Blocking SQLite calls run in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import orjson

from processors.dedupe import metrics
from processors.dedupe.base import (
    Claim,
    ClaimEntry,
    DedupeStoreError,
    Done,
    MessageEvent,
    MessageRecord,
    MessageState,
    Pending,
    State,
    apply_message_events,
    decide,
)

_T = TypeVar("_T")
# SQLite's default limit on host parameters is 32766 (3.32+); stay far below it.
_CHUNK = 900

_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    id TEXT PRIMARY KEY,
    done INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    owner TEXT,
    since REAL,
    lease_until REAL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS claims_expiry ON claims (expires_at);
CREATE TABLE IF NOT EXISTS messages (
    key TEXT PRIMARY KEY,
    delivered_at REAL,
    clicks BLOB NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_expiry ON messages (expires_at);
"""


def _chunks(items: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class SqliteDedupeStore:
    name = "sqlite"

    def __init__(
        self,
        path: Path,
        *,
        purge_interval_seconds: float = 300.0,
        busy_timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self._clock = clock
        self._purge_interval = purge_interval_seconds
        self._last_purge = 0.0
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection used from worker threads one at a time (the lock), so it may cross threads.
        self._conn = sqlite3.connect(path, timeout=busy_timeout_seconds, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a power cut may lose the last commits but never corrupts the file; a lost
        # done mark means at worst one duplicate publish, which the sinks' idempotent writes absorb.
        self._conn.execute("PRAGMA synchronous=NORMAL")
        # Ids are random, so each claim lands on its own B-tree page: a page cache of 64 MiB (SQLite's
        # default is 2 MiB) keeps a full window's pages in memory (begin 52 -> 44 us an id at ~230k rows).
        self._conn.execute("PRAGMA cache_size=-65536")
        self._conn.executescript(_SCHEMA)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    async def _run(self, operation: str, work: Callable[[], _T]) -> _T:
        started = time.perf_counter()
        try:
            return await asyncio.to_thread(work)
        except sqlite3.OperationalError as exc:
            metrics.STORE_ERRORS.labels(self.name, operation).inc()
            # "database is locked" / "disk I/O error" may pass; a broken schema will not, but both stop
            # the batch the same way, so the flag only says whether retrying is sensible.
            text = str(exc).lower()
            raise DedupeStoreError(f"sqlite {operation}: {exc}", retriable="locked" in text or "busy" in text) from exc
        except sqlite3.Error as exc:
            metrics.STORE_ERRORS.labels(self.name, operation).inc()
            raise DedupeStoreError(f"sqlite {operation}: {exc}", retriable=False) from exc
        finally:
            metrics.STORE_SECONDS.labels(self.name, operation).observe(time.perf_counter() - started)

    def _states(self, conn: sqlite3.Connection, ids: Sequence[str], now: float) -> dict[str, State]:
        found: dict[str, State] = {}
        for chunk in _chunks(list(dict.fromkeys(ids))):
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT id, done, fingerprint, owner, since, lease_until FROM claims "
                f"WHERE id IN ({marks}) AND expires_at > ?",
                (*chunk, now),
            )
            for event_id, done, fingerprint, owner, since, lease_until in rows:
                found[event_id] = Done(fingerprint) if done else Pending(owner, since, lease_until, fingerprint)
        return found

    def _maybe_purge(self, conn: sqlite3.Connection, now: float) -> None:
        if now - self._last_purge < self._purge_interval:
            return
        self._last_purge = now
        conn.execute("DELETE FROM claims WHERE expires_at <= ?", (now,))
        conn.execute("DELETE FROM messages WHERE expires_at <= ?", (now,))

    async def begin(self, entries: Sequence[ClaimEntry], owner: str, lease_seconds: float) -> list[Claim]:
        def work() -> list[Claim]:
            now = self._clock()
            with self._transaction() as conn:
                self._maybe_purge(conn, now)
                states = self._states(conn, [entry[0] for entry in entries], now)
                claims: list[Claim] = []
                writes: list[tuple[object, ...]] = []
                for event_id, fingerprint, ttl in entries:
                    claim, write = decide(states.get(event_id), fingerprint, owner, now, lease_seconds)
                    if write is not None:
                        states[event_id] = write  # a repeat of the id later in the batch sees this claim
                        writes.append((event_id, write.fingerprint, owner, write.since, write.lease_until, now + ttl))
                    claims.append(claim)
                conn.executemany(
                    "INSERT OR REPLACE INTO claims (id, done, fingerprint, owner, since, lease_until, expires_at) "
                    "VALUES (?, 0, ?, ?, ?, ?, ?)",
                    writes,
                )
                return claims

        return await self._run("begin", work)

    async def commit(self, entries: Sequence[ClaimEntry], owner: str) -> None:
        def work() -> None:
            now = self._clock()
            with self._transaction() as conn:
                # An id already done keeps its first fingerprint: that content is what was published.
                conn.executemany(
                    "INSERT INTO claims (id, done, fingerprint, expires_at) VALUES (?, 1, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET done = 1, fingerprint = excluded.fingerprint, owner = NULL, "
                    "since = NULL, lease_until = NULL, expires_at = excluded.expires_at "
                    "WHERE claims.done = 0 OR claims.expires_at <= ?",
                    [(event_id, fingerprint, now + ttl, now) for event_id, fingerprint, ttl in entries],
                )

        await self._run("commit", work)

    async def release(self, ids: Sequence[str], owner: str) -> None:
        def work() -> None:
            with self._transaction() as conn:
                conn.executemany(
                    "DELETE FROM claims WHERE id = ? AND done = 0 AND owner = ?", [(i, owner) for i in ids]
                )

        await self._run("release", work)

    async def note_message_events(self, items: Sequence[MessageEvent], ttl_seconds: float) -> list[MessageState]:
        def work() -> list[MessageState]:
            now = self._clock()
            keys = list(dict.fromkeys(item[0] for item in items))
            with self._transaction() as conn:
                self._maybe_purge(conn, now)
                records: dict[str, MessageRecord] = {}
                for chunk in _chunks(keys):
                    marks = ",".join("?" * len(chunk))
                    rows = conn.execute(
                        f"SELECT key, delivered_at, clicks, expires_at FROM messages "
                        f"WHERE key IN ({marks}) AND expires_at > ?",
                        (*chunk, now),
                    )
                    for key, delivered_at, clicks, expires_at in rows:
                        decoded = {int(second): set(tokens) for second, tokens in orjson.loads(clicks).items()}
                        records[key] = MessageRecord(delivered_at, decoded, expires_at)
                answers = apply_message_events(records, items, now, ttl_seconds)
                conn.executemany(
                    "INSERT OR REPLACE INTO messages (key, delivered_at, clicks, expires_at) VALUES (?, ?, ?, ?)",
                    [
                        (
                            key,
                            records[key].delivered_at,
                            orjson.dumps({str(s): sorted(t) for s, t in records[key].clicks.items()}),
                            records[key].expires_at,
                        )
                        for key in keys
                    ],
                )
                return answers

        return await self._run("note_message_events", work)

    async def purge_expired(self) -> None:
        """Deletes expired rows now (it also happens on its own every ``purge_interval_seconds``)."""

        def work() -> None:
            self._last_purge = 0.0
            with self._transaction() as conn:
                self._maybe_purge(conn, self._clock())

        await self._run("purge", work)

    async def close(self) -> None:
        def work() -> None:
            with self._lock:
                self._conn.close()

        await asyncio.to_thread(work)
