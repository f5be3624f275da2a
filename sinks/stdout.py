"""Stdout sink, for debugging and ``espwire tail``: one line per event, readable on a terminal, JSON when piped.

Delivery: a line is "written" once it is handed to the stream and the stream is flushed; nothing more
(a closed pipe loses what was in it). A type filter (globs, "email.*") keeps only the events asked for.
"""

from __future__ import annotations

import fnmatch
import re
import sys
from typing import Any, ClassVar, Literal, TextIO

import orjson
from pydantic import Field

from sinks.base import BatchOutcome, Event, Position, Sink, SinkOptions

_COLOURS = {
    "bounced": "31",
    "rejected": "31",
    "complained": "35",
    "unsubscribed": "33",
    "clicked": "36",
    "opened": "32",
}


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _shown(value: object) -> str:
    """A value for the terminal: every value here came in a webhook, so its control characters (an escape
    sequence retitles, clears or rewrites the operator's terminal; a newline fakes a line) are shown escaped."""
    return _CONTROL.sub(lambda match: match[0].encode("unicode_escape").decode(), str(value))


class StdoutOptions(SinkOptions):
    types: list[str] = Field(default_factory=list)  # globs; empty: every type
    format: Literal["auto", "pretty", "json"] = "auto"


class StdoutSink(Sink):
    options_model: ClassVar[type[SinkOptions]] = StdoutOptions

    def __init__(self, options: StdoutOptions, stream: TextIO | None = None) -> None:
        super().__init__(options)
        self.stdout = options
        self.stream = stream or sys.stdout
        if options.format == "auto":
            self.pretty = bool(getattr(self.stream, "isatty", lambda: False)())
        else:
            self.pretty = options.format == "pretty"

    def wanted(self, event: Event) -> bool:
        types = self.stdout.types
        return not types or any(fnmatch.fnmatchcase(str(event.get("type")), glob) for glob in types)

    async def write_batch(
        self, events: list[Event], positions: list[Position] | None = None, encoded: list[bytes] | None = None
    ) -> BatchOutcome:
        lines = [self.render(event) for event in events if self.wanted(event)]
        if lines:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()
        return BatchOutcome(written=len(lines), skipped=len(events) - len(lines))

    def render(self, event: Event) -> str:
        if not self.pretty:
            return orjson.dumps(event).decode()
        data: dict[str, Any] = event.get("data") or {}
        event_type = _shown(event.get("type"))
        colour = _COLOURS.get(event_type.rsplit(".", 1)[-1])
        shown_type = f"\x1b[{colour}m{event_type:<22}\x1b[0m" if colour else f"{event_type:<22}"
        detail = []
        if data.get("reject_reason"):
            detail.append(f"reason={_shown(data['reject_reason'])}")
        bounce = data.get("bounce") or {}
        if bounce.get("severity"):
            detail.append(f"bounce={_shown(bounce['severity'])}")
        link = data.get("link") or {}
        if link.get("url"):
            detail.append(f"url={_shown(link['url'])}")
        return (
            f"{_shown(event.get('time', '')):<24} {shown_type} {_shown(event.get('subject') or '-'):<32} "
            f"{_shown(data.get('provider', '?'))}/{_shown(data.get('source_id', '?'))} {' '.join(detail)} "
            f"id={_shown(event.get('id'))}"
        ).rstrip()
