"""Running a coroutine as a service: uvloop when present, JSON logs."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

from espwire.logs import setup_logging

T = TypeVar("T")


def tune_gc() -> None:
    """Fewer, larger young collections: events are short-lived acyclic dicts, thousands per batch, and
    the default threshold (700) spends a third of the processor's time re-scanning them. Objects alive
    at start-up (modules, config, tables) are frozen out of every collection."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(200_000, 50, 100)


def run(main: Coroutine[Any, Any, T], log_level: str = "INFO") -> T:
    setup_logging(log_level)
    tune_gc()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return asyncio.run(main)
    return uvloop.run(main)
