"""PostgreSQL sink: one row per event in a month-partitioned ``events`` table, typed columns plus the whole event.

Delivery: exactly once by event id. A batch is split in parts, each COPY'd (binary) straight into
``events`` in its own transaction, inside a savepoint; when an event's (id, time) is already there (a
redelivery, or the same event twice in the batch), the primary key refuses that COPY, nothing of it
stays, and the part goes through a per-connection temporary staging table with
``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` instead, which counts only the rows it added. When
the transaction commits the rows are durable. The time is part of the key because PostgreSQL wants
the partition key in it; it is taken from the event's content (``time``), so the same event always has
the same key. Straight COPY writes heap pages and their WAL in bulk and needs no staging table, and
the jsonb column takes the JSON the event was read from Kafka as when the runner gives it (privacy
changed nothing) instead of serialising the event again: on 2026-12-01, same sitting, 6.1 µs of CPU
per event here + 17.5 in PostgreSQL, against 7.6 + 20.7 through the staging table and a plain INSERT
(``benchmarks/README.md``). A redelivered part costs more than before (its direct COPY is sent whole,
then refused), which is rare.

A row PostgreSQL refuses (a NUL character, an over-long indexed value...) fails the whole COPY; the
batch is then halved until the refused rows are alone, and those go to the dead-letter topic. A lost
connection is ``DestinationUnavailable``: the runner retries the same batch until it is back.

Schema changes are numbered files in ``sinks/migrations``, applied once each by ``migrate`` (the sink
does it at start; ``espwire db migrate`` calls it too) and recorded in ``schema_migrations``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import asyncpg  # type: ignore[import-untyped]
import orjson
from pydantic import Field, SecretStr

from espwire.clock import parse_utc
from sinks.base import BatchOutcome, DestinationUnavailable, Event, Poison, Position, Sink, SinkOptions

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SCHEMA_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"

# The destination is away: retried by the runner, never dead-lettered.
PG_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    # A standby after a failover (read-only until it is promoted, or the DSN points at the new primary),
    # and a deadlock or serialization failure: each passes when the batch is tried again.
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    asyncpg.exceptions.TransactionRollbackError,
    asyncpg.exceptions.LockNotAvailableError,
)
# The row itself is refused: halve the batch until it is alone, then dead-letter it.
PG_REFUSED: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.exceptions.ProgramLimitExceededError,
    UnicodeError,
)

COLUMNS = (
    "id",
    "time",
    "type",
    "source",
    "subject",
    "provider",
    "source_id",
    "provider_event_type",
    "provider_event_id",
    "occurred_at",
    "received_at",
    "event",
)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def migrations() -> list[tuple[str, str]]:
    """(version, sql) of every migration file, in order."""
    return [(path.stem, path.read_text()) for path in sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))]


async def migrate(dsn: str, schema: str = "public") -> list[str]:
    """Applies the migrations ``schema`` does not have yet, in one transaction; returns the versions applied.

    Safe to run from several processes at once: an advisory lock per schema puts them in line.
    """
    if not re.match(SCHEMA_PATTERN, schema):
        raise ValueError(f"not a plain schema name: {schema!r}")
    conn = await asyncpg.connect(dsn)
    applied: list[str] = []
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('espwire.migrate.' || $1))", schema)
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
            await conn.execute(f"SET LOCAL search_path TO {quote_ident(schema)}")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
            for version, sql in migrations():
                if version in done:
                    continue
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
                applied.append(version)
    finally:
        await conn.close()
    return applied


def parse_instant(text: Any) -> datetime | None:
    """An ISO 8601 instant as an aware datetime (UTC when it names no zone); None when it is not one, or when
    it has no UTC datetime (``9999-12-31T23:59:59-05:00`` is in year 10000 in UTC: converting it would raise
    OverflowError in every sink, a crash on each restart instead of one dead-lettered event)."""
    if not isinstance(text, str):
        return None
    try:
        moment = parse_utc(text)
    except ValueError:
        return None
    try:
        moment.astimezone(UTC)
    except OverflowError:
        return None
    return moment


class PostgresOptions(SinkOptions):
    dsn: SecretStr  # may hold a password
    schema_: str = Field(default="public", alias="schema", pattern=SCHEMA_PATTERN)
    pool_size: int = Field(default=4, ge=1, le=64)
    # A batch is split over this many connections written at once: one PostgreSQL backend parses
    # JSONB and updates four indexes at ~30k rows/s, so a batch is spread over several backends.
    write_parallelism: int = Field(default=4, ge=1, le=64)
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    command_timeout_seconds: float = Field(default=60.0, gt=0)
    # Apply missing migrations at start (the default); off when only `espwire db migrate` may change the schema.
    migrate: bool = True


async def create_pool(dsn: str, *, size: int, connect_timeout: float, command_timeout: float, init: Any = None) -> Any:
    """A pool that connects lazily-safe: any failure to reach PostgreSQL is DestinationUnavailable."""
    try:
        return await asyncpg.create_pool(
            dsn,
            min_size=1,
            max_size=size,
            timeout=connect_timeout,
            command_timeout=command_timeout,
            init=init,
        )
    except PG_UNAVAILABLE as exc:
        raise DestinationUnavailable(f"PostgreSQL unreachable: {exc!r}") from exc


async def open_database(options: Any, init: Any = None) -> Any:
    """Migrates the schema when the sink is set to, then opens the pool (postgres and suppression sinks)."""
    dsn = options.dsn.get_secret_value()
    if options.migrate:
        try:
            await migrate(dsn, options.schema_)
        except PG_UNAVAILABLE as exc:
            raise DestinationUnavailable(f"PostgreSQL unreachable: {exc!r}") from exc
    return await create_pool(
        dsn,
        size=options.pool_size,
        connect_timeout=options.connect_timeout_seconds,
        command_timeout=options.command_timeout_seconds,
        init=init,
    )


@dataclass(slots=True)
class _Row:
    index: int  # into the batch given to write_batch
    values: tuple[Any, ...]


class PostgresSink(Sink):
    options_model: ClassVar[type[SinkOptions]] = PostgresOptions

    def __init__(self, options: PostgresOptions) -> None:
        super().__init__(options)
        self.pg = options
        self.schema = options.schema_
        self.table = f"{quote_ident(self.schema)}.events"
        self._pool: Any = None
        self._partitions: set[tuple[int, int]] = set()

    async def start(self) -> None:
        self._pool = await open_database(self.pg, init=self._init_connection)

    async def _init_connection(self, conn: Any) -> None:
        # One staging table per connection, emptied by every commit, for the parts holding an event
        # already there: ON CONFLICT needs an INSERT, and a temporary table writes no WAL and cannot
        # collide with another connection's batch.
        await conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS events_staging (LIKE {self.table} INCLUDING DEFAULTS) "
            "ON COMMIT DELETE ROWS"
        )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            with contextlib.suppress(*PG_UNAVAILABLE):
                await pool.close()

    async def write_batch(
        self, events: list[Event], positions: list[Position] | None = None, encoded: list[bytes] | None = None
    ) -> BatchOutcome:
        if self._pool is None:
            raise DestinationUnavailable("the sink is not started")
        poison: list[Poison] = []
        # Only the times first: every month's partition must exist before a write holds a connection.
        # The rest of each row is built while it streams into COPY (_stream_rows), so the backends
        # already parse one part while this process builds the next.
        times: list[tuple[int, datetime]] = []
        for index, event in enumerate(events):
            try:
                times.append((index, event_time(event)))
            except (KeyError, TypeError, ValueError) as exc:
                poison.append(Poison(index, "invalid_event", f"{type(exc).__name__}: {exc}"[:500]))
        if not times:
            return BatchOutcome(poison=poison)
        try:
            await self._ensure_partitions({(time.year, time.month) for _, time in times})
            parts = min(self.pg.write_parallelism, self.pg.pool_size, max(1, len(times) // 500))
            step = -(-len(times) // parts)
            # Each part is its own transaction: a part that committed before another failed is simply
            # found again (ON CONFLICT DO NOTHING) when the runner retries the batch.
            counts = await asyncio.gather(
                *(self._write_part(events, encoded, times[i : i + step], poison) for i in range(0, len(times), step))
            )
            inserted = sum(counts)
        except PG_UNAVAILABLE as exc:
            raise DestinationUnavailable(f"PostgreSQL unavailable: {exc!r}") from exc
        refused = len(poison)
        return BatchOutcome(written=inserted, skipped=len(events) - inserted - refused, poison=poison)

    async def _ensure_partitions(self, months: set[tuple[int, int]]) -> None:
        missing = months - self._partitions
        if not missing:
            return
        async with self._pool.acquire() as conn:
            for year, month in sorted(missing):
                end_year, end_month = (year + 1, 1) if month == 12 else (year, month + 1)
                name = f"{quote_ident(self.schema)}.{quote_ident(f'events_{year:04d}_{month:02d}')}"
                # Explicit UTC bounds: a bare date would be read in the session's time zone.
                sql = (
                    f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {self.table} FOR VALUES "
                    f"FROM ('{year:04d}-{month:02d}-01 00:00:00+00') "
                    f"TO ('{end_year:04d}-{end_month:02d}-01 00:00:00+00')"
                )
                # Another sink process creating the same month at the same moment is fine.
                with contextlib.suppress(asyncpg.DuplicateTableError, asyncpg.UniqueViolationError):
                    await conn.execute(sql)
                self._partitions.add((year, month))

    async def _write_part(
        self,
        events: list[Event],
        encoded: list[bytes] | None,
        times: list[tuple[int, datetime]],
        poison: list[Poison],
    ) -> int:
        """Inserts the events at ``times``' indexes; returns how many were new."""
        rows = _Rows(_build_rows(events, encoded, times, poison))
        try:
            return await self._copy(rows)
        except PG_REFUSED as exc:
            return await self._isolate(rows.all(), poison, exc)

    async def _write(self, rows: list[_Row], poison: list[Poison]) -> int:
        try:
            return await self._copy(_Rows(rows))
        except PG_REFUSED as exc:
            return await self._isolate(rows, poison, exc)

    async def _isolate(self, rows: list[_Row], poison: list[Poison], exc: BaseException) -> int:
        """``rows`` were refused together: halved until each refused row is alone, then dead-lettered."""
        if len(rows) == 1:
            poison.append(Poison(rows[0].index, "rejected_by_postgres", f"{type(exc).__name__}: {exc}"[:500]))
            return 0
        middle = len(rows) // 2
        return await self._write(rows[:middle], poison) + await self._write(rows[middle:], poison)

    async def _copy(self, rows: _Rows) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            try:
                # Nearly every part holds only new events: COPY straight into ``events`` writes them
                # with PostgreSQL's multi-insert (heap pages and their WAL in bulk, not a heap insert
                # and a WAL record per row) and without writing and scanning a staging table.
                # An event already there (a redelivery) fails it, nothing of it stays (a savepoint),
                # and the part goes in through the staging table with ON CONFLICT DO NOTHING.
                async with conn.transaction():
                    status: str = await conn.copy_records_to_table(
                        "events", schema_name=self.schema, records=rows.values(), columns=COLUMNS
                    )
            except asyncpg.UniqueViolationError:
                await conn.copy_records_to_table("events_staging", records=rows.values(), columns=COLUMNS)
                status = await conn.execute(
                    f"INSERT INTO {self.table} SELECT * FROM events_staging ON CONFLICT DO NOTHING"
                )
        return int(status.rsplit(" ", 1)[-1])


