"""The one interface every sink implements, and the options every sink shares.

Contract (what the runner relies on, promise 3 of the guide):
- ``write_batch`` returns only once the events it reports as written are durable at the destination;
  writing the same event twice leaves one copy (idempotent by event ``id``).
- A destination that cannot be reached raises ``DestinationUnavailable``: the runner keeps the offsets,
  backs off and calls again with the same batch. Nothing is lost, nothing is dead-lettered for it.
- A sink that lost buffered events it had reported written (``SinkStateLost``) makes the runner start over
  from the committed offsets.
- An event the destination refuses for what it contains is returned in ``BatchOutcome.poison`` with a
  reason; the runner sends it to the sink's dead-letter topic and moves on.
- ``committable`` says up to where offsets may be committed. Sinks that buffer across batches (files)
  hold it back until their buffer is durable.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from espwire.config import SinkConfig
from sinks.privacy import PrivacyConfig

Event = dict[str, Any]


class DestinationUnavailable(Exception):
    """The destination cannot take writes now (down, timing out, refusing connections): retry later."""


class SinkStateLost(Exception):
    """The sink dropped events it had taken but not yet made durable (a file write failed part way, so the
    file can no longer be trusted): the runner stops without committing and starts over from the committed
    offsets, which re-reads them."""


@dataclass(frozen=True, slots=True)
class Position:
    """Where an event was read: its partition and offset on espwire.events."""

    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Poison:
    """An event the destination refuses for its content; ``index`` points into the batch given."""

    index: int
    reason: str
    detail: str = ""
    # None: the sink's dead-letter topic; http_forward names one per destination.
    topic: str | None = None


@dataclass(slots=True)
class BatchOutcome:
    written: int = 0
    # Already durable from an earlier delivery, or filtered out by the sink's own rules.
    skipped: int = 0
    poison: list[Poison] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.poison


class SinkOptions(BaseModel):
    """The keys every ``[[sinks]]`` entry may have; each kind extends this with its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: str
    enabled: bool = True
    privacy: PrivacyConfig = PrivacyConfig()
    # One batch is at most this many events, gathered for at most this long.
    batch_max_events: int = Field(default=2000, ge=1, le=100_000)
    batch_wait_ms: int = Field(default=200, ge=1)
    # Batches read ahead of the one being written; past it the runner pauses the partitions.
    max_in_flight_batches: int = Field(default=2, ge=1, le=64)
    # How long the group waits for a silent (crashed) member before its partitions move to another.
    session_timeout_ms: int = Field(default=10_000, ge=1000)
    retry_initial_seconds: float = Field(default=0.2, gt=0)
    retry_max_seconds: float = Field(default=30.0, gt=0)
    # Where a new consumer group starts: every event kept on the topic, or only new ones (`espwire tail`).
    start_from: Literal["earliest", "latest"] = "earliest"

    @classmethod
    def from_config(cls, config: SinkConfig) -> Self:
        return cls.model_validate(config.model_dump())


class Sink(abc.ABC):
    """One destination. Built by ``sinks.registry.build_sink``, driven by ``sinks.runner.run_sink``."""

    options_model: ClassVar[type[SinkOptions]] = SinkOptions

    def __init__(self, options: SinkOptions) -> None:
        self.options = options
        self.name = options.name

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect, migrate, create what is missing. Raises DestinationUnavailable to be retried."""

    @abc.abstractmethod
    async def write_batch(
        self, events: list[Event], positions: list[Position] | None = None, encoded: list[bytes] | None = None
    ) -> BatchOutcome:
        """Writes the batch durably; ``positions[i]`` is where ``events[i]`` was read (None outside the runner).

        ``encoded[i]``, when given, is ``events[i]`` as the JSON it was read as, nothing in it changed since
        (the runner passes it when the sink's privacy settings keep everything): a sink that stores JSON may
        take it as it is instead of serialising the event again.
        """

    async def flush(self) -> None:  # noqa: B027 - optional hook
        """Makes everything buffered durable now (the runner calls it before a clean stop)."""

    async def maintain(self) -> None:  # noqa: B027 - optional hook
        """Called between batches and when idle: time-based work such as rolling files by age."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Releases connections; buffered data that was not flushed is dropped (its offsets were never committed)."""

    def committable(self, consumed: dict[int, int]) -> dict[int, int]:
        """Offsets (next to read, per partition) that may be committed, given those consumed and written."""
        return consumed

    def release(self, partitions: set[int]) -> None:  # noqa: B027 - optional hook
        """Partitions this process no longer owns: forget their buffered state (another member re-reads it)."""

    def backpressure(self) -> bool:
        """True while the destination asks for less (the runner stops fetching until it clears)."""
        return False
