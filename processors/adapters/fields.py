"""Coercions the adapters share: provider values to canonical field types, flat HTML forms, SMTP codes.

None of them raise on a value of the wrong shape (it becomes None; the original stays in ``data.raw``);
``parse_form`` refuses a hostile body with a ``BodyError`` reason, and ``keep_encodable`` guarantees
that every event an adapter returns can be serialised by orjson.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any
from urllib.parse import parse_qsl

import orjson

from espwire.event import CanonicalEvent
from processors.adapters.base import AdaptResult, Failure
from processors.adapters.json_body import BodyError
from processors.timestamps import parse_time

_SAFE_INT = 2**53
MAX_FORM_FIELDS = 1000

# Whole epoch seconds in this range (2001..2096) are formatted directly: the common case costs a third of
# parse_time, and the range sits inside parse_time's own sane range, so the results are identical.
_FAST_EPOCH_MIN = 1_000_000_000
_FAST_EPOCH_MAX = 3_999_999_999
_MINUTES: dict[int, str] = {}
_MINUTES_KEPT = 4096
_SECONDS_Z = [f"{second:02d}Z" for second in range(60)]

_JSON_KINDS = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}

# "550 ...", "smtp;550 ...": the basic reply code at the start of a server response.
_SMTP_STATUS = re.compile(r"\s*(?:smtp;\s*)?([245]\d\d)(?!\d)")
# RFC 3463 enhanced status anywhere in the text ("5.1.1"), not part of a longer dotted number or IP.
_ENHANCED_STATUS = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d.])")


def json_kind(value: object) -> str:
    """The JSON name of a parsed value's type, for failure details."""
    return "null" if value is None else _JSON_KINDS.get(type(value), type(value).__name__)


def as_str(value: object) -> str | None:
    """Text as it is, or the exact decimal text of a number sent bare (ids); None for anything else or empty.

    Floats with an integral value below 2^53 print without ``.0`` (``1.7e9`` -> ``"1700000000"``), since
    a sender that wrote an id as a float meant the integer.
    """
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() and abs(value) <= _SAFE_INT else repr(value)
    return None


def as_identity(value: object) -> str | None:
    """A recipient's address or id: ``as_str`` without surrounding whitespace; None when nothing is left.

    ``" a@x.com "`` would otherwise be another recipient than ``a@x.com`` (another Kafka key, another
    suppression entry), and a blank user id would hide the anonymous id behind it. Raw keeps the text as sent.
    """
    text = as_str(value)
    if text is None:
        return None
    return text.strip() or None


def as_str_list(value: object, separator: str | None = None) -> list[str] | None:
    """A list of non-empty strings from a JSON array; a string is split on ``separator`` (or kept whole)."""
    if isinstance(value, list):
        items = [item for item in value if type(item) is str and item]
        if len(items) != len(value):  # numbers among the strings (rare): coerce them
            items = [text for text in map(as_str, value) if text is not None]
    elif isinstance(value, str):
        parts = value.split(separator) if separator else [value]
        items = [part for part in (p.strip() for p in parts) if part]
    else:
        return None
    return items or None


def epoch_or_time(value: object, *, allow_iso: bool = True, allow_millis: bool = True) -> str | None:
    """``parse_time`` with a fast path for whole epoch seconds (an int or a 10-digit ASCII string)."""
    if type(value) is str and len(value) == 10 and value.isascii() and value.isdigit():
        seconds = int(value)
    elif type(value) is int:
        seconds = value
    elif type(value) is str and not value.isascii():
        return None  # no time is written with non-ASCII characters; parse_time would read "١٧٩٥..." digits
    else:
        return parse_time(value, allow_iso=allow_iso, allow_millis=allow_millis)
    if not _FAST_EPOCH_MIN <= seconds <= _FAST_EPOCH_MAX:
        return parse_time(value, allow_iso=allow_iso, allow_millis=allow_millis)
    # Events of one batch share their minutes, so the formatted minute is kept (a bounded cache).
    minute, second = divmod(seconds, 60)
    prefix = _MINUTES.get(minute)
    if prefix is None:
        if len(_MINUTES) >= _MINUTES_KEPT:
            _MINUTES.clear()
        prefix = _MINUTES[minute] = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
    return prefix + _SECONDS_Z[second]


def as_dict(value: object) -> dict[str, Any] | None:
    return value if isinstance(value, dict) and value else None


def smtp_codes(*texts: str | None) -> tuple[str | None, str | None]:
    """(basic reply code, enhanced status code) from server responses, each from the first text with it."""
    status: str | None = None
    enhanced: str | None = None
    for text in texts:
        if not text:
            continue
        if status is None and (match := _SMTP_STATUS.match(text)):
            status = match.group(1)
        if enhanced is None and (found := _ENHANCED_STATUS.search(text)):
            enhanced = found.group(1)
    return status, enhanced


def parse_form(text: str) -> dict[str, str]:
    """A flat application/x-www-form-urlencoded body (``a=1&b=2``), names and values as sent.

    Refuses, with a ``BodyError`` reason: invalid percent-encoded UTF-8 (``invalid_utf8``), more than
    ``MAX_FORM_FIELDS`` fields (``too_many_fields``) and a name given twice (``duplicate_keys``: which
    value is meant is ambiguous, the same rule as for JSON objects).
    """
    try:
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FORM_FIELDS)
    except UnicodeDecodeError as exc:
        raise BodyError("invalid_utf8", f"percent-encoded bytes are not UTF-8: {exc.reason}") from None
    except ValueError:
        raise BodyError("too_many_fields", f"more than {MAX_FORM_FIELDS} form fields") from None
    fields = dict(pairs)
    if len(fields) != len(pairs):
        seen: set[str] = set()
        duplicate = next(name for name, _ in pairs if name in seen or seen.add(name))  # type: ignore[func-returns-value]
        raise BodyError("duplicate_keys", f"form field {duplicate[:64]!r} appears twice")
    return fields


def failure_from(exc: Exception, item: object, index: int | None) -> Failure:
    """The failure for an exception met while mapping one batch item.

    ``unencodable_event`` when orjson cannot write the item (``build_event`` fingerprints raw when there is
    no event id, and the parser allows nesting up to 512 where orjson stops at 254), else ``adapter_error``:
    a bug, dead-lettered for replay after the fix. Decided by trying the item, not by the exception's class,
    because orjson's JSONEncodeError is plain TypeError.
    """
    try:
        orjson.dumps(item)
    except orjson.JSONEncodeError as encode_error:
        return Failure("unencodable_event", str(encode_error)[:200], index)
    return Failure("adapter_error", repr(exc)[:500], index)


def keep_encodable(indexed: list[tuple[int, CanonicalEvent]], failures: list[Failure]) -> AdaptResult:
    """Events that orjson can serialise; the others become ``unencodable_event`` failures with their index.

    The parser accepts nesting between orjson's limit (254) and its own (512). Checked once per batch, so a
    well-formed batch pays one serialisation; each event is only checked alone when the batch fails.
    """
    events = [event for _, event in indexed]
    try:
        orjson.dumps(events)
    except orjson.JSONEncodeError:
        events = []
        for index, event in indexed:
            try:
                orjson.dumps(event)
            except orjson.JSONEncodeError as exc:
                failures.append(Failure("unencodable_event", str(exc)[:200], index))
            else:
                events.append(event)
    return AdaptResult(events=events, failures=failures)