def event_time(event: Event) -> datetime:
    """The event's ``time`` in UTC: the partition key, and part of the primary key."""
    time = parse_instant(event["time"])
    if time is None:
        raise ValueError(f"time is not an ISO 8601 instant: {event['time']!r}")
    return time.astimezone(UTC)


def row_values(event: Event, time: datetime, encoded: bytes | None = None) -> tuple[Any, ...]:
    """The event as a row of ``events``, in ``COLUMNS`` order; ``encoded`` is its JSON when the caller has it."""
    data = event.get("data") or {}
    return (
        event["id"],
        time,
        event["type"],
        event["source"],
        event.get("subject"),
        data.get("provider"),
        data.get("source_id"),
        data.get("provider_event_type"),
        data.get("provider_event_id"),
        parse_instant(data.get("occurred_at")),
        parse_instant(data.get("received_at")),
        (orjson.dumps(event) if encoded is None else encoded).decode(),
    )


def _build_rows(
    events: list[Event], encoded: list[bytes] | None, times: list[tuple[int, datetime]], poison: list[Poison]
) -> Iterator[_Row]:
    """The row of each event at ``times``' indexes, built when asked for; an event that gives none is poisoned."""
    for index, time in times:
        try:
            yield _Row(index, row_values(events[index], time, None if encoded is None else encoded[index]))
        except (KeyError, TypeError, ValueError, orjson.JSONEncodeError) as exc:
            poison.append(Poison(index, "invalid_event", f"{type(exc).__name__}: {exc}"[:500]))


class _Rows:
    """A part's rows, built while the first COPY streams them (so PostgreSQL parses one part while this
    process builds the next) and kept: a second COPY, or the isolation of a refused row, reads them again."""

    def __init__(self, pending: Iterable[_Row]) -> None:
        self.built: list[_Row] = []
        self._pending = iter(pending)

    def values(self) -> Iterator[tuple[Any, ...]]:
        """Every row's values in order: those built already, then the rest as they are built."""
        for row in self.built[:]:
            yield row.values
        for row in self._pending:
            self.built.append(row)
            yield row.values

    def all(self) -> list[_Row]:
        self.built.extend(self._pending)
        return self.built
