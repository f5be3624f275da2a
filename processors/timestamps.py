"""Provider timestamps to RFC 3339 UTC (``2026-11-20T08:35:00Z``), or None when they cannot be read.

Providers send epoch seconds or milliseconds (as numbers or digit strings), ISO 8601 with or
without an offset, and ``YYYY-MM-DD HH:MM:SS``; anything else (iPost's unfilled placeholders such
as ``view_time``) is not a time, and the event falls back to ``time_source: received``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from espwire.clock import format_utc, utc_now

__all__ = ["format_utc", "from_epoch", "parse_time", "utc_now", "zone"]

# Epoch values above this are milliseconds (10^11 s is the year 5138).
_MILLIS_THRESHOLD = 10**11
_DIGITS = re.compile(r"^-?\d{1,16}(\.\d+)?$")
# Sane range: 1990 .. 2100. Outside it a number is more likely an id than a time.
_MIN_EPOCH = 631152000
_MAX_EPOCH = 4102444800


def from_epoch(value: float, *, allow_millis: bool = True) -> str | None:
    """Epoch seconds, or milliseconds when above 10^11 (unless ``allow_millis`` is off: then such a value
    is out of range, as seconds, and gives None)."""
    if allow_millis and value > _MILLIS_THRESHOLD:
        value = value / 1000.0
    if not _MIN_EPOCH <= value <= _MAX_EPOCH:
        return None
    whole = int(value)
    millis = round((value - whole) * 1000)
    moment = datetime.fromtimestamp(whole, UTC) + timedelta(milliseconds=millis)
    return format_utc(moment)


def zone(name: str | None) -> tzinfo:
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def parse_time(
    value: object, naive_zone: tzinfo = UTC, *, allow_iso: bool = True, allow_millis: bool = True
) -> str | None:
    """Any common timestamp form to RFC 3339 UTC; None if missing or unreadable.

    ``naive_zone`` is the zone of times written without an offset (a source setting; UTC by default).
    ``allow_millis`` off: an epoch value is seconds only (a millisecond count is out of range: None).
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return from_epoch(float(value), allow_millis=allow_millis) if value == value else None  # NaN guard
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    if _DIGITS.match(text):
        return from_epoch(float(text), allow_millis=allow_millis)
    if not allow_iso:
        return None
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=naive_zone)
        # The epoch range for ISO text too: a year 0001 or 9999 is a placeholder, not when it happened
        # (and near those ends the shift to UTC overflows, or the year prints with fewer than 4 digits).
        if not _MIN_EPOCH <= moment.timestamp() <= _MAX_EPOCH:
            return None
    except (ValueError, OverflowError):
        return None
    return format_utc(moment)
