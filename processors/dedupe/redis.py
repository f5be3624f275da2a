"""The shared dedupe store: one Redis for every processor, each batched call one Lua script (one round trip).

Guarantees: a script runs atomically, so two processors racing for an id see one winner; leases run on
the Redis server's clock (``TIME``), so processors with skewed clocks agree on them; a claim's start
(``since``) is the claiming processor's own clock, the clock its producer stamps its records with, so
the next owner's search of the events topic for them starts early enough however far that clock is off
(with Redis's clock, a processor 30 s behind made every in-doubt event come out twice); every key carries
the window as its expiry, so Redis alone forgets old ids. A batch's keys may hash anywhere, so this
needs one Redis primary (not Redis Cluster), version 7.0 or later.

Values: ``p\\t<lease_until>\\t<since>\\t<fingerprint>\\t<owner>`` (pending) or ``d\\t<fingerprint>`` (done);
per message a hash ``m:<key>`` with ``d`` (delivery time) and ``c:<second>`` (link tokens clicked then).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import orjson
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

# A call's per-id arguments travel as one JSON array of columns (orjson builds it, the scripts' cjson
# reads it: both in C, and any text is safe in it), answers come back as one newline-separated blob:
# packing and parsing thousands of separate keys, arguments and replies cost more than the scripts
# themselves. Each script builds its keys as prefix .. id, so it touches keys it was not given in KEYS:
# fine on one Redis primary, which this store needs anyway (a batch's keys hash to any cluster slot).
# Per id, one write command where one does: a claim is SET NX GET (Redis 7.0 or later), a commit SET GET.

# ARGV: prefix, owner, lease seconds, [[id...], [fingerprint...], [ttl ms...]], the caller's clock (its
# epoch seconds, text). Same table as base.decide.
_BEGIN = (
    _NOW
    + r"""
local prefix, owner = ARGV[1], ARGV[2]
local lease = tonumber(ARGV[3])
local batch = cjson.decode(ARGV[4])
local ids, fps, ttls = batch[1], batch[2], batch[3]
-- Every claim written by this call shares its lease and (unless retried) its start: format them once.
local lease_part = 'p\t' .. string.format('%.6f', now + lease) .. '\t'
local fresh = lease_part .. ARGV[5] .. '\t'
local out = {}
for i = 1, #ids do
  local key = prefix .. ids[i]
  local fp, ttl = fps[i], ttls[i]
  local mine = fp .. '\t' .. owner
  -- Absent (the common case): claimed by this one command.
  local cur = redis.call('SET', key, fresh .. mine, 'NX', 'PX', ttl, 'GET')
  if not cur then
    out[i] = 'N'
  elseif string.sub(cur, 1, 1) == 'd' then
    if string.sub(cur, 3) == fp then out[i] = 'D' else out[i] = 'C' end
  else
    local lease_until, old_since, old_fp, old_owner = string.match(cur, '^p\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$')
    if old_owner == owner then
      out[i] = 'N'  -- a retry: keeps the first claim time, extends the lease
      redis.call('SET', key, lease_part .. old_since .. '\t' .. mine, 'PX', ttl)
    elseif tonumber(lease_until) > now then
      out[i] = 'B\t' .. old_since .. '\t' .. old_owner
    else
      out[i] = 'I\t' .. old_since .. '\t' .. old_fp .. '\t' .. old_owner
      redis.call('SET', key, fresh .. mine, 'PX', ttl)
    end
  end
end
return table.concat(out, '\n')
"""
)

# ARGV: prefix, [[id...], [fingerprint...], [ttl ms...]]. A done id keeps its first fingerprint (put
# back in the rare case it was already done: another owner took the claim over and finished first).
_COMMIT = r"""
local prefix = ARGV[1]
local batch = cjson.decode(ARGV[2])
local ids, fps, ttls = batch[1], batch[2], batch[3]
for i = 1, #ids do
  local key = prefix .. ids[i]
  local old = redis.call('SET', key, 'd\t' .. fps[i], 'PX', ttls[i], 'GET')
  if old and string.sub(old, 1, 1) == 'd' then
    redis.call('SET', key, old, 'PX', ttls[i])
  end
end
return #ids
"""

# ARGV: prefix, owner, [id...]. Only our own pending claims go.
_RELEASE = r"""
local prefix, owner = ARGV[1], ARGV[2]
local ids = cjson.decode(ARGV[3])
local removed = 0
for i = 1, #ids do
  local key = prefix .. ids[i]
  local cur = redis.call('GET', key)
  if cur and string.sub(cur, 1, 1) == 'p' then
    if string.match(cur, '^p\t[^\t]*\t[^\t]*\t[^\t]*\t(.*)$') == owner then
      redis.call('DEL', key)
      removed = removed + 1
    end
  end
