"""Suppression sink: hard bounces, complaints and unsubscribes from every provider, one row per address.

Which events count: an ``email.bounced`` with ``bounce.severity`` "hard" (where the provider left it
undetermined, the enricher's ``inferred_severity`` stands in), or with ``reject_reason`` "bounced" and no
softer severity (soft/block/admin never suppress; undetermined with no reading of the reply does); an
``email.rejected`` the provider calls hard, or whose ``reject_reason`` says it refused the address as
invalid (a hard bounce) or unsubscribed (our reading of a rejection's reply does not count: a template that
failed to render is refused with a 5xx for every recipient); ``email.complained``; ``email.unsubscribed``.
A hard bounce or rejection whose ``reject_reason`` is "unsubscribed" (SparkPost's class 90: the recipient
asked by a reply) counts as an unsubscribe.
Never a deferral (``email.deferred``: the provider is still trying, whatever its last reply), nor any other
type. Events without a recipient email are ignored. The address is the bare one (``Name <addr>`` reduced),
trimmed and lower-cased; a subaddress (``a+news@x.com``) is an address of its own.

Opting in again: an ``email.subscribed`` (Pure360's OPTIN) lifts an entry that holds only unsubscribes
(``unsubscribe_only``), all older than the opt-in; an unsubscribe after it suppresses again, and hard
bounces and complaints are never lifted. The latest opt-in per address is kept (``resubscriptions``), so an
older unsubscribe that arrives after it does not suppress. A lifted entry stays in the table (with its
counts) and is left out by ``SuppressionStore``: the API, the export and ``list_suppressions(since=)``.

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
from typing import Any, ClassVar, Self

from pydantic import Field, SecretStr, model_validator

from espwire.config import SinkConfig
from sinks.base import BatchOutcome, DestinationUnavailable, Event, Poison, Position, Sink, SinkOptions
from sinks.postgres import PG_REFUSED, PG_UNAVAILABLE, SCHEMA_PATTERN, open_database, parse_instant, quote_ident
from sinks.privacy import Redactor, normalise_email

SOFT_SEVERITIES = frozenset({"soft", "block", "admin"})
_REJECTIONS: dict[object, str] = {"invalid": "hard_bounce", "unsubscribed": "unsubscribe"}
# What an opt-in (email.subscribed) is recorded as beside the reasons: it lifts unsubscribes, see the migration.
RESUBSCRIBE = "resubscribe"
CSV_COLUMNS = ("email", "reason", "provider", "source", "first_seen", "last_seen", "count")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class SuppressionOptions(SinkOptions):
    dsn: SecretStr
    schema_: str = Field(default="public", alias="schema", pattern=SCHEMA_PATTERN)
    pool_size: int = Field(default=2, ge=1, le=64)
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    command_timeout_seconds: float = Field(default=60.0, gt=0)
    migrate: bool = True

    @model_validator(mode="after")
    def _keeps_an_address(self) -> Self:
        # With the address dropped every event is skipped: an empty list that looks like a healthy one.
        if self.privacy.email == "drop":
            raise ValueError('privacy.email = "drop" leaves the suppression list no address to keep: use "hash"')
        return self


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
    if event_type == "email.rejected":
        # Refused before sending: for an address the provider knows to be bad or gone, never for our
        # reading of the reply (a template that failed to render answers "554 5.3.3" for every recipient).
        return _REJECTIONS.get(data.get("reject_reason")) or ("hard_bounce" if severity == "hard" else None)
    if event_type != "email.bounced":
        # A deferral is still being retried by the provider, whatever its last reply said.
        return None
    if severity in (None, "undetermined"):
        # The provider did not classify it: the bounce_class enricher's reading of the reply, when there is one.
        severity = bounce.get("inferred_severity") or severity
    if severity == "hard":
        # SparkPost's class 90: the recipient asked to unsubscribe (by a reply): an unsubscribe, which an
        # opt-in lifts, not a dead address.
        return "unsubscribe" if data.get("reject_reason") == "unsubscribed" else "hard_bounce"
    if data.get("reject_reason") == "bounced" and severity not in SOFT_SEVERITIES:
        return "hard_bounce"
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
), applied AS (
    SELECT incoming.* FROM incoming JOIN fresh USING (event_id)
), resubscribed AS (
    INSERT INTO {s}.resubscriptions AS r (email, subscribed_at)
    SELECT email, max(seen) FROM applied WHERE reason = '{RESUBSCRIBE}' GROUP BY email
    ON CONFLICT (email) DO UPDATE SET subscribed_at = greatest(r.subscribed_at, excluded.subscribed_at)
), per_email AS (
    SELECT email,
           (array_agg(reason ORDER BY seen DESC, event_id))[1] AS reason,
           (array_agg(provider ORDER BY seen DESC, event_id))[1] AS provider,
           (array_agg(source ORDER BY seen DESC, event_id))[1] AS source,
           min(seen) AS first_seen, max(seen) AS last_seen, count(*) AS n,
           bool_and(reason = 'unsubscribe') AS unsubscribe_only
    FROM applied
    WHERE reason <> '{RESUBSCRIBE}'
    GROUP BY email
)
INSERT INTO {s}.suppressions AS s (email, reason, provider, source, first_seen, last_seen, count, unsubscribe_only)
SELECT email, reason, provider, source, first_seen, last_seen, n, unsubscribe_only FROM per_email
ON CONFLICT (email) DO UPDATE SET
    reason = CASE WHEN excluded.last_seen >= s.last_seen THEN excluded.reason ELSE s.reason END,
    provider = CASE WHEN excluded.last_seen >= s.last_seen THEN excluded.provider ELSE s.provider END,
    source = CASE WHEN excluded.last_seen >= s.last_seen THEN excluded.source ELSE s.source END,
    first_seen = least(s.first_seen, excluded.first_seen),
    last_seen = greatest(s.last_seen, excluded.last_seen),
    count = s.count + excluded.count,
    unsubscribe_only = s.unsubscribe_only AND excluded.unsubscribe_only
"""


