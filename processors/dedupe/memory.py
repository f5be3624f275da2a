"""An in-process dedupe store for unit tests: the same state machine as the shared stores, no persistence.

Not for production: two processes never see each other's claims and a restart forgets everything.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from processors.dedupe.base import (
    Claim,
    ClaimEntry,
    Done,
    MessageEvent,
    MessageRecord,
    MessageState,
    Pending,
    State,
    apply_message_events,
    decide,
)


class MemoryDedupeStore:
    name = "memory"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._states: dict[str, tuple[State, float]] = {}  # id -> (state, expires_at)
        self._messages: dict[str, MessageRecord] = {}

    def _get(self, event_id: str, now: float) -> State | None:
        found = self._states.get(event_id)
        if found is None:
            return None
        if found[1] <= now:
            del self._states[event_id]
            return None
        return found[0]

    async def begin(self, entries: Sequence[ClaimEntry], owner: str, lease_seconds: float) -> list[Claim]:
        now = self._clock()
        claims: list[Claim] = []
        for event_id, fingerprint, ttl in entries:
            current = self._get(event_id, now)
            claim, write = decide(current, fingerprint, owner, now, lease_seconds)
            if write is not None:
                self._states[event_id] = (write, now + ttl)
            claims.append(claim)
        return claims

    async def commit(self, entries: Sequence[ClaimEntry], owner: str) -> None:
        now = self._clock()
        for event_id, fingerprint, ttl in entries:
            current = self._get(event_id, now)
            if isinstance(current, Done):
                continue  # the first publication's content stays the reference
            self._states[event_id] = (Done(fingerprint), now + ttl)

    async def release(self, ids: Sequence[str], owner: str) -> None:
        now = self._clock()
        for event_id in ids:
            current = self._get(event_id, now)
            if isinstance(current, Pending) and current.owner == owner:
                del self._states[event_id]

    async def note_message_events(self, items: Sequence[MessageEvent], ttl_seconds: float) -> list[MessageState]:
        return apply_message_events(self._messages, items, self._clock(), ttl_seconds)

    async def close(self) -> None:
        self._states.clear()
        self._messages.clear()
