"""Campaign attributes from a CSV lookup table into ``data.campaign_context``.

The file (``[enrich] campaign_csv``) has a header row with ``campaign_id`` and/or ``mailing_id`` and any
other columns; a row's other non-empty columns become the attributes. An event matches by
``data.campaign.id`` first, then ``data.message.mailing_id``. Guarantees: the table is held in memory and
re-read (in a worker thread) when the file's modification time or size changes, checked at most every
``check_seconds``; a file that cannot be read keeps the last good table and notes the error.
"""

from __future__ import annotations

import asyncio
import csv
import os
import time
from pathlib import Path
from typing import Any

from processors.enrich.base import Event, note_error

Attributes = dict[str, str]
KEY_COLUMNS = ("campaign_id", "mailing_id")


def read_table(path: Path) -> tuple[dict[str, Attributes], dict[str, Attributes]]:
    """(attributes by campaign id, attributes by mailing id)."""
    by_campaign: dict[str, Attributes] = {}
    by_mailing: dict[str, Attributes] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        if not any(key in columns for key in KEY_COLUMNS):
            raise ValueError(f"{path}: the header needs a campaign_id or mailing_id column")
        for row in reader:
            clean = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
            attributes = {k: v for k, v in clean.items() if k not in KEY_COLUMNS and k and v}
            if clean.get("campaign_id"):
                by_campaign[clean["campaign_id"]] = attributes
            if clean.get("mailing_id"):
                by_mailing[clean["mailing_id"]] = attributes
    return by_campaign, by_mailing


class CampaignContextEnricher:
    name = "campaign_context"

    def __init__(self, path: Path, *, check_seconds: float = 5.0) -> None:
        self.path = path
        self._check_seconds = check_seconds
        self._checked_at = float("-inf")
        self._signature: tuple[float, int] | None = None
        self._by_campaign: dict[str, Attributes] = {}
        self._by_mailing: dict[str, Attributes] = {}
        self._load_error: str | None = None

    async def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < self._check_seconds:
            return
        self._checked_at = now
        try:
            stat = await asyncio.to_thread(os.stat, self.path)
            signature = (stat.st_mtime, stat.st_size)
            if signature == self._signature:
                return
            self._by_campaign, self._by_mailing = await asyncio.to_thread(read_table, self.path)
            self._signature = signature
            self._load_error = None
        except (OSError, ValueError, csv.Error, UnicodeDecodeError) as exc:
            self._load_error = f"cannot read {self.path.name}: {exc}"

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
