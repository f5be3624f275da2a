"""Suppression sink: hard bounces, complaints and unsubscribes from every provider, one row per address.

Which events count: ``bounce.severity`` "hard" (any type; where the provider left it undetermined, the
enricher's ``inferred_severity`` stands in); an ``email.bounced`` with ``reject_reason`` "bounced" and no
softer severity (soft/block/admin never suppress; undetermined with no reading of the reply does); an
``email.rejected`` whose ``reject_reason`` says the provider refused the address as invalid (a hard
bounce) or unsubscribed;
``email.complained``; ``email.unsubscribed``. Events without a recipient email are ignored.

Delivery: exactly once by event id. One statement per batch records the event ids in
``suppression_events`` (``ON CONFLICT DO NOTHING ... RETURNING``) and folds only the ids that were new
into ``suppressions`` (count, first/last seen, latest reason): a redelivered event changes nothing,
concurrent sink processes serialise on the rows they share. ``suppression_events`` keeps every id it
has applied (a few per address: small next to the event stream).

With ``privacy.email = "hash"`` the list holds keyed hashes; ``SuppressionStore`` hashes the address it
is asked about the same way, so lookups keep working.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field, SecretStr

from espwire.config import SinkConfig
from sinks.base import BatchOutcome, DestinationUnavailable, Event, Poison, Position, Sink, SinkOptions
from sinks.postgres import PG_REFUSED, PG_UNAVAILABLE, SCHEMA_PATTERN, open_database, parse_instant, quote_ident
from sinks.privacy import Redactor

SOFT_SEVERITIES = frozenset({"soft", "block", "admin"})
_REJECTIONS: dict[object, str] = {"invalid": "hard_bounce", "unsubscribed": "unsubscribe"}
CSV_COLUMNS = ("email", "reason", "provider", "source", "first_seen", "last_seen", "count")


class SuppressionOptions(SinkOptions):
    dsn: SecretStr
    schema_: str = Field(default="public", alias="schema", pattern=SCHEMA_PATTERN)
    pool_size: int = Field(default=2, ge=1, le=64)
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    command_timeout_seconds: float = Field(default=60.0, gt=0)
    migrate: bool = True


def suppression_reason(event: Event) -> str | None:
    """ "hard_bounce", "complaint", "unsubscribe", or None when the event does not suppress its recipient."""
    event_type = event.get("type")
    data = event.get("data") or {}
    if event_type == "email.complained":
        return "complaint"
    if event_type == "email.unsubscribed":
        return "unsubscribe"
    bounce = data.get("bounce") or {}
    severity = bounce.get("severity")
    if severity in (None, "undetermined"):
        # The provider did not classify it: the bounce_class enricher's reading of the reply, when there is one.
        severity = bounce.get("inferred_severity") or severity
    if severity == "hard":
        return "hard_bounce"
    if event_type == "email.bounced" and data.get("reject_reason") == "bounced" and severity not in SOFT_SEVERITIES:
        return "hard_bounce"
    if event_type == "email.rejected":
        # Refused before sending (no bounce severity): for an address the provider knows to be bad or gone.
        return _REJECTIONS.get(data.get("reject_reason"))
    return None


def _upsert_sql(schema: str) -> str:
    s = quote_ident(schema)
    return f"""
WITH incoming AS (
    SELECT DISTINCT ON (event_id) event_id, email, reason, provider, source, seen
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
        AS t(event_id, email, reason, provider, source, seen)
    ORDER BY event_id
), fresh AS (
    INSERT INTO {s}.suppression_events (event_id, email)
    SELECT event_id, email FROM incoming
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
), per_email AS (
    SELECT email,
           (array_agg(reason ORDER BY seen DESC, event_id))[1] AS reason,
           (array_agg(provider ORDER BY seen DESC, event_id))[1] AS provider,
           (array_agg(source ORDER BY seen DESC, event_id))[1] AS source,
           min(seen) AS first_seen, max(seen) AS last_seen, count(*) AS n
    FROM incoming JOIN fresh USING (event_id)
    GROUP BY email
)
INSERT INTO {s}.suppressions AS s (email, reason, provider, source, first_seen, last_seen, count)
SELECT email, reason, provider, source, first_seen, last_seen, n FROM per_email
ON CONFLICT (email) DO UPDATE SET
    reason = CASE WHEN excluded.last_seen >= s.last_seen THEN excluded.reason ELSE s.reason END,
    provider = CASE WHEN excluded.last_seen >= s.last_seen THEN excluded.provider ELSE s.provider END,
    source = CASE WHEN excluded.last_seen >= s.last_seen THEN excluded.source ELSE s.source END,
    first_seen = least(s.first_seen, excluded.first_seen),
    last_seen = greatest(s.last_seen, excluded.last_seen),
    count = s.count + excluded.count
