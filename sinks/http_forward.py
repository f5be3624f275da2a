"""HTTP forward sink: POSTs batches of events (a JSON array) to downstream URLs, signed per Standard Webhooks.

Each request carries ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (``v1,<base64
HMAC-SHA256 of "{id}.{timestamp}.{body}">``, one per configured secret, space-separated, so a receiver
keeps verifying while secrets rotate). Secrets are ``whsec_<base64>`` as the standard defines.

Delivery: at least once per destination, deduplicable by the receiver. ``webhook-id`` is a hash of the
event ids in the request, so a batch re-sent after a crash (same events, same order) carries the same id;
batches are cut by the consumer, so after a restart one event may arrive in a request of a different
shape: receivers should also dedupe by each event's ``id`` — that is the only exact key.

A destination that does not take the request now (unreachable, 5xx, 408/425/429, and 401/403/404 or a
redirect: a receiver misconfigured, its secret or URL wrong) is retried with exponential backoff and jitter
(``Retry-After`` honoured) within its retry budget, behind a per-destination circuit breaker; past the
budget the batch raises ``DestinationUnavailable``: the runner keeps the offsets, reports not ready and
tries the batch again later, and requests a destination already accepted in it are not sent again. Nothing
is dead-lettered for being down, so a dead receiver holds its sink back, not its events: give destinations
that must progress on their own a sink each (each sink is its own consumer group). A 413 splits the
request in halves down to one event. Only a refusal of the content (another 4xx, or 413 for one event)
dead-letters the request's events to that destination's topic (``<prefix>.dlq.<sink>.<destination>``)
while the other destinations still get them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import logging
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, cast

import aiohttp
import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from espwire.config import Settings
from espwire.topics import Topics
from sinks.base import BatchOutcome, DestinationUnavailable, Event, Poison, Position, Sink, SinkOptions

log = logging.getLogger("espwire.sink.http_forward")

# Answers that mean "not now": timeouts and rate limits, and a receiver whose credentials or URL are wrong
# (fixed on its side, the same request goes through). Any other 4xx means it refuses this content.
RETRYABLE_STATUS = frozenset({401, 403, 404, 408, 425, 429})
TOO_LARGE = "http_413"
# Of an answer's body, at most this much is read (only to reuse the connection; nothing in it counts).
_BODY_READ_BYTES = 64 * 1024
# Requests a destination accepted in a batch the runner is retrying: at most this many remembered.
_ACCEPTED_KEPT = 10_000


class Destination(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    url: str = Field(pattern=r"^https?://")
    # Several during a rotation: each request is signed with every one of them.
    secrets: list[SecretStr] = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=6, ge=1)
    # The retry budget of one request; past it the request is dead-lettered.
    max_elapsed_seconds: float = Field(default=30.0, gt=0)
    backoff_initial_seconds: float = Field(default=0.5, gt=0)
    backoff_max_seconds: float = Field(default=10.0, gt=0)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_reset_seconds: float = Field(default=30.0, gt=0)

    @field_validator("secrets")
    @classmethod
    def _whsec(cls, secrets: list[SecretStr]) -> list[SecretStr]:
        for secret in secrets:
            secret_key(secret.get_secret_value())  # raises on a malformed secret
        return secrets


class HttpForwardOptions(SinkOptions):
    destinations: list[Destination] = Field(min_length=1)
    max_events_per_request: int = Field(default=500, ge=1)


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret."""
    if not secret.startswith("whsec_"):
        raise ValueError("a Standard Webhooks secret starts with whsec_")
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error as exc:
        raise ValueError("the part after whsec_ is not base64") from exc


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def webhook_id(events: list[Event]) -> str:
    """The same events in the same order give the same id, so the receiver can drop a repeated request."""
    digest = hashlib.sha256("\n".join(str(e.get("id")) for e in events).encode()).hexdigest()
    return f"msg_{digest[:32]}"


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


class CircuitBreaker:
    """Closed until ``failures`` attempts in a row fail; then open for ``reset_seconds``; then one trial."""

    def __init__(self, failures: int, reset_seconds: float) -> None:
        self.threshold = failures
        self.reset_seconds = reset_seconds
        self.failures = 0
        self.open_until = 0.0

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self.open_until

    def success(self) -> None:
        self.failures = 0
        self.open_until = 0.0

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.open_until = time.monotonic() + self.reset_seconds


@dataclass(slots=True)
class _Attempt:
    ok: bool
    retryable: bool
    reason: str
    retry_after: float | None = None


class _Unavailable(Exception):
    """A destination did not take a request within its retry budget."""


async def _skip_body(response: aiohttp.ClientResponse) -> None:
    """Reads a short answer so its connection is reused; the status alone decides, so a long answer is cut
    (its connection closed) and one still coming when the timeout ends is not waited for: a receiver that
    accepted the request and then streams or stalls its body must not be sent the request again."""
    left = _BODY_READ_BYTES
    with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
        while left > 0 and not response.content.at_eof():
            chunk = await response.content.readany()
            if not chunk:
                break
            left -= len(chunk)


