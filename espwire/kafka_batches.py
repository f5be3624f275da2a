"""Publishes many records as whole Kafka batches, one per partition, and waits for acks=all.

Shared so that any stage publishing many records at once can use it (the processor does).

aiokafka's ``send`` costs ~10 µs of Python per record (a future, the accumulator, a partition
lookup); building each partition's batch directly and handing it over with ``send_batch`` halves
the cost per record. Partitions are chosen exactly as ``send`` would (murmur2 of the key, Kafka's
default), so one recipient's events still land on one partition.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import struct
from collections.abc import Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer


class Record(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes: ...
    @property
    def headers(self) -> list[tuple[str, bytes]]: ...


_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (Java client ``Utils.murmur2``), as aiokafka's, reading whole 32-bit words at
    once: about twice as fast as aiokafka's byte-by-byte loop, and tested equal to it."""
    length = len(data)
    h = 0x9747B28C ^ length
    words = length // 4
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        rest = data[words * 4 :]
        if tail >= 3:
            h ^= rest[2] << 16
        if tail >= 2:
            h ^= rest[1] << 8
        h ^= rest[0]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


@functools.lru_cache(maxsize=65536)
def _partition_of(key: bytes, partition_count: int) -> int:
    # Kafka's default partitioner: positive murmur2 of the key modulo the partition count. A
    # recipient's events repeat, so the answer is remembered too.
    return (murmur2(key) & 0x7FFFFFFF) % partition_count


class BatchPublisher:
    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self._round_robin = itertools.count()

    async def _partitions(self, topic: str) -> list[int]:
        partitions = await self.producer.partitions_for(topic)
        if not partitions:
            raise RuntimeError(f"topic {topic} has no partitions")
        return sorted(partitions)

    async def send(self, records: Sequence[Record]) -> asyncio.Future[Any]:
        """Hands every record to the producer; the returned future resolves once all are acknowledged."""
        futures: list[asyncio.Future[Any]] = []
        builders: dict[tuple[str, int], Any] = {}
        partitions_of: dict[str, list[int]] = {}
        for record in records:
            partitions = partitions_of.get(record.topic)
            if partitions is None:
                partitions = partitions_of[record.topic] = await self._partitions(record.topic)
            if record.key is None:
                partition = partitions[next(self._round_robin) % len(partitions)]
            else:
                partition = partitions[_partition_of(record.key, len(partitions))]
            slot = (record.topic, partition)
            builder = builders.get(slot)
            if builder is None:
                builder = builders[slot] = self.producer.create_batch()
            if builder.append(key=record.key, value=record.value, timestamp=None, headers=record.headers) is None:
                # Full: ship it and start the next one for this partition.
                futures.append(await self.producer.send_batch(builder, record.topic, partition=partition))
                builder = builders[slot] = self.producer.create_batch()
                if builder.append(key=record.key, value=record.value, timestamp=None, headers=record.headers) is None:
                    raise ValueError(f"a record of {len(record.value)} bytes is larger than a whole batch")
        for (topic, partition), builder in builders.items():
            futures.append(await self.producer.send_batch(builder, topic, partition=partition))
        acked: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*futures))
        return acked
