"""Our murmur2 must place keys exactly where Kafka's default partitioner (here aiokafka's) would."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as reference
from hypothesis import given
from hypothesis import strategies as st

from espwire.kafka_batches import _partition_of, murmur2


@given(st.binary(max_size=80), st.integers(min_value=1, max_value=64))
def test_same_hash_and_partition_as_kafkas_default(key: bytes, partitions: int) -> None:
    assert murmur2(key) == reference(key) & 0xFFFFFFFF
    every = list(range(partitions))
    assert _partition_of(key, partitions) == DefaultPartitioner()(key, every, every)
