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
from typing import TypeVar

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

_NOW = r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# Per-key arguments travel as one newline-separated blob and answers come back as one, because
# packing and parsing thousands of separate arguments and replies cost more than the script itself.

# KEYS: ids. ARGV: owner, lease seconds, "<fingerprint>\t<ttl ms>\n" per key. Same table as base.decide.
_BEGIN = (
    _NOW
    + r"""
local owner = ARGV[1]
local lease = tonumber(ARGV[2])
-- Every claim written by this call shares its lease and (unless retried) its start: format them once.
local lease_part = 'p\t' .. string.format('%.6f', now + lease) .. '\t'
local fresh = lease_part .. string.format('%.6f', now) .. '\t'
local out = {}
local i = 0
for fp, ttl in string.gmatch(ARGV[3], '([^\t\n]*)\t(%d+)\n') do
  i = i + 1
  local key = KEYS[i]
  local cur = redis.call('GET', key)
  local since = now
  local answer
  if not cur then
    answer = 'N'
  elseif string.sub(cur, 1, 1) == 'd' then
    if string.sub(cur, 3) == fp then answer = 'D' else answer = 'C' end
  else
    local lease_until, old_since, _, old_owner = string.match(cur, '^p\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$')
    if old_owner == owner then
      answer = 'N'
      since = tonumber(old_since)
    elseif tonumber(lease_until) > now then
      answer = 'B\t' .. old_since .. '\t' .. old_owner
    else
      answer = 'I\t' .. old_since .. '\t' .. old_owner
    end
  end
  local first = string.sub(answer, 1, 1)
  if first == 'N' or first == 'I' then
    local head = fresh
    if since ~= now then head = lease_part .. string.format('%.6f', since) .. '\t' end
    redis.call('SET', key, head .. fp .. '\t' .. owner, 'PX', ttl)
  end
  out[i] = answer
end
return table.concat(out, '\n')
"""
)

# KEYS: ids. ARGV: "<fingerprint>\t<ttl ms>\n" per key. A done id keeps its first fingerprint.
_COMMIT = r"""
local i = 0
for fp, ttl in string.gmatch(ARGV[1], '([^\t\n]*)\t(%d+)\n') do
  i = i + 1
  local cur = redis.call('GET', KEYS[i])
  if not cur or string.sub(cur, 1, 1) ~= 'd' then
    redis.call('SET', KEYS[i], 'd\t' .. fp, 'PX', ttl)
  end
end
return i
"""

# KEYS: ids. ARGV: owner. Only our own pending claims go.
_RELEASE = r"""
local removed = 0
for _, key in ipairs(KEYS) do
  local cur = redis.call('GET', key)
  if cur and string.sub(cur, 1, 1) == 'p' then
    local owner = string.match(cur, '^p\t[^\t]*\t[^\t]*\t[^\t]*\t(.*)$')
    if owner == ARGV[1] then
      redis.call('DEL', key)
      removed = removed + 1
    end
  end
end
return removed
"""

# KEYS: one message hash per item. ARGV: ttl ms, "<kind>\t<epoch seconds>\t<link token>\n" per item.
# Records every item first, then answers from the final state (see base.apply_message_events).
_MESSAGES = r"""
local ttl = tonumber(ARGV[1])
local kinds, moments = {}, {}
local i = 0
for kind, moment, token in string.gmatch(ARGV[2], '([^\t\n]*)\t([^\t\n]*)\t([^\t\n]*)\n') do
  i = i + 1
  local key = KEYS[i]
  kinds[i] = kind
  moments[i] = tonumber(moment)
  if kind == 'delivered' then
    local known = redis.call('HGET', key, 'd')
    if not known or moments[i] < tonumber(known) then redis.call('HSET', key, 'd', moment) end
  else
    local field = 'c:' .. math.floor(moments[i])
    local tokens = redis.call('HGET', key, field) or ''
    if not string.find(' ' .. tokens .. ' ', ' ' .. token .. ' ', 1, true) then
      if tokens == '' then tokens = token else tokens = tokens .. ' ' .. token end
      redis.call('HSET', key, field, tokens)
    end
  end
  redis.call('PEXPIRE', key, ttl)
end
local out = {}
for j = 1, i do
  local delivered = redis.call('HGET', KEYS[j], 'd') or ''
  local count = 0
  if kinds[j] == 'clicked' then
    local tokens = redis.call('HGET', KEYS[j], 'c:' .. math.floor(moments[j])) or ''
    for _ in string.gmatch(tokens, '%S+') do count = count + 1 end
  end
  out[j] = delivered .. '\t' .. count
end
return table.concat(out, '\n')
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


def _per_key_blob(entries: Sequence[ClaimEntry]) -> str:
    lines = []
    for event_id, fingerprint, ttl in entries:
        if "\t" in fingerprint or "\n" in fingerprint:
            raise ValueError(f"fingerprint of {event_id!r} contains a tab or newline")
        lines.append(f"{fingerprint}\t{max(1, int(ttl * 1000))}\n")
    return "".join(lines)


def _split(reply: bytes, count: int) -> list[bytes]:
    parts = reply.split(b"\n") if reply else []
    if len(parts) != count:
        raise DedupeStoreError(f"redis script answered {len(parts)} entries for {count}", retriable=False)
    return parts


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
        if "\n" in owner:
            raise ValueError("owner must not contain a newline")
        keys = [self._prefix + event_id for event_id, _, _ in entries]
        args = [owner, repr(float(lease_seconds)), _per_key_blob(entries)]
        reply: bytes = await self._run("begin", lambda: self._begin(keys=keys, args=args))
        return [_claim(answer) for answer in _split(reply, len(entries))]

    async def commit(self, entries: Sequence[ClaimEntry], owner: str) -> None:
        if not entries:
            return
        keys = [self._prefix + event_id for event_id, _, _ in entries]
        args = [_per_key_blob(entries)]
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
        lines = [
            f"{kind}\t{moment!r}\t{link_token(detail) if kind == 'clicked' else '-'}\n"
            for _, kind, moment, detail in items
        ]
        args: list[str | int] = [max(1, int(ttl_seconds * 1000)), "".join(lines)]
        reply: bytes = await self._run("note_message_events", lambda: self._messages(keys=keys, args=args))
        states: list[MessageState] = []
        for answer in _split(reply, len(items)):
            delivered, count = answer.split(b"\t")
            states.append(MessageState(float(delivered) if delivered else None, int(count)))
        return states

    async def close(self) -> None:
        await self._client.aclose()
