"""Pure360's daily FTP event log to canonical events, through the same per-notification mapping as the
HTTP adapter (``pure360.notification_event``); never raises, a bad line is a failure with its line index.

A line is one notification: ``'"type:OPEN","event date:1795164900",...,"lastName:O'Neil"'``.

Decisions (the format is only shown by example):
- Only the line's outer single quotes and the first and last double quote are stripped; items are split
  on ``","`` (spaces allowed around the comma), so values keep their ``, `` and single quotes. Each item
  splits on its first ``:`` only (URLs contain more). A piece without ``:`` was part of the previous
  value (a value containing ``","``) and is joined back to it.
- A value made only of double quotes is empty: the documented DELIVERYSTART line ends in
  ``"delivery complete date:""``.
- Whitespace around the ``:`` belongs to the format (documented as "key : value"; the DELIVERY example
  has ``"message type: MESSAGETYPE"``), so names and values are trimmed: the type is ``OPEN``, not `` OPEN``.
- An item whose closing quote is missing before the next one (the documented DELIVERY example has
  ``"profile: profileName,"delivery id:989565"``) is split where ``,"`` starts a ``name:``.
- Field names are kept as written (``event date``); the shared mapping matches them ignoring case,
  spaces and ``_``, so ``event date`` is ``Event_date``. The same name twice: the last one wins.
- ``Failure.index`` is the 0-based line number in the file; blank lines are skipped and an empty file
  is no events and no failures (a quiet day). A line that is not valid UTF-8 fails alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from espwire.envelope import Envelope
from processors.adapters.base import AdaptResult, Failure
from processors.adapters.json_body import BodyError, decode_text
from processors.adapters.pure360 import map_notifications

_ITEM_SEPARATOR = re.compile(r'("\s*,\s*")')
# `,"` followed by a field name and its colon, inside one item: the previous item lost its closing quote.
_UNCLOSED_ITEM = re.compile(r',\s*"(?=[^\W\d][\w ]{0,63}:)')


def parse_line(line: str) -> dict[str, str]:
    """One log line's fields, names and values as written; raises BodyError when it is not that format."""
    text = line.strip()
    if len(text) >= 2 and text[0] == "'" and text[-1] == "'":
        text = text[1:-1].strip()
    if not text.startswith('"'):
        raise BodyError("invalid_line", 'line is not a list of "key:value" strings')
    text = text[1:-1] if len(text) >= 2 and text.endswith('"') else text[1:]
    pieces = _ITEM_SEPARATOR.split(text)
    items: list[str] = [pieces[0]]
    for separator, piece in zip(pieces[1::2], pieces[2::2], strict=True):
        if ":" in piece:
            items.append(piece)
        else:
            items[-1] += separator + piece
    fields: dict[str, str] = {}
    for item in (part for joined in items for part in _UNCLOSED_ITEM.split(joined)):
        name, colon, value = item.partition(":")
        if not colon:
            raise BodyError("invalid_line", f"item {item[:64]!r} has no ':'")
        value = value.strip()
        fields[name.strip()] = "" if value.strip('"') == "" else value
    return fields


def adapt_log(envelope: Envelope, lines: Iterable[bytes] | None = None) -> AdaptResult:
    """Events of one log file: ``lines`` when given (to stream a large file), else ``envelope.body``."""
    try:
        failures: list[Failure] = []
        notifications: list[tuple[int, Any]] = []
        for index, raw in enumerate(envelope.body.splitlines() if lines is None else lines):
            if not raw.strip():
                continue
            try:
                notifications.append((index, parse_line(decode_text(raw))))
            except BodyError as error:
                failures.append(Failure(error.reason, error.detail, index))
        return map_notifications(envelope, notifications, failures)
    except Exception as exc:  # a bug must become a dead letter, never a crashed importer
        return AdaptResult(failures=[Failure("adapter_error", repr(exc)[:500])])
