"""Running a coroutine as a service: uvloop when present, JSON logs."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from espwire.logs import setup_logging

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T], log_level: str = "INFO") -> T:
    setup_logging(log_level)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return asyncio.run(main)
    return uvloop.run(main)