class HttpForwardSink(Sink):
    options_model: ClassVar[type[SinkOptions]] = HttpForwardOptions

    def __init__(self, options: HttpForwardOptions, settings: Settings) -> None:
        super().__init__(options)
        self.http = options
        topics = Topics(settings.kafka.topic_prefix)
        self.dead_letter_topics = {d.name: topics.sink_dlq(f"{options.name}.{d.name}") for d in options.destinations}
        self.breakers = {
            d.name: CircuitBreaker(d.breaker_failures, d.breaker_reset_seconds) for d in options.destinations
        }
        self.keys = {d.name: [secret_key(s.get_secret_value()) for s in d.secrets] for d in options.destinations}
        self._accepted: dict[str, set[str]] = {d.name: set() for d in options.destinations}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(json_serialize=lambda o: orjson.dumps(o).decode())

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def backpressure(self) -> bool:
        return any(breaker.is_open for breaker in self.breakers.values())

    async def write_batch(
        self, events: list[Event], positions: list[Position] | None = None, encoded: list[bytes] | None = None
    ) -> BatchOutcome:
        size = self.http.max_events_per_request
        chunks = [(start, events[start : start + size]) for start in range(0, len(events), size)]
        results = await asyncio.gather(
            *(self._deliver_all(d, chunks) for d in self.http.destinations), return_exceptions=True
        )
        down = [
            f"{d.name}: {r}"
            for d, r in zip(self.http.destinations, results, strict=True)
            if isinstance(r, _Unavailable)
        ]
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, _Unavailable):
                raise result
        if down:
            # Kept: what each destination accepted of this batch is not sent again when the runner retries it.
            raise DestinationUnavailable("; ".join(down))
        for accepted in self._accepted.values():
            accepted.clear()
        outcome = BatchOutcome(written=len(events))
        for destination, result in zip(self.http.destinations, results, strict=True):
            failures = cast(list[tuple[int, list[Event], str]], result)
            topic = self.dead_letter_topics[destination.name]
            for start, chunk, reason in failures:
                outcome.poison.extend(
                    Poison(start + i, reason, f"destination {destination.name}", topic) for i in range(len(chunk))
                )
        # An event dead-lettered for one destination was still delivered to the others.
        outcome.written = len(events) - len({p.index for p in outcome.poison})
        return outcome

    async def _deliver_all(
        self, destination: Destination, chunks: list[tuple[int, list[Event]]]
    ) -> list[tuple[int, list[Event], str]]:
        """The chunks the destination refused, with why; raises _Unavailable when it does not take one now."""
        failures: list[tuple[int, list[Event], str]] = []
        pending = list(chunks)
        while pending:
            start, chunk = pending.pop(0)
            result = await self._deliver(destination, chunk)
            if result == TOO_LARGE and len(chunk) > 1:
                half = len(chunk) // 2
                pending[:0] = [(start, chunk[:half]), (start + half, chunk[half:])]
            elif result is not None:
                failures.append((start, chunk, result))
        return failures

    async def _deliver(self, destination: Destination, events: list[Event]) -> str | None:
        """None once the destination accepted the request (now or in an earlier try of this batch), else why it
        refused the content (``http_<status>``); raises _Unavailable past the retry budget."""
        msg_id = webhook_id(events)
        accepted = self._accepted[destination.name]
        if msg_id in accepted:
            return None
        breaker = self.breakers[destination.name]
        body = orjson.dumps(events)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + destination.max_elapsed_seconds
        reason = "circuit open"
        for attempt in range(destination.max_attempts):
            if breaker.is_open:
                wait = breaker.open_until - time.monotonic()
                if loop.time() + wait > deadline:
                    break
                await asyncio.sleep(wait)
            result = await self._post(destination, msg_id, body)
            if result.ok:
                breaker.success()
                if len(accepted) >= _ACCEPTED_KEPT:
                    accepted.clear()
                accepted.add(msg_id)
                return None
            if not result.retryable:
                return result.reason
            breaker.failure()
            reason = result.reason
            delay = min(destination.backoff_max_seconds, destination.backoff_initial_seconds * 2**attempt)
            delay = delay / 2 + random.uniform(0, delay / 2)
            if result.retry_after is not None:
                delay = max(delay, result.retry_after)
            if attempt + 1 >= destination.max_attempts or loop.time() + delay > deadline:
                break
            log.info(
                "destination retry",
                extra={"sink": self.name, "destination": destination.name, "reason": result.reason, "delay": delay},
            )
            await asyncio.sleep(delay)
        raise _Unavailable(reason)

    async def _post(self, destination: Destination, msg_id: str, body: bytes) -> _Attempt:
        assert self._session is not None, "start() first"
        timestamp = int(time.time())  # signed per attempt: receivers reject stale timestamps
        signatures = " ".join(sign(key, msg_id, timestamp, body) for key in self.keys[destination.name])
        headers: dict[str, Any] = {
            **destination.headers,
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signatures,
        }
        try:
            async with self._session.post(
                destination.url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=destination.timeout_seconds),
                allow_redirects=False,
            ) as response:
                status = response.status
                await _skip_body(response)
                if 200 <= status < 300:
                    return _Attempt(True, False, "ok")
                retryable = status >= 500 or status in RETRYABLE_STATUS or 300 <= status < 400
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
                return _Attempt(False, retryable, f"http_{status}", retry_after)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return _Attempt(False, True, f"unreachable: {type(exc).__name__}")
