"""Kafka router sink: re-publishes events to further topics by rules (type glob, provider, source, field equality).

Each route names a topic template such as ``{prefix}.{type}`` (-> ``espwire.email.bounced``); an
event goes to every topic of every route it matches, once per topic. Topics are created on first use
with the configured partitions. Records keep the key (subject, else id), the value and the CloudEvents
headers (``ce_id`` ...), so downstream partitioning and routing work the same as on espwire.events.

Delivery: at least once, plainly. Kafka has no "insert if absent": a batch re-published after a crash
before its offsets were committed appears twice on the routed topics (Tansu refuses idempotent and
transactional producers, so no broker-side fix either). Each copy has the same key and the same
``ce_id``; downstream consumers must deduplicate by ``ce_id`` (the processor's dedupe stores do that).
Offsets are committed only after every routed record is acknowledged with acks=all.
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
from typing import Any, ClassVar

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from espwire.config import Settings
from espwire.topics import MAX_RECORD_BYTES, ensure_topics
from sinks.base import BatchOutcome, DestinationUnavailable, Event, Poison, Position, Sink, SinkOptions

_TOPIC_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MISSING = object()
TOPIC_FIELDS = ("prefix", "type", "provider", "source_id", "sink")


class RouteMatch(BaseModel):
    """Every given condition must hold; each list means "any of these"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: list[str] = Field(default_factory=list)  # globs: "email.*"
    provider: list[str] = Field(default_factory=list)
    source: list[str] = Field(default_factory=list)  # globs over data.source_id
    # Dotted paths into the event and the value they must equal: {"data.bounce.severity" = "hard"}.
    where: dict[str, str | int | float | bool | None] = Field(default_factory=dict)

    def matches(self, event: Event) -> bool:
        data = event.get("data") or {}
        if self.type and not any(fnmatch.fnmatchcase(str(event.get("type")), g) for g in self.type):
            return False
        if self.provider and data.get("provider") not in self.provider:
            return False
        if self.source and not any(fnmatch.fnmatchcase(str(data.get("source_id")), g) for g in self.source):
            return False
        return all(field_value(event, path) == value for path, value in self.where.items())


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    match: RouteMatch = RouteMatch()
    # Fields: {prefix} {type} {provider} {source_id} {sink}
    topic: str = Field(min_length=1)

    @field_validator("topic")
    @classmethod
    def _known_fields(cls, topic: str) -> str:
        # Checked here, so `espwire config check` names a typo ("{tpye}"): at the first event it raised
        # KeyError out of write_batch and stopped the sink, again after every restart.
        try:
            topic.format(**dict.fromkeys(TOPIC_FIELDS, "x"))
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            raise ValueError(f"the topic may use only the fields {{{'} {'.join(TOPIC_FIELDS)}}}: {exc!r}") from exc
        return topic


class KafkaRouterOptions(SinkOptions):
    routes: list[Route] = Field(min_length=1)
    # Partitions and replication of the topics the router creates (default: the [kafka] section's).
    partitions: int | None = Field(default=None, ge=1)
    replication: int | None = Field(default=None, ge=1)


def field_value(event: Event, path: str) -> Any:
    value: Any = event
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def event_headers(event: Event) -> list[tuple[str, bytes]]:
    """CloudEvents Kafka binding headers, the same set the processor writes on espwire.events."""
    headers = [
        ("ce_specversion", str(event.get("specversion", "1.0")).encode()),
        ("ce_id", str(event["id"]).encode()),
        ("ce_source", str(event.get("source", "")).encode()),
        ("ce_type", str(event.get("type", "")).encode()),
        ("ce_time", str(event.get("time", "")).encode()),
        ("content-type", b"application/cloudevents+json"),
    ]
    subject = event.get("subject")
    if subject:
        headers.append(("ce_subject", str(subject).encode()))
    return headers


