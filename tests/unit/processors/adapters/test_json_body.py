"""The strict parser's rules, and that the orjson fast path always agrees with the strict path."""

from __future__ import annotations

import contextlib
import gc
import json
import weakref
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.adapters.json_body import (
    _DECODER,
    WRITE_MARGIN,
    BodyError,
    decode_text,
    parse_json,
    parse_json_lenient,
    parse_json_writable,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)


@given(st.lists(json_values, max_size=4) | st.dictionaries(st.text(max_size=8), json_values, max_size=4))
def test_fast_path_agrees_with_the_strict_parser(value: Any) -> None:
    for text in (json.dumps(value, separators=(",", ":"), ensure_ascii=False), json.dumps(value, indent=1)):
        try:
            strict = _DECODER.decode(text)
        except BodyError:
            with pytest.raises(BodyError):
                parse_json(text.encode())
            continue
        assert parse_json(text.encode()) == strict


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"a":1,"a":2}', "duplicate_keys"),
        (b'[{"x":{"a":1,"a":1}}]', "duplicate_keys"),
        (b"[NaN]", "nan_infinity"),
        (b"[1e400]", "number_out_of_range"),
        (b"[" + b"9" * 5000 + b"]", "number_too_long"),
        (b"[" * 600 + b"]" * 600, "too_deep"),
        (b'["\xc3\x28"]', "invalid_utf8"),
        (b'["a\x00b"]', "invalid_json"),
        (b"  \n", "empty_body"),
    ],
)
def test_hostile_bodies_are_refused_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(BodyError) as refused:
        parse_json_lenient(body)
    assert refused.value.reason == reason


def test_big_integers_and_leading_zeros_keep_their_digits() -> None:
    assert parse_json(b"[9007199254740993,9007199254740992,-9007199254740993]") == [
        "9007199254740993",
        9007199254740992,
        "-9007199254740993",
    ]
    assert parse_json(b'{"t":123456789012345678901234567890}') == {"t": "123456789012345678901234567890"}
    assert parse_json_lenient(b'{"mailing_id": 000001, "n": 10001, "s": "007"}') == {
        "mailing_id": "000001",
        "n": 10001,
        "s": "007",
    }


def test_bracketless_objects_are_a_batch() -> None:
    assert parse_json_lenient(b'{"a":1},\n\n{"a":2},\n') == [{"a": 1}, {"a": 2}]


def test_writable_says_whether_the_fast_path_proved_the_body() -> None:
    assert parse_json_writable(b'[{"a":1}]\n') == ([{"a": 1}], True)
    assert parse_json_writable(b'[{"a": 1}]') == ([{"a": 1}], False)  # not compact: strict path, same value
    assert parse_json_writable(b'{"a":9007199254740993}') == ({"a": "9007199254740993"}, False)
    with pytest.raises(BodyError):
        parse_json_writable(b'{"a":1,"a":2}')


def test_the_fast_path_keeps_the_write_margin() -> None:
    """orjson writes 254 levels: a body the fast path accepts can be nested WRITE_MARGIN levels deeper."""
    limit = 254 - WRITE_MARGIN
    assert parse_json_writable(b"[" * limit + b"]" * limit)[1]
    deeper = b"[" * (limit + 1) + b"]" * (limit + 1)
    assert parse_json_writable(deeper) == (parse_json(deeper), False)
    value: Any = []
    for _ in range(limit - 1 + WRITE_MARGIN):
        value = [value]
    orjson.dumps(value)


@pytest.mark.parametrize(
    "body",
    [
        b'[{"a":1},{"b":[2,3]}]',
        b'{"a":1}',
        b'\xef\xbb\xbf{"a":1}',
        b'{"mailing_id": 000001}',
        b'{"a":1},{"a":2},',
        b'[{"t":123456789012345678901234567890}]',
        b'{"a":1,"a":2}',
        b"[NaN]",
        b'["\xc3\x28"]',
        b"",
    ],
)
def test_lenient_parsing_of_bytes_is_lenient_parsing_of_their_text(body: bytes) -> None:
    """Bytes may take the fast path (Falconide's well-formed arrays); the answer is the text's."""
    try:
        expected = parse_json_lenient(decode_text(body))  # what it did before the fast path (BOM dropped)
    except BodyError as error:
        with pytest.raises(BodyError) as refused:
            parse_json_lenient(body)
        assert refused.value.reason == error.reason
        return
    assert parse_json_lenient(body) == expected


@given(st.lists(json_values, max_size=4) | st.dictionaries(st.text(max_size=8), json_values, max_size=4))
def test_lenient_fast_path_agrees_with_the_text_path(value: Any) -> None:
    for text in (json.dumps(value, separators=(",", ":"), ensure_ascii=False), json.dumps(value, indent=1)):
        try:
            expected = parse_json_lenient(text)
        except BodyError as error:
            with pytest.raises(BodyError) as refused:
                parse_json_lenient(text.encode())
            assert refused.value.reason == error.reason
            continue
        assert parse_json_lenient(text.encode()) == expected


class _Marker:
    pass


def _parse_beside(body: bytes) -> weakref.ref[_Marker]:
    marker = _Marker()  # a local of the caller, as the consumer's slice of records and events is
    with contextlib.suppress(BodyError):
        parse_json_lenient(body)
    return weakref.ref(marker)


@pytest.mark.parametrize("body", [b'{"a":1},{"b":2},', b"[1,2,]", b'{"a":1} not json', b"{001}"])
def test_a_lenient_reading_leaves_no_reference_cycle_holding_its_callers(body: bytes) -> None:
    # An exception kept past its except clause holds its traceback, whose frames hold every caller's locals
    # (through f_back) in a cycle: the consumer's whole slice then stayed in memory until a collection.
    gc.disable()
    try:
        assert _parse_beside(body)() is None  # freed by reference counting alone
    finally:
        gc.enable()
