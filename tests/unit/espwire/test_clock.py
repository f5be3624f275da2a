import re
from datetime import UTC, datetime, timedelta

from espwire.clock import format_utc, utc_now


def test_utc_now_is_rfc3339_milliseconds_and_now() -> None:
    before = datetime.now(UTC)
    stamp = utc_now()
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert before - timedelta(milliseconds=1) <= parsed <= after


def test_utc_now_follows_the_clock_across_seconds() -> None:
    stamps = [utc_now() for _ in range(2000)]
    assert stamps == sorted(stamps)  # the cached second never lags behind the milliseconds


def test_format_utc_drops_zero_fractions() -> None:
    assert format_utc(datetime(2026, 11, 20, 8, 35, tzinfo=UTC)) == "2026-11-20T08:35:00Z"
    assert format_utc(datetime(2026, 11, 20, 8, 35, 0, 250000, tzinfo=UTC)) == "2026-11-20T08:35:00.250Z"


def test_format_utc_keeps_microseconds_only_when_the_time_has_them() -> None:
    # The same instant as given: an ISO time with microseconds is not cut to milliseconds.
    assert format_utc(datetime(2026, 11, 20, 8, 35, 0, 123456, tzinfo=UTC)) == "2026-11-20T08:35:00.123456Z"
    assert format_utc(datetime(2026, 11, 20, 8, 35, 0, 123000, tzinfo=UTC)) == "2026-11-20T08:35:00.123Z"
