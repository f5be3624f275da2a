"""Dead letters: what could not become events, kept whole with the reason, and replayable.

A dead-letter record is the raw record itself (same value, same envelope header) plus one more
header saying why. Replaying puts it back on espwire.raw unchanged, so the fingerprint-based event
ids come out the same and a partial earlier success is deduplicated, not doubled.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from espwire.clock import parse_utc, utc_now
from espwire.config import Settings
from espwire.envelope import ENVELOPE_HEADER, Envelope
from espwire.topics import MAX_RECORD_BYTES, Topics
from processors.adapters import ADAPTERS
from processors.adapters.base import Adapter, Failure

DLQ_HEADER = "espwire-dlq"


def dead_letter_headers(envelope: Envelope, failures: list[Failure], adapter_version: str) -> list[tuple[str, bytes]]:
    first = failures[0]
    info: dict[str, Any] = {
        "reason": first.reason,
        "detail": first.detail,
        "failures": [{"reason": f.reason, "detail": f.detail, "index": f.index} for f in failures[:50]],
        "provider": envelope.provider,
        "source_id": envelope.source_id,
        "adapter_version": adapter_version,
        "failed_at": utc_now(),
    }
    return [*envelope.kafka_headers(), (DLQ_HEADER, orjson.dumps(info))]


def dead_letter_info(headers: Any) -> dict[str, Any] | None:
    for name, value in headers or ():
        if name == DLQ_HEADER:
            info: dict[str, Any] = orjson.loads(value)
            return info
    return None


def written_by_older_adapter(info: dict[str, Any], adapters: Mapping[str, Adapter]) -> bool:
    """Refused by another version of its provider's adapter than the one running now (or by no adapter, for a
    provider espwire knows now): a fixed mapping may read it. A record this version refused would only fail again."""
    adapter = adapters.get(str(info.get("provider")))
    return adapter is not None and info.get("adapter_version") != adapter.version


async def _dead_letters(bootstrap: str, topic: str, idle_ms: int) -> AsyncIterator[Any]:
    """Every record of the dead-letter topic, from its start until it has been idle ``idle_ms``."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"espwire-replay-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        while batch := await consumer.getmany(timeout_ms=idle_ms):
            for records in batch.values():
                for record in records:
                    yield record
    finally:
        await consumer.stop()


@dataclass(frozen=True, slots=True)
class Selection:
    """Which dead letters a replay or a listing takes (``espwire replay dlq`` options)."""

    since: datetime | None = None  # dead-lettered at or after this instant
    source: str | None = None
    reason: str | None = None
    stale: bool = False

    def takes(self, info: dict[str, Any], adapters: Mapping[str, Adapter]) -> bool:
        if self.source and info.get("source_id") != self.source:
            return False
        if self.since and (not info.get("failed_at") or parse_utc(info["failed_at"]) < self.since):
            return False
        if self.reason and info.get("reason") != self.reason:
            return False
        return not self.stale or written_by_older_adapter(info, adapters)


async def list_dead_letters(
    settings: Settings,
    bootstrap: str,
    selection: Selection | None = None,
    *,
    adapters: Mapping[str, Adapter] = ADAPTERS,
    idle_ms: int = 2000,
) -> AsyncIterator[dict[str, Any]]:
    """What ``replay`` would look at, for people to read: each dead letter's reason and details, its key,
    offset and size, and whether it is a request (replayable) or a single event."""
    selection = selection or Selection()
    async for record in _dead_letters(bootstrap, Topics(settings.kafka.topic_prefix).dlq, idle_ms):
        info = dead_letter_info(record.headers) or {}
        if not selection.takes(info, adapters):
            continue
        yield {
            **info,
            "key": record.key.decode("utf-8", "replace") if record.key is not None else None,
            "partition": record.partition,
            "offset": record.offset,
            "bytes": len(record.value or b""),
            "request": any(name == ENVELOPE_HEADER for name, _ in record.headers),
        }


async def replay_dead_letters(
    settings: Settings,
    bootstrap: str,
    selection: Selection | None = None,
    *,
    adapters: Mapping[str, Adapter] = ADAPTERS,
    idle_ms: int = 2000,
) -> int:
    """Reads the whole dead-letter topic and re-submits the matching requests to espwire.raw, each once.

    A request that failed again after a replay has several dead letters (keyed alike, by its request id):
    it is sent once. ``selection.stale``: only what an older version of its provider's adapter refused
    (``written_by_older_adapter``), and not a request the running version refused too (it would only fail
    again), so replaying after each upgrade re-submits only what the upgrade may now read.
    """
    selection = selection or Selection()
    topics = Topics(settings.kafka.topic_prefix)
    topic = topics.dlq
    refused_now: set[bytes] = set()
    if selection.stale:
        async for record in _dead_letters(bootstrap, topic, idle_ms):
            if record.key is not None and not written_by_older_adapter(
                dead_letter_info(record.headers) or {}, adapters
            ):
                refused_now.add(record.key)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        max_request_size=MAX_RECORD_BYTES,  # a request as large as the gateway takes (aiokafka's default: 1 MB)
    )
    await producer.start()
    sent: set[bytes] = set()
    futures = []
    try:
        async for record in _dead_letters(bootstrap, topic, idle_ms):
            if not selection.takes(dead_letter_info(record.headers) or {}, adapters):
                continue
            if record.key is not None and (record.key in sent or record.key in refused_now):
                continue
            headers = [(k, v) for k, v in record.headers if k == ENVELOPE_HEADER]
            if not headers:
                continue  # an event-level dead letter (e.g. conflicting_duplicate): for people, not replay
            if record.key is not None:
                sent.add(record.key)
            futures.append(await producer.send(topics.raw, record.value, key=record.key, headers=headers))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(futures)
