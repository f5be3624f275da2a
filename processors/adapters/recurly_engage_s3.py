"""Recurly Engage S3 usage exports (one JSON object per line) to canonical events, through the same
per-event mapping as the webhook adapter (``recurly_engage.engage_event``); never raises.

Decisions: each line is parsed strictly and on its own, so a bad line (invalid JSON or UTF-8, not an
object) is a failure with its 0-based line number while the other lines still come out; blank lines
are skipped and an empty file is no events and no failures.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from espwire.envelope import Envelope
from processors.adapters.base import AdaptResult, Failure
from processors.adapters.json_body import BodyError, parse_json
from processors.adapters.recurly_engage import map_events


def adapt_export(envelope: Envelope, lines: Iterable[bytes] | None = None) -> AdaptResult:
    """Events of one export file: ``lines`` when given (to stream a large file), else ``envelope.body``."""
    try:
        failures: list[Failure] = []
        items: list[tuple[int, Any]] = []
        for index, raw in enumerate(envelope.body.splitlines() if lines is None else lines):
            if not raw.strip():
                continue
            try:
                items.append((index, parse_json(raw)))
            except BodyError as error:
                failures.append(Failure(error.reason, error.detail, index))
        return map_events(envelope, items, failures)
    except Exception as exc:  # a bug must become a dead letter, never a crashed importer
        return AdaptResult(failures=[Failure("adapter_error", repr(exc)[:500])])