class KafkaRouterSink(Sink):
    options_model: ClassVar[type[SinkOptions]] = KafkaRouterOptions

    def __init__(self, options: KafkaRouterOptions, settings: Settings, bootstrap: str | None = None) -> None:
        super().__init__(options)
        self.router = options
        self.settings = settings
        self.bootstrap = bootstrap or settings.kafka.bootstrap
        self.partitions = options.partitions or settings.kafka.partitions
        self.replication = options.replication or settings.kafka.replication
        self._producer: AIOKafkaProducer | None = None
        self._topics: set[str] = set()

    def topics_for(self, event: Event) -> list[str]:
        """The topics ``event`` goes to, each once, in route order."""
        data = event.get("data") or {}
        fields = {
            "prefix": self.settings.kafka.topic_prefix,
            "type": event.get("type", "unknown"),
            "provider": data.get("provider", "unknown"),
            "source_id": data.get("source_id", "unknown"),
            "sink": self.name,
        }
        topics: list[str] = []
        for route in self.router.routes:
            if route.match.matches(event):
                topic = _TOPIC_UNSAFE.sub("_", route.topic.format(**fields))[:249]
                if topic not in topics:
                    topics.append(topic)
        return topics

    async def start(self) -> None:
        if not self.bootstrap:
            raise ValueError("the kafka_router sink needs a bootstrap address")
        if self._producer is not None:
            return
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id=f"{self.settings.kafka.client_id}-router-{self.name}",
            acks="all",
            enable_idempotence=False,  # Tansu refuses it: downstream dedupes by ce_id
            linger_ms=5,
            max_batch_size=512 * 1024,
            max_request_size=MAX_RECORD_BYTES,
            compression_type=self.settings.kafka.compression,
        )
        try:
            await producer.start()
        except KafkaConnectionError as exc:
            await producer.stop()
            raise DestinationUnavailable(f"Kafka unreachable: {exc!r}") from exc
        self._producer = producer

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def write_batch(
        self, events: list[Event], positions: list[Position] | None = None, encoded: list[bytes] | None = None
    ) -> BatchOutcome:
        producer = self._producer
        if producer is None:
            raise DestinationUnavailable("the sink is not started")
        outcome = BatchOutcome()
        routed = [(index, event, self.topics_for(event)) for index, event in enumerate(events)]
        missing = sorted({t for _, _, topics in routed for t in topics} - self._topics)
        if missing:
            try:
                await ensure_topics(self.bootstrap or "", missing, self.partitions, self.replication)
                # Wait for the new topics' metadata here: a send to a topic the producer does not
                # know yet would sit out its whole request timeout on a freshly created topic.
                for topic in missing:
                    await asyncio.wait_for(producer.partitions_for(topic), 30)
            except (KafkaError, TimeoutError) as exc:
                raise DestinationUnavailable(f"cannot create topics: {exc!r}") from exc
            self._topics.update(missing)
        pending: list[tuple[int, asyncio.Future[Any]]] = []
        try:
            for index, event, topics in routed:
                if not topics:
                    outcome.skipped += 1
                    continue
                subject = event.get("subject")
                key = str(subject).encode() if subject else str(event["id"]).encode()
                value = orjson.dumps(event)
                headers = event_headers(event)
                for topic in topics:
                    try:
                        pending.append((index, await producer.send(topic, value, key=key, headers=headers)))
                    except KafkaError as exc:
                        if exc.retriable:
                            raise
                        outcome.poison.append(Poison(index, "refused_by_kafka", repr(exc)[:500]))
            results = await asyncio.gather(*(future for _, future in pending), return_exceptions=True)
        except KafkaError as exc:
            raise DestinationUnavailable(f"Kafka unavailable: {exc!r}") from exc
        failed: set[int] = {p.index for p in outcome.poison}
        for (index, _), result in zip(pending, results, strict=True):
            if isinstance(result, KafkaError) and not result.retriable:
                if index not in failed:
                    outcome.poison.append(Poison(index, "refused_by_kafka", repr(result)[:500]))
                    failed.add(index)
            elif isinstance(result, BaseException):
                # Not acknowledged: the whole batch is sent again (at least once, see the module docstring).
                raise DestinationUnavailable(f"Kafka did not acknowledge: {result!r}") from result
        outcome.written = len({index for index, _ in pending} - failed)
        return outcome
