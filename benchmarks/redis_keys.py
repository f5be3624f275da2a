"""The benchmarks' keys in the machine's shared Redis, removed once a run is done with them.

Each run writes a few hundred thousand dedupe and bot-click keys under its own ``bench:`` prefix. Left
to their expiry they pile up over an afternoon of runs (4.6 million keys, 1.1 GiB seen on 2026-12-01),
and the next runs then measure a Redis busy expiring them (its CPU per event went from ~13 to ~100 µs).
"""

from __future__ import annotations

import redis

DEFAULT_URL = "redis://127.0.0.1:6379/0"
_CHUNK = 5_000


def drop_keys(prefix: str, url: str = DEFAULT_URL) -> int:
    """Unlinks every key starting with ``prefix``; returns how many went."""
    if not prefix.startswith("bench:") or any(c in prefix for c in "*?[]\\"):
        raise ValueError(f"not a benchmark key prefix: {prefix!r}")
    client = redis.Redis.from_url(url)
    dropped = 0
    chunk: list[bytes] = []
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=10_000):
            chunk.append(key)
            if len(chunk) >= _CHUNK:
                dropped += client.unlink(*chunk)
                chunk.clear()
        if chunk:
            dropped += client.unlink(*chunk)
    finally:
        client.close()
    return dropped
