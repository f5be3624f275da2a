"""What every provider adapter is: one envelope in, events and failures out, never an exception.

Following Snowplow's adapters, a body that cannot be understood is a value (``Failure``) with a
reason, which the processor turns into a dead-letter record that can be replayed after a fix.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from espwire.envelope import Envelope
from espwire.event import CanonicalEvent


@dataclass(frozen=True, slots=True)
class Failure:
    """Why (part of) an envelope could not be turned into events.

    ``reason`` is a short stable code used as a metric label and in the dead-letter record
    (e.g. ``invalid_json``, ``duplicate_keys``, ``too_deep``, ``empty_body``); ``detail`` is for people.
    """

    reason: str
    detail: str = ""
    index: int | None = None  # position of the event in a batch, when only that event failed


@dataclass(slots=True)
class AdaptResult:
    events: list[CanonicalEvent] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


class GuardedAdapter(abc.ABC):
    """Base of the provider adapters: ``adapt`` never raises, whatever ``_adapt`` does."""

    provider: ClassVar[str]
    version: ClassVar[str]

    def adapt(self, envelope: Envelope) -> AdaptResult:
        try:
            return self._adapt(envelope)
        except Exception as exc:  # a bug must become a dead letter, never a crashed consumer
            return AdaptResult(failures=[Failure("adapter_error", repr(exc)[:500])])

    @abc.abstractmethod
    def _adapt(self, envelope: Envelope) -> AdaptResult: ...


class Adapter(Protocol):
    provider: ClassVar[str]
    # Bumped whenever the events or failures it gives change, for any input (tests/unit/processors/adapters/
    # test_adapter_versions.py catches what the recorded cases show), recorded in dead letters: `replay dlq
    # --stale` re-submits what an older version refused.
    version: ClassVar[str]

    def adapt(self, envelope: Envelope) -> AdaptResult:
        """Turn one raw request into canonical events. Must never raise."""
        ...
