"""Hypothesis pieces the adapter property tests share: mutated fixture bodies, random JSON, and what
every adapter result must look like whatever the input."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from hypothesis import strategies as st

from espwire.event import EVENT_ADAPTER
from processors.adapters.base import AdaptResult, Failure

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
FIELD_VALUES = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30) | JSON_VALUES
)
# Random JSON with short strings and keys, for the adapters' field-level property tests.
SMALL_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def mutated(bodies: Sequence[bytes], inserts: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    """A fixture body with 1-4 bytes flipped, cut, inserted (random or ``inserts``) or deleted."""

    @st.composite
    def strategy(draw: st.DrawFn) -> bytes:
        body = bytearray(draw(st.sampled_from(list(bodies))))
        for _ in range(draw(st.integers(1, 4))):
            position = draw(st.integers(0, len(body)))
            action = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
            if action == "flip" and position < len(body):
                body[position] ^= 1 << draw(st.integers(0, 7))
            elif action == "cut":
                del body[position:]
            elif action == "insert":
                body[position:position] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from(list(inserts)))
            elif position < len(body):
                del body[position]
        return bytes(body)

    return strategy()


# A list of edits applied in order, for shrinkable mutation tests: (kind, position, bytes).
Mutation = tuple[str, int, bytes]
MUTATIONS = st.lists(
    st.tuples(st.sampled_from(["flip", "cut", "insert"]), st.integers(0, 1 << 20), st.binary(min_size=1)),
    min_size=1,
    max_size=6,
)


def mutate(body: bytes, mutations: list[Mutation]) -> bytes:
    data = bytearray(body)
    for kind, position, chunk in mutations:
        at = position % (len(data) + 1)
        if kind == "flip" and data:
            data[at % len(data)] ^= chunk[0] or 1
        elif kind == "cut":
            del data[at : at + len(chunk) * 4]
        else:
            data[at:at] = chunk
    return bytes(data)


def assert_well_formed(result: AdaptResult) -> None:
    """Valid, encodable events and failures with a reason: never anything else."""
    assert isinstance(result, AdaptResult)
    for event in result.events:
        EVENT_ADAPTER.validate_python(event)
        orjson.dumps(event)
    for failure in result.failures:
        assert isinstance(failure, Failure) and failure.reason
