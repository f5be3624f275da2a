"""Dedupe stores: publish each event id once per window, across crashes and rebalances.

``build_store`` picks the backend from ``[dedupe]``: Redis (shared by every processor), SQLite (one
file in the data dir, for ``espwire dev``) or memory (unit tests). See ``base`` for the contract.
"""

from __future__ import annotations

import logging
from pathlib import Path

from espwire.config import DedupeConfig
from processors.dedupe.base import (
    Claim,
    ClaimEntry,
    ClaimStatus,
    DedupeStore,
    DedupeStoreError,
    MessageEvent,
    MessageState,
)
from processors.dedupe.memory import MemoryDedupeStore
from processors.dedupe.redis import RedisDedupeStore
from processors.dedupe.sqlite import SqliteDedupeStore

SQLITE_FILE = "dedupe.sqlite3"

log = logging.getLogger("espwire.dedupe")

__all__ = [
    "SQLITE_FILE",
    "Claim",
    "ClaimEntry",
    "ClaimStatus",
    "DedupeStore",
    "DedupeStoreError",
    "MemoryDedupeStore",
    "MessageEvent",
    "MessageState",
    "RedisDedupeStore",
    "SqliteDedupeStore",
    "build_store",
]


def build_store(config: DedupeConfig, datadir: Path) -> DedupeStore:
    """The configured store; the caller closes it (``await store.close()``)."""
    if config.store == "redis":
        return RedisDedupeStore.from_url(config.redis_url.get_secret_value(), config.key_prefix)
    if config.store == "sqlite":
        return SqliteDedupeStore(datadir / SQLITE_FILE, purge_interval_seconds=config.sqlite_purge_seconds)
    # Accepted so tests and experiments can run without Redis or a data dir, but said out loud.
    log.warning("dedupe store 'memory' forgets every id at a restart (redeliveries come out again): for tests only")
    return MemoryDedupeStore()
