"""Campaign attributes from a lookup table into ``data.campaign_context``: a CSV file or a PostgreSQL table.

The table has a ``campaign_id`` and/or a ``mailing_id`` column and any others; a row's other non-empty
columns become the attributes, as text. An event matches by ``data.campaign.id`` first, then
``data.message.mailing_id``.

Guarantees: the whole table is held in memory (campaign tables are small: thousands of rows, not
millions) and looked up without I/O on the hot path. It is re-read off the event loop when due: the CSV
(``[enrich] campaign_csv``) when its modification time or size changed, checked at most every 5 s; the
PostgreSQL table (``campaign_dsn`` + ``campaign_table``) every ``campaign_refresh_seconds``. A table that
cannot be read keeps the last good one, and events with a campaign or mailing id get a note saying so.
"""

from __future__ import annotations

import asyncio
import csv
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import asyncpg  # type: ignore[import-untyped]

from espwire.config import TABLE_NAME_PATTERN
from processors.enrich.base import Event, note_error

Attributes = dict[str, str]
Tables = tuple[dict[str, Attributes], dict[str, Attributes]]  # (by campaign id, by mailing id)
KEY_COLUMNS = ("campaign_id", "mailing_id")


def _text(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    isoformat = getattr(value, "isoformat", None)  # dates and times as RFC 3339, not Python's str()
    return str(isoformat() if callable(isoformat) else value).strip()


def tables_from_rows(columns: Sequence[str], rows: Iterable[Mapping[str, object]], where: str) -> Tables:
    """The two lookups from rows of column -> value (None and blank values are no attribute)."""
    if not any(key in columns for key in KEY_COLUMNS):
        raise ValueError(f"{where}: needs a campaign_id or mailing_id column")
    by_campaign: dict[str, Attributes] = {}
    by_mailing: dict[str, Attributes] = {}
    for row in rows:
        clean = {name.strip(): _text(value) for name, value in row.items() if name is not None and value is not None}
        attributes = {k: v for k, v in clean.items() if k not in KEY_COLUMNS and k and v}
        if clean.get("campaign_id"):
            by_campaign[clean["campaign_id"]] = attributes
        if clean.get("mailing_id"):
            by_mailing[clean["mailing_id"]] = attributes
    return by_campaign, by_mailing


def read_table(path: Path) -> Tables:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        return tables_from_rows(columns, reader, f"{path} (header)")


def quoted_table(name: str) -> str:
    """``table`` or ``schema.table`` as a quoted SQL identifier; anything else is refused."""
    if not re.fullmatch(TABLE_NAME_PATTERN, name):  # the same rule the configuration checks
        raise ValueError(f"campaign_table {name!r} is not a table name (table or schema.table)")
    return ".".join(f'"{part}"' for part in name.split("."))


class TableSource(Protocol):
    label: str
    check_seconds: float

    async def load_if_changed(self) -> Tables | None:
        """The table when it may have changed since the last load, else None; raises when unreadable."""
        ...


class CsvTable:
    def __init__(self, path: Path, check_seconds: float = 5.0) -> None:
        self.path = path
        self.label = path.name
        self.check_seconds = check_seconds
        self._signature: tuple[float, int] | None = None

    async def load_if_changed(self) -> Tables | None:
        stat = await asyncio.to_thread(os.stat, self.path)
        signature = (stat.st_mtime, stat.st_size)
        if signature == self._signature:
            return None
        tables = await asyncio.to_thread(read_table, self.path)
        self._signature = signature
        return tables


class PostgresTable:
    """Re-read whole on every check: one small query a minute costs less than tracking changes."""

    def __init__(self, dsn: str, table: str, check_seconds: float = 60.0, timeout_seconds: float = 10.0) -> None:
        self._dsn = dsn
        self._query = f"SELECT * FROM {quoted_table(table)}"
        self.label = f"table {table}"
        self.check_seconds = check_seconds
        self._timeout = timeout_seconds

    async def load_if_changed(self) -> Tables:
        connection = await asyncpg.connect(self._dsn, timeout=self._timeout)
        try:
            statement = await connection.prepare(self._query, timeout=self._timeout)
            columns = [attribute.name for attribute in statement.get_attributes()]
            rows = await statement.fetch(timeout=self._timeout)
        finally:
            await connection.close()
        return tables_from_rows(columns, (dict(row) for row in rows), self.label)


class CampaignContextEnricher:
    name = "campaign_context"

    def __init__(self, source: TableSource) -> None:
        self.source = source
        self._checked_at = float("-inf")
        self._by_campaign: dict[str, Attributes] = {}
        self._by_mailing: dict[str, Attributes] = {}
        self._load_error: str | None = None

    async def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < self.source.check_seconds:
            return
        self._checked_at = now
        try:
            tables = await self.source.load_if_changed()
        except (OSError, ValueError, csv.Error, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            self._load_error = f"cannot read {self.source.label}: {exc}"
            return
        if tables is not None:
            self._by_campaign, self._by_mailing = tables
        self._load_error = None

    async def enrich_batch(self, events: list[Event]) -> None:
        await self._refresh()
        by_campaign, by_mailing = self._by_campaign, self._by_mailing
        for event in events:
            data = event["data"]
            campaign: dict[str, Any] = data.get("campaign") or {}
            message: dict[str, Any] = data.get("message") or {}
            found = None
            campaign_id = campaign.get("id")
            if campaign_id:
                found = by_campaign.get(str(campaign_id))
            if found is None:
                mailing_id = message.get("mailing_id")
                if mailing_id:
                    found = by_mailing.get(str(mailing_id))
            if found is not None:
                data["campaign_context"] = dict(found)
            elif self._load_error and (campaign_id or message.get("mailing_id")):
                note_error(event, self.name, self._load_error)
