"""Time as every stage writes it: RFC 3339 UTC with a Z (``2026-11-20T08:35:00Z``)."""

from __future__ import annotations

from datetime import UTC, datetime


def format_utc(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_now() -> str:
    """Now, to the millisecond (the gateway stamps every request with it, so it is kept cheap)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"