end
return removed
"""

# ARGV: key prefix, ttl ms, [[message key...], [kind...], [epoch seconds as text...], [link token...]].
# Records every item first, then answers from the final state (see base.apply_message_events). Each
# message's delivery time and each (message, second)'s clicked links are read from Redis once per call
# and followed in Lua tables after that; each message's expiry is set once. A first delivery is one
# HSETNX; a click reads the delivery time and its second's links in one HMGET.
_MESSAGES = r"""
local prefix, ttl = ARGV[1], tonumber(ARGV[2])
local batch = cjson.decode(ARGV[3])
local keys, kinds, moments, tokens_in = batch[1], batch[2], batch[3], batch[4]
local delivered, clicks, touched = {}, {}, {}
local item_key, item_slot = {}, {}
for i = 1, #keys do
  local key = prefix .. keys[i]
  local moment = moments[i]
  local known = delivered[key]
  if kinds[i] == 'delivered' then
    local written = false
    if known == nil then
      touched[#touched + 1] = key
      written = redis.call('HSETNX', key, 'd', moment) == 1
      if written then known = moment else known = redis.call('HGET', key, 'd') end
    end
    if not written and (not known or tonumber(moment) < tonumber(known)) then
      redis.call('HSET', key, 'd', moment)
      known = moment
    end
    item_slot[i] = false
  else
    local token = tokens_in[i]
    local field = 'c:' .. math.floor(tonumber(moment))
    local slot = key .. '\n' .. field
    local tokens = clicks[slot]
    if known == nil then
      touched[#touched + 1] = key
      local found = redis.call('HMGET', key, 'd', field)
      known = found[1] or false
      if tokens == nil then tokens = found[2] or '' end
    elseif tokens == nil then
      tokens = redis.call('HGET', key, field) or ''
    end
    if not string.find(' ' .. tokens .. ' ', ' ' .. token .. ' ', 1, true) then
      if tokens == '' then tokens = token else tokens = tokens .. ' ' .. token end
      redis.call('HSET', key, field, tokens)
    end
    clicks[slot] = tokens
    item_slot[i] = slot
  end
  delivered[key] = known
  item_key[i] = key
end
for _, key in ipairs(touched) do redis.call('PEXPIRE', key, ttl) end
local out = {}
for j = 1, #keys do
  local count = 0
  if item_slot[j] then
    for _ in string.gmatch(clicks[item_slot[j]], '%S+') do count = count + 1 end
  end
  out[j] = (delivered[item_key[j]] or '') .. '\t' .. count
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
    if first == b"B":
        _, since, owner = answer.split(b"\t", 2)
        return Claim(ClaimStatus.BUSY, owner.decode(), float(since))
    _, since, fingerprint, owner = answer.split(b"\t", 3)
    return Claim(ClaimStatus.IN_DOUBT, owner.decode(), float(since), fingerprint.decode())


def _claim_columns(entries: Sequence[ClaimEntry]) -> bytes:
    """[[id...], [fingerprint...], [ttl ms...]] as JSON."""
    fingerprints = [fingerprint for _, fingerprint, _ in entries]
    joined = "".join(fingerprints)
    if "\t" in joined or "\n" in joined:  # the stored values are tab-separated
        bad = next(e for e in entries if "\t" in e[1] or "\n" in e[1])
        raise ValueError(f"fingerprint of {bad[0]!r} contains a tab or newline")
    ttl_ms: dict[float, int] = {}  # a batch has one window, or a few: convert each once
    for _, _, ttl in entries:
        if ttl not in ttl_ms:
            ttl_ms[ttl] = max(1, int(ttl * 1000))
    return orjson.dumps([[event_id for event_id, _, _ in entries], fingerprints, [ttl_ms[e[2]] for e in entries]])


def _split(reply: bytes, count: int) -> list[bytes]:
    parts = reply.split(b"\n") if reply else []
    if len(parts) != count:
        raise DedupeStoreError(f"redis script answered {len(parts)} entries for {count}", retriable=False)
    return parts


class RedisDedupeStore:
    name = "redis"

    def __init__(
        self, client: aioredis.Redis, key_prefix: str = "espwire:dedupe:", *, clock: Callable[[], float] = time.time
    ) -> None:
        self._client = client
        self._prefix = key_prefix
        self._clock = clock  # what a claim's start is read on (see the module's docstring)
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
        args: list[str | bytes] = [
            self._prefix,
            owner,
            repr(float(lease_seconds)),
            _claim_columns(entries),
            f"{self._clock():.6f}",
        ]
        reply: bytes = await self._run("begin", lambda: self._begin(args=args))
        return [_claim(answer) for answer in _split(reply, len(entries))]

    async def commit(self, entries: Sequence[ClaimEntry], owner: str) -> None:
        if not entries:
            return
        args: list[str | bytes] = [self._prefix, _claim_columns(entries)]
        await self._run("commit", lambda: self._commit(args=args))

    async def release(self, ids: Sequence[str], owner: str) -> None:
        if not ids:
            return
        args: list[str | bytes] = [self._prefix, owner, orjson.dumps(list(ids))]
        await self._run("release", lambda: self._release(args=args))

    async def note_message_events(self, items: Sequence[MessageEvent], ttl_seconds: float) -> list[MessageState]:
        if not items:
            return []
        keys, kinds, moments, details = zip(*items, strict=True)
        columns = (
            keys,
            kinds,
            list(map(repr, moments)),  # as text: stored as written, compared as numbers
            [link_token(detail) if kind == "clicked" else "" for kind, detail in zip(kinds, details, strict=True)],
        )
        args: list[str | int | bytes] = [f"{self._prefix}m:", max(1, int(ttl_seconds * 1000)), orjson.dumps(columns)]
        reply: bytes = await self._run("note_message_events", lambda: self._messages(args=args))
        # Answers repeat (deliveries in the same second, clicks of one message): each is read once.
        known: dict[bytes, MessageState] = {}
        states: list[MessageState] = []
        for answer in _split(reply, len(items)):
            state = known.get(answer)
            if state is None:
                delivered, count = answer.split(b"\t")
                state = known[answer] = MessageState(float(delivered) if delivered else None, int(count))
            states.append(state)
        return states

    async def close(self) -> None:
        await self._client.aclose()
