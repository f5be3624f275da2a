"""Test helper for the real Redis: remove every key a test wrote under its own prefix."""

from __future__ import annotations

import redis.asyncio as aioredis


async def forget_keys(redis_url: str, prefix: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
    finally:
        await client.aclose()
