"""The dedupe store contract: a per-event-id claim state machine, batched, shared by every processor.

Guarantees every backend keeps: a whole ``begin``/``commit``/``release``/``note_message_events`` call is
atomic and costs one round trip; each id moves absent -> pending(owner, lease) -> done(fingerprint) and
a done id is never published again within its window; a pending claim outlives its lease (it expires
with the window) so a takeover after a crash is reported as IN_DOUBT rather than silently as NEW.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, NamedTuple, Protocol


class ClaimStatus(StrEnum):
    NEW = "new"  # ours now: publish, then commit
    DUPLICATE = "duplicate"  # done with the same content: drop
    CONFLICT = "conflict"  # done with other content under the same id: dead-letter
    BUSY = "busy"  # another live owner holds the lease: wait and retry
    IN_DOUBT = "in_doubt"  # ours now, but another owner's lease lapsed mid-flight: check the output first


@dataclass(frozen=True, slots=True)
class Claim:
    status: ClaimStatus
    # IN_DOUBT and BUSY: who held the claim and since when (epoch seconds), to bound the output search.
    previous_owner: str | None = None
    pending_since: float | None = None
    # IN_DOUBT: the fingerprint the lapsed claim was taken for (what went out, if anything did).
    previous_fingerprint: str | None = None


MessageEventKind = Literal["delivered", "clicked"]


class MessageState(NamedTuple):
    """What the bot-click rules need about one message, after the whole batch was recorded (a named
    tuple: one is built per delivery and click, at half the cost of a frozen dataclass)."""

    delivered_at: float | None  # earliest delivery seen, epoch seconds
    # For a click: distinct links of this message clicked in the same whole second as it (itself included).
    links_in_same_second: int = 0


# (event id, content fingerprint, window in seconds)
ClaimEntry = tuple[str, str, float]
# (message key, kind, epoch seconds, detail: the link for a click)
MessageEvent = tuple[str, MessageEventKind, float, str]


class DedupeStoreError(Exception):
    """The store could not answer. ``retriable``: a later try may work (connection, timeout, lock)."""

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


class DedupeStore(Protocol):
    name: str

    async def begin(self, entries: Sequence[ClaimEntry], owner: str, lease_seconds: float) -> list[Claim]:
        """Claims each id for ``owner``; one Claim per entry, in order.

        An id repeated within one call is the same owner's retry, so NEW both times: the caller keeps
        one event per id before calling (the later copies are duplicates by definition).
        """
        ...

    async def commit(self, entries: Sequence[ClaimEntry], owner: str) -> None:
        """Marks the ids published: done(fingerprint) for their window."""
        ...

    async def release(self, ids: Sequence[str], owner: str) -> None:
        """Drops our pending claims (the batch failed before publishing)."""
        ...

    async def note_message_events(self, items: Sequence[MessageEvent], ttl_seconds: float) -> list[MessageState]:
        """Records deliveries and clicks per message; one MessageState per item, as after the whole batch."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Pending:
    owner: str
    since: float
    lease_until: float
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Done:
    fingerprint: str


State = Pending | Done


def decide(
    current: State | None, fingerprint: str, owner: str, now: float, lease_seconds: float
) -> tuple[Claim, Pending | None]:
    """One id's transition: the answer, and the pending state to write (None: leave it as it is).

    The Redis Lua script implements the same table; tests run both against the same cases.
    """
    if current is None:
        return Claim(ClaimStatus.NEW), Pending(owner, now, now + lease_seconds, fingerprint)
    if isinstance(current, Done):
        status = ClaimStatus.DUPLICATE if current.fingerprint == fingerprint else ClaimStatus.CONFLICT
        return Claim(status), None
    if current.owner == owner:
        # A retry by the same process: keep the first claim time, extend the lease.
        return Claim(ClaimStatus.NEW), Pending(owner, current.since, now + lease_seconds, fingerprint)
    if current.lease_until > now:
        return Claim(ClaimStatus.BUSY, current.owner, current.since), None
    return Claim(ClaimStatus.IN_DOUBT, current.owner, current.since, current.fingerprint), Pending(
        owner, now, now + lease_seconds, fingerprint
    )


@functools.lru_cache(maxsize=16_384)
def link_token(link: str) -> str:
    """A short stable token for a link, so per-message state stays small whatever the URL length (cached:
    a campaign's links repeat in every click on it)."""
    return hashlib.blake2b(link.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()


@dataclass(slots=True)
class MessageRecord:
    """Per-message timing state kept by the memory and SQLite stores (Redis keeps the same in a hash)."""

    delivered_at: float | None
    clicks: dict[int, set[str]]  # whole epoch second -> link tokens clicked in it
    expires_at: float


def apply_message_events(
    records: dict[str, MessageRecord], items: Sequence[MessageEvent], now: float, ttl_seconds: float
) -> list[MessageState]:
    """Records every item first, then answers each from the final state: a burst of clicks inside one
    batch flags all its clicks, not only the later ones."""
    for key, kind, moment, detail in items:
        record = records.get(key)
        if record is None or record.expires_at <= now:
            record = records[key] = MessageRecord(None, {}, now + ttl_seconds)
        record.expires_at = now + ttl_seconds
        if kind == "delivered":
            if record.delivered_at is None or moment < record.delivered_at:
                record.delivered_at = moment
        else:
            record.clicks.setdefault(int(moment), set()).add(link_token(detail))
    answers: list[MessageState] = []
    for key, kind, moment, _ in items:
        record = records[key]
        same_second = len(record.clicks.get(int(moment), ())) if kind == "clicked" else 0
        answers.append(MessageState(record.delivered_at, same_second))
    return answers