"""


class SuppressionSink(Sink):
    options_model: ClassVar[type[SinkOptions]] = SuppressionOptions

    def __init__(self, options: SuppressionOptions) -> None:
        super().__init__(options)
        self.pg = options
        self.schema = options.schema_
        self._sql = _upsert_sql(self.schema)
        self._pool: Any = None

    async def start(self) -> None:
        self._pool = await open_database(self.pg)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def write_batch(
        self, events: list[Event], positions: list[Position] | None = None, encoded: list[bytes] | None = None
    ) -> BatchOutcome:
        if self._pool is None:
            raise DestinationUnavailable("the sink is not started")
        outcome = BatchOutcome()
        rows: list[tuple[int, tuple[str, str, str, str, str, datetime]]] = []
        for index, event in enumerate(events):
            reason = suppression_reason(event)
            data = event.get("data") or {}
            email = (data.get("recipient") or {}).get("email")
            if reason is None or not isinstance(email, str) or not email.strip():
                outcome.skipped += 1
                continue
            seen = parse_instant(event.get("time"))
            if seen is None:
                outcome.poison.append(Poison(index, "invalid_event", f"time is not an instant: {event.get('time')!r}"))
                continue
            source = str(data.get("source_id") or event.get("source") or "")
            rows.append((index, (event["id"], email.strip().lower(), reason, str(data.get("provider")), source, seen)))
        try:
            outcome.written = await self._apply(rows, outcome.poison)
        except PG_UNAVAILABLE as exc:
            raise DestinationUnavailable(f"PostgreSQL unavailable: {exc!r}") from exc
        return outcome

    async def _apply(
        self, rows: list[tuple[int, tuple[str, str, str, str, str, datetime]]], poison: list[Poison]
    ) -> int:
        if not rows:
            return 0
        columns = list(zip(*(values for _, values in rows), strict=True))
        try:
            async with self._pool.acquire() as conn:
                await conn.execute(self._sql, *columns)
            return len(rows)
        except PG_REFUSED as exc:
            if len(rows) == 1:
                poison.append(Poison(rows[0][0], "rejected_by_postgres", f"{type(exc).__name__}: {exc}"[:500]))
                return 0
            middle = len(rows) // 2
            return await self._apply(rows[:middle], poison) + await self._apply(rows[middle:], poison)


class SuppressionStore:
    """Reads the suppression list (the admin API and exports use it); ``db`` is an asyncpg pool or connection."""

    def __init__(self, db: Any, schema: str = "public", redactor: Redactor | None = None) -> None:
        self.db = db
        self.table = f"{quote_ident(schema)}.suppressions"
        self.redactor = redactor

    def key(self, email: str) -> str:
        return self.redactor.email(email) if self.redactor else email.strip().lower()

    async def get_suppression(self, email: str) -> dict[str, Any] | None:
        row = await self.db.fetchrow(
            f"SELECT {', '.join(CSV_COLUMNS)} FROM {self.table} WHERE email = $1", self.key(email)
        )
        return dict(row) if row is not None else None

    async def list_suppressions(self, since: datetime | None = None, limit: int = 10_000) -> list[dict[str, Any]]:
        """Addresses suppressed or seen again at or after ``since`` (all when None), latest first."""
        rows = await self.db.fetch(
            f"SELECT {', '.join(CSV_COLUMNS)} FROM {self.table} "
            "WHERE $1::timestamptz IS NULL OR last_seen >= $1 ORDER BY last_seen DESC, email LIMIT $2",
            since,
            limit,
        )
        return [dict(row) for row in rows]


def suppressions_csv(rows: Iterable[dict[str, Any]]) -> str:
    """CSV export (header row, ISO 8601 times) of what ``list_suppressions`` returned."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([row[c].isoformat() if isinstance(row[c], datetime) else row[c] for c in CSV_COLUMNS])
    return out.getvalue()


async def export_csv(config: SinkConfig, since: str | None = None) -> str:
    """The whole suppression list of one suppression sink as CSV (`espwire suppressions export`)."""
    import asyncpg  # type: ignore[import-untyped]

    options = SuppressionOptions.from_config(config)
    since_at = datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None
    conn = await asyncpg.connect(options.dsn.get_secret_value(), timeout=options.connect_timeout_seconds)
    try:
        store = SuppressionStore(conn, options.schema_, Redactor(options.privacy))
        return suppressions_csv(await store.list_suppressions(since_at, limit=100_000_000))
    finally:
        await conn.close()
