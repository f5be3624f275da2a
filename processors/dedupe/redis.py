"""The shared dedupe store: one Redis for every processor, each batched call one Lua script (one round trip).

Guarantees: a script runs atomically, so two processors racing for an id see one winner; time comes
from the Redis server (``TIME``), so processors with skewed clocks agree on leases; every key carries
the window as its expiry, so Redis alone forgets old ids. A batch's keys may hash anywhere, so this
needs one Redis primary (not Redis Cluster).

Values: ``p\\t<lease_until>\\t<since>\\t<fingerprint>\\t<owner>`` (pending) or ``d\\t<fingerprint>`` (done);
per message a hash ``m:<key>`` with ``d`` (delivery time) and ``c:<second>`` (link tokens clicked then).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from processors.dedupe import metrics
from processors.dedupe.base import (
    Claim,
    ClaimEntry,
    ClaimStatus,
    DedupeStoreError,
    MessageEvent,
    MessageState,
    link_token,
)

_T = TypeVar("_T")

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# ARGV: owner, lease seconds, then (fingerprint, ttl seconds) per key. Same table as base.decide.
_BEGIN = (
    _NOW
    + """
local owner = ARGV[1]
local lease = tonumber(ARGV[2])
local out = {}
for i, key in ipairs(KEYS) do
  local fp = ARGV[1 + 2 * i]
  local ttl = math.max(1, math.floor(tonumber(ARGV[2 + 2 * i]) * 1000))
  local cur = redis.call('GET', key)
  local since = now
  local answer
  if not cur then
    answer = 'N'
  elseif string.sub(cur, 1, 1) == 'd' then
    if string.sub(cur, 3) == fp then answer = 'D' else answer = 'C' end
  else
    local lease_until, old_since, _, old_owner = string.match(cur, '^p\\t([^\\t]*)\\t([^\\t]*)\\t([^\\t]*)\\t(.*)$')
    if old_owner == owner then
      answer = 'N'
      since = tonumber(old_since)
    elseif tonumber(lease_until) > now then
      answer = 'B\\t' .. old_since .. '\\t' .. old_owner
    else
      answer = 'I\\t' .. old_since .. '\\t' .. old_owner
    end
  end
  local first = string.sub(answer, 1, 1)
  if first == 'N' or first == 'I' then
    local value = 'p\\t' .. string.format('%.6f', now + lease) .. '\\t' .. string.format('%.6f', since)
    redis.call('SET', key, value .. '\\t' .. fp .. '\\t' .. owner, 'PX', ttl)
  end
  out[i] = answer
end
return out
"""
)

# ARGV: (fingerprint, ttl seconds) per key. A done id keeps its first fingerprint.
_COMMIT = """
for i, key in ipairs(KEYS) do
  local cur = redis.call('GET', key)
  if not cur or string.sub(cur, 1, 1) ~= 'd' then
    local ttl = math.max(1, math.floor(tonumber(ARGV[2 * i]) * 1000))
    redis.call('SET', key, 'd\\t' .. ARGV[2 * i - 1], 'PX', ttl)
  end
end
return #KEYS
"""

# ARGV: owner. Only our own pending claims go.
_RELEASE = """
local removed = 0
for _, key in ipairs(KEYS) do
  local cur = redis.call('GET', key)
  if cur and string.sub(cur, 1, 1) == 'p' then
    local owner = string.match(cur, '^p\\t[^\\t]*\\t[^\\t]*\\t[^\\t]*\\t(.*)$')
    if owner == ARGV[1] then
      redis.call('DEL', key)
      removed = removed + 1
    end
  end
end
return removed
"""

# KEYS: one message hash per item. ARGV: ttl ms, then (kind, epoch seconds, link token) per item.
# Records every item first, then answers from the final state (see base.apply_message_events).
_MESSAGES = """
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local kind = ARGV[3 * i - 1]
  local moment = tonumber(ARGV[3 * i])
  if kind == 'delivered' then
    local known = redis.call('HGET', key, 'd')
    if not known or moment < tonumber(known) then redis.call('HSET', key, 'd', ARGV[3 * i]) end
  else
    local field = 'c:' .. math.floor(moment)
    local token = ARGV[3 * i + 1]
    local tokens = redis.call('HGET', key, field) or ''
    if not string.find(' ' .. tokens .. ' ', ' ' .. token .. ' ', 1, true) then
      if tokens == '' then tokens = token else tokens = tokens .. ' ' .. token end
      redis.call('HSET', key, field, tokens)
    end
  end
  redis.call('PEXPIRE', key, ttl)
