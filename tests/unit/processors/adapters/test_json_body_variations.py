"""The JSON rules at their edges: the integer-length limit with a sign, and the lenient readings of several
values without enclosing brackets (any run of commas and whitespace between them) and of a trailing comma."""

from __future__ import annotations

import pytest

from processors.adapters.json_body import MAX_INT_DIGITS, BodyError, parse_json, parse_json_lenient


@pytest.mark.parametrize("sign", [b"", b"-"])
def test_integer_limit_counts_digits_not_the_sign(sign: bytes) -> None:
    digits = b"7" * MAX_INT_DIGITS
    assert parse_json(b"[" + sign + digits + b"]") == [(sign + digits).decode()]
    with pytest.raises(BodyError) as refused:
        parse_json(b"[" + sign + digits + b"7]")
    assert refused.value.reason == "number_too_long"
    assert f"{MAX_INT_DIGITS + 1} digits" in refused.value.detail


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":1},{"a":2}',
        b'{"a":1},\n\n{"a":2},\n',
        b'{"a":1}\n{"a":2}\n',  # one object a line
        b'{"a":1}{"a":2}',
        b'{"a":1} , ,{"a":2},,',
        b'\r\n\t{"a":1},\r\n{"a":2}\r\n',
        b'[{"a":1},{"a":2},]',
        b'[{"a":1},\n{"a":2},\n]\n',
    ],
)
def test_values_without_brackets_or_with_a_trailing_comma_are_a_list(body: bytes) -> None:
    assert parse_json_lenient(body) == [{"a": 1}, {"a": 2}]
    assert parse_json_lenient(body.decode()) == [{"a": 1}, {"a": 2}]


def test_values_that_are_not_objects_need_their_commas() -> None:
    assert parse_json_lenient(b'{"a":1},1, [2],"x"') == [{"a": 1}, 1, [2], "x"]


def test_lenient_readings_keep_big_integers_and_leading_zeros() -> None:
    assert parse_json_lenient(b'{"t":9007199254740993}\n{"t":0042}') == [{"t": "9007199254740993"}, {"t": "0042"}]
    assert parse_json_lenient(b'[{"t":0042},]') == [{"t": "0042"}]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"a":1},{"a":1,"a":2}', "duplicate_keys"),
        (b'{"a":1}\n{"a":NaN}', "nan_infinity"),
        (b'{"a":1},{"a":' + b"1" * (MAX_INT_DIGITS + 1) + b"}", "number_too_long"),
        (b'{"a":1},{"a":' + b"[" * 600 + b"]" * 600 + b"}", "too_deep"),
        (b'{"a":1},{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "too_deep"),
        (b'[{"a":1},{"a":1,"a":2},]', "duplicate_keys"),
        (b'{"a":1},{"a":"\x00"}', "invalid_json"),
        (b'{"a":1} x', "invalid_json"),
        # Only objects may follow one another without a comma.
        (b'{"a":1} 1', "invalid_json"),
        (b'{"a":1}[1]', "invalid_json"),
        (b'{"a":1},1 1', "invalid_json"),
        (b'{"a":1},-0-0', "invalid_json"),
        (b'{"a":1},]', "invalid_json"),
        (b"[1,,]", "invalid_json"),
        (b"[,1]", "invalid_json"),
        (b"[,]", "invalid_json"),
        (b"[ ,\n]", "invalid_json"),
        (b'{"a":1},{"a":2}\xc3\x28', "invalid_utf8"),
    ],
)
def test_hostile_content_is_refused_in_every_reading(body: bytes, reason: str) -> None:
    with pytest.raises(BodyError) as refused:
        parse_json_lenient(body)
    assert refused.value.reason == reason


def test_strict_parsing_stays_strict() -> None:
    for body in (b'{"a":1},{"a":2}', b'{"a":1}\n{"a":2}', b"[1,]"):
        with pytest.raises(BodyError) as refused:
            parse_json(body)
        assert refused.value.reason == "invalid_json"
