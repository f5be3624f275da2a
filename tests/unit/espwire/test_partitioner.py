"""The batch partitioner must place keys exactly where Kafka's default partitioner (here aiokafka's) would."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as reference
from hypothesis import given
from hypothesis import strategies as st

from espwire.partitioner import VECTOR_KEY_BYTES, kafka_partitions, murmur2_many


@given(st.lists(st.binary(max_size=80), max_size=40), st.integers(min_value=1, max_value=64))
def test_same_hash_and_partition_as_kafkas_default(keys: list[bytes], partitions: int) -> None:
    assert murmur2_many(keys).tolist() == [reference(key) & 0xFFFFFFFF for key in keys]
    every = list(range(partitions))
    assert kafka_partitions(keys, partitions) == [DefaultPartitioner()(key, every, every) for key in keys]


def test_every_tail_length_and_a_long_key_beside_short_ones() -> None:
    # Keys of one batch differ in length: each must be hashed over its own words and tail only.
    keys = [b"", b"a", b"ab", b"abc", b"abcd", b"abcde", "r\u00e9cipient@example.org".encode(), b"x" * 1000]
    assert murmur2_many(keys).tolist() == [reference(key) & 0xFFFFFFFF for key in keys]
    assert kafka_partitions([], 3) == []


@given(st.lists(st.binary(min_size=VECTOR_KEY_BYTES - 3, max_size=VECTOR_KEY_BYTES + 600), max_size=6))
def test_keys_around_and_past_the_vector_width(keys: list[bytes]) -> None:
    # Past VECTOR_KEY_BYTES a key is hashed alone (one odd key must not widen its whole batch's matrix).
    mixed = [b"short@example.com", *keys, b"another@example.org"]
    assert murmur2_many(mixed).tolist() == [reference(key) & 0xFFFFFFFF for key in mixed]
    assert murmur2_many(keys).tolist() == [reference(key) & 0xFFFFFFFF for key in keys]
