"""Time as every stage writes it: RFC 3339 UTC with a Z (``2026-11-20T08:35:00Z``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def parse_utc(text: str) -> datetime:
    """ISO 8601 / RFC 3339 text as an aware datetime; without an offset it is UTC, as every stage writes
    times (never the host's zone). Raises ValueError when the text is not a time."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def format_utc(moment: datetime) -> str:
    """Milliseconds when the time has them, microseconds only when it has those: the same instant as given."""
    moment = moment.astimezone(UTC)
    if not moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return (text if moment.microsecond % 1000 else text[:-3]) + "Z"


_second: list[tuple[int, str]] = [(-1, "")]  # the last whole second formatted, shared by its requests
_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))


def utc_now() -> str:
    """Now, to the millisecond. The gateway stamps every request with it, so the date and time of day
    are formatted once a second and only the milliseconds per call (a sixth of datetime's cost)."""
    now = time.time()
    whole = int(now)
    second, text = _second[0]
    if whole != second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second[0] = (whole, text)
    return text + _MILLIS[int((now - whole) * 1000)]