def _in_force(schema: str) -> str:
    """The condition on ``suppressions AS s`` of an entry that still suppresses (not lifted by an opt-in)."""
    return (
        f"NOT (s.unsubscribe_only AND EXISTS (SELECT 1 FROM {quote_ident(schema)}.resubscriptions r "
        "WHERE r.email = s.email AND r.subscribed_at > s.last_seen))"
    )


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
            reason = suppression_reason(event) or (RESUBSCRIBE if event.get("type") == "email.subscribed" else None)
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
            rows.append((index, (event["id"], normalise_email(email), reason, str(data.get("provider")), source, seen)))
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
        self.table = f"{quote_ident(schema)}.suppressions AS s"
        self.in_force = _in_force(schema)
        self.redactor = redactor

    def key(self, email: str) -> str:
        return self.redactor.email(email) if self.redactor else normalise_email(email)

    async def get_suppression(self, email: str) -> dict[str, Any] | None:
        row = await self.db.fetchrow(
            f"SELECT {', '.join(CSV_COLUMNS)} FROM {self.table} WHERE email = $1 AND {self.in_force}", self.key(email)
        )
        return dict(row) if row is not None else None

    async def list_suppressions(self, since: datetime | None = None, limit: int = 10_000) -> list[dict[str, Any]]:
        """Addresses suppressed or seen again at or after ``since`` (all when None), latest first."""
        rows = await self.db.fetch(
            f"SELECT {', '.join(CSV_COLUMNS)} FROM {self.table} "
            f"WHERE ($1::timestamptz IS NULL OR last_seen >= $1) AND {self.in_force} "
            "ORDER BY last_seen DESC, email LIMIT $2",
            since,
            limit,
        )
        return [dict(row) for row in rows]


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell a spreadsheet shows as text: the address, provider and source come from
    webhooks, and ``=HYPERLINK(...)`` (or any cell starting with = + - @, a tab or a CR) would be run as a
    formula when the export is opened, so such text gets a leading ``'`` (OWASP's CSV injection advice)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def suppressions_csv(rows: Iterable[dict[str, Any]]) -> str:
    """CSV export (header row, ISO 8601 times) of what ``list_suppressions`` returned."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([csv_cell(row[c]) for c in CSV_COLUMNS])
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
