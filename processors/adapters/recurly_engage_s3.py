"""Recurly Engage S3 usage exports (one JSON object per line) to canonical events, through the same
per-event mapping as the webhook adapter (``recurly_engage.engage_event``); never raises.

Decisions: each line is parsed strictly and on its own, so a bad line (invalid JSON or UTF-8, not an
object) is a failure with its 0-based line number while the other lines still come out; blank lines
are skipped and an empty file is no events and no failures. A file that opens with ``[`` holds the
webhook's payload shape instead ("a JSON array of event objects", pretty-printed or not): it is read
whole like a webhook body, each failure numbered by its array index; when it does not read whole,
line by line as above.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from espwire.envelope import Envelope
from processors.adapters.base import AdaptResult, Failure
from processors.adapters.json_body import BodyError, parse_json, parse_json_lenient
from processors.adapters.recurly_engage import map_events


def adapt_export(envelope: Envelope, lines: Iterable[bytes] | None = None) -> AdaptResult:
    """Events of one export file: ``lines`` when given (to stream a large file), else ``envelope.body``."""
    try:
        rows = _rows(envelope.body.splitlines() if lines is None else lines)
        whole = _as_array(rows) if isinstance(rows, list) else None
        if whole is not None:
            return map_events(envelope, list(enumerate(whole)), [])
        failures: list[Failure] = []
        items: list[tuple[int, Any]] = []
        for index, raw in enumerate(rows):
            if not raw.strip():
                continue
            try:
                items.append((index, parse_json(raw)))
            except BodyError as error:
                failures.append(Failure(error.reason, error.detail, index))
        return map_events(envelope, items, failures)
    except Exception as exc:  # a bug must become a dead letter, never a crashed importer
        return AdaptResult(failures=[Failure("adapter_error", repr(exc)[:500])])


def _rows(lines: Iterable[bytes]) -> Iterable[bytes]:
    """The lines, still streamed, unless the first that is not blank opens an array: then all of them, a list
    (``_as_array`` reads them whole, and line by line after all when that fails)."""
    lines = iter(lines)
    head: list[bytes] = []
    for line in lines:
        head.append(line)
        if line.strip():
            break
    if head and head[-1].lstrip(b"\xef\xbb\xbf \t").startswith(b"["):
        return head + list(lines)
    return itertools.chain(head, lines)


def _as_array(rows: list[bytes]) -> list[Any] | None:
    """The file's items when it is one JSON array, else None (then it is read a line at a time)."""
    try:
        value = parse_json_lenient(b"\n".join(rows), leading_zeros=False)
    except BodyError:
        return None
    return value if isinstance(value, list) else None