end
local out = {}
for i, key in ipairs(KEYS) do
  local delivered = redis.call('HGET', key, 'd') or ''
  local count = 0
  if ARGV[3 * i - 1] == 'clicked' then
    local tokens = redis.call('HGET', key, 'c:' .. math.floor(tonumber(ARGV[3 * i]))) or ''
    for _ in string.gmatch(tokens, '%S+') do count = count + 1 end
  end
  out[i] = delivered .. '\\t' .. count
end
return out
"""

_NEW = Claim(ClaimStatus.NEW)
_DUPLICATE = Claim(ClaimStatus.DUPLICATE)
_CONFLICT = Claim(ClaimStatus.CONFLICT)


def _claim(answer: bytes) -> Claim:
    first = answer[:1]
    if first == b"N":
        return _NEW
    if first == b"D":
        return _DUPLICATE
    if first == b"C":
        return _CONFLICT
    _, since, owner = answer.split(b"\t", 2)
    status = ClaimStatus.BUSY if first == b"B" else ClaimStatus.IN_DOUBT
    return Claim(status, owner.decode(), float(since))


class RedisDedupeStore:
    name = "redis"

    def __init__(self, client: aioredis.Redis, key_prefix: str = "espwire:dedupe:") -> None:
        self._client = client
        self._prefix = key_prefix
        self._begin = client.register_script(_BEGIN)
        self._commit = client.register_script(_COMMIT)
        self._release = client.register_script(_RELEASE)
        self._messages = client.register_script(_MESSAGES)

    @classmethod
    def from_url(
        cls, url: str, key_prefix: str = "espwire:dedupe:", *, timeout_seconds: float = 5.0
    ) -> RedisDedupeStore:
        client = aioredis.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds, decode_responses=False
        )
        return cls(client, key_prefix)

    async def _run(self, operation: str, call: Callable[[], Awaitable[_T]]) -> _T:
        started = time.perf_counter()
        try:
            return await call()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            metrics.STORE_ERRORS.labels(self.name, operation).inc()
            raise DedupeStoreError(f"redis {operation}: {exc}", retriable=True) from exc
        except RedisError as exc:
            metrics.STORE_ERRORS.labels(self.name, operation).inc()
            # BUSY (a long script elsewhere) and LOADING pass by themselves; anything else is a bug or config.
            text = str(exc)
            raise DedupeStoreError(
                f"redis {operation}: {exc}", retriable=text.startswith(("BUSY", "LOADING", "TRYAGAIN"))
            ) from exc
        finally:
            metrics.STORE_SECONDS.labels(self.name, operation).observe(time.perf_counter() - started)

    async def begin(self, entries: Sequence[ClaimEntry], owner: str, lease_seconds: float) -> list[Claim]:
        if not entries:
            return []
        prefix = self._prefix
        keys = [prefix + event_id for event_id, _, _ in entries]
        args: list[Any] = [owner, repr(float(lease_seconds))]
        for _, fingerprint, ttl in entries:
            args.append(fingerprint)
            args.append(repr(float(ttl)))
        answers: list[bytes] = await self._run("begin", lambda: self._begin(keys=keys, args=args))
        return [_claim(answer) for answer in answers]

    async def commit(self, entries: Sequence[ClaimEntry], owner: str) -> None:
        if not entries:
            return
        keys = [self._prefix + event_id for event_id, _, _ in entries]
        args: list[Any] = []
        for _, fingerprint, ttl in entries:
            args.append(fingerprint)
            args.append(repr(float(ttl)))
        await self._run("commit", lambda: self._commit(keys=keys, args=args))

    async def release(self, ids: Sequence[str], owner: str) -> None:
        if not ids:
            return
        keys = [self._prefix + event_id for event_id in ids]
        await self._run("release", lambda: self._release(keys=keys, args=[owner]))

    async def note_message_events(self, items: Sequence[MessageEvent], ttl_seconds: float) -> list[MessageState]:
        if not items:
            return []
        keys = [f"{self._prefix}m:{key}" for key, _, _, _ in items]
        args: list[Any] = [max(1, int(ttl_seconds * 1000))]
        for _, kind, moment, detail in items:
            args.append(kind)
            args.append(repr(float(moment)))
            args.append(link_token(detail) if kind == "clicked" else "-")
        answers: list[bytes] = await self._run("note_message_events", lambda: self._messages(keys=keys, args=args))
        states: list[MessageState] = []
        for answer in answers:
            delivered, count = answer.split(b"\t")
            states.append(MessageState(float(delivered) if delivered else None, int(count)))
        return states

    async def close(self) -> None:
        await self._client.aclose()
