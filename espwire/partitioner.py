"""Kafka's default partitioner for many keys at once: murmur2 of every key of a batch in a few numpy passes.

The processor keys each event by its recipient, so a recipient's events stay in order on one
partition, and it must pick that partition exactly as Kafka's own clients do (positive murmur2 of
the key, modulo the partition count): a Kafka Streams or ksqlDB join of ``espwire.events`` with
another topic keyed by address relies on that co-partitioning. Recipients hardly repeat on a big
list, so a cache does not help; murmur2 in Python cost ~6 µs a key on the 2026-12-03 VM (a Python
loop over 32-bit words), a sixteenth of the processor's CPU an event. Here every key of a slice is
hashed together: the keys are padded with zero bytes into one matrix of little-endian words, and
each word column is mixed into the hashes of the keys that long, with numpy's wrapping uint32
arithmetic. A key longer than ``VECTOR_KEY_BYTES`` (no real address is) is hashed alone by aiokafka's
murmur2, so that one odd key cannot widen the matrix of its whole batch. Tested equal to aiokafka's
murmur2 on arbitrary bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from aiokafka.partitioner import murmur2

VECTOR_KEY_BYTES = 256

_SEED = 0x9747B28C
_M = np.uint32(0x5BD1E995)


def murmur2_many(keys: Sequence[bytes]) -> npt.NDArray[np.uint32]:
    """Kafka's murmur2 (the Java client's ``Utils.murmur2``) of each key, as unsigned 32-bit values."""
    lengths = np.fromiter(map(len, keys), dtype=np.uint32, count=len(keys))
    long = np.flatnonzero(lengths > VECTOR_KEY_BYTES)
    if not len(long):
        return _murmur2_short(keys, lengths)
    hashes = np.empty(len(keys), dtype=np.uint32)
    short = np.flatnonzero(lengths <= VECTOR_KEY_BYTES)
    hashes[short] = _murmur2_short([keys[i] for i in short.tolist()], lengths[short])
    hashes[long] = [murmur2(keys[i]) & 0xFFFFFFFF for i in long.tolist()]
    return hashes


def _murmur2_short(keys: Sequence[bytes], lengths: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    count = len(keys)
    # One word more than the longest key needs: the tail's three bytes can always be read, as zeros past a key's end.
    width = (int(lengths.max(initial=0)) // 4 + 1) * 4
    padded = np.frombuffer(b"".join(key.ljust(width, b"\0") for key in keys), dtype=np.uint8).reshape(count, width)
    words = padded.view("<u4")
    whole = lengths // 4
    h = np.uint32(_SEED) ^ lengths
    for column in range(width // 4 - 1):
        k = words[:, column] * _M
        k ^= k >> 24
        k *= _M
        h = np.where(whole > column, (h * _M) ^ k, h)
    rows = np.arange(count)
    start = (whole * 4).astype(np.intp)
    # Zero padding makes the XOR of absent tail bytes a no-op, so all three are taken for every key.
    tail = (
        padded[rows, start].astype(np.uint32)
        | (padded[rows, start + 1].astype(np.uint32) << 8)
        | (padded[rows, start + 2].astype(np.uint32) << 16)
    )
    h = np.where((lengths & 3) != 0, (h ^ tail) * _M, h)
    h ^= h >> 13
    h *= _M
    h ^= h >> 15
    return h


def kafka_partitions(keys: Sequence[bytes], partition_count: int) -> list[int]:
    """The partition Kafka's default partitioner gives each key among ``partition_count``."""
    if not keys:
        return []
    hashes = murmur2_many(keys) & np.uint32(0x7FFFFFFF)
    return (hashes % np.uint32(partition_count)).tolist()  # type: ignore[no-any-return]
