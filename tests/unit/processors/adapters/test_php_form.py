"""PHP-style form decoding: array syntax, strict UTF-8, and bounds that keep hostile bodies cheap."""

from __future__ import annotations

import contextlib
import time
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.adapters.json_body import BodyError
from processors.adapters.php_form import MAX_DEPTH, MAX_FIELDS, parse_php_form, split_name


def test_flat_fields_are_decoded() -> None:
    assert parse_php_form(b"type=OPEN&Email=a%40example.com&name=Zo%C3%AB+M&empty=") == {
        "type": "OPEN",
        "Email": "a@example.com",
        "name": "Zoë M",
        "empty": "",
    }


def test_repeated_empty_brackets_make_a_list() -> None:
    body = b"List_Names[]=web%20signup&List_Names[]=fb%20signup"
    assert parse_php_form(body) == {"List_Names": ["web signup", "fb signup"]}


def test_indexed_notifications_nest_as_dicts() -> None:
    body = "event[1][type]=OPEN&event[0][type]=CLICK&event[0][Click_Url]=https://x.example/?a=1%26b=2"
    assert parse_php_form(body) == {
        "event": {"1": {"type": "OPEN"}, "0": {"type": "CLICK", "Click_Url": "https://x.example/?a=1&b=2"}}
    }


def test_lists_of_dicts_and_mixed_keys_follow_php_numbering() -> None:
    assert parse_php_form("d[][x]=1&d[][x]=2") == {"d": [{"x": "1"}, {"x": "2"}]}
    assert parse_php_form("a[]=1&a[x]=2&a[]=3") == {"a": {"0": "1", "x": "2", "1": "3"}}
    assert parse_php_form("a[x]=1&a[]=2&a[5]=3&a[]=4") == {"a": {"x": "1", "0": "2", "5": "3", "6": "4"}}
    assert parse_php_form("l[]=a&l[0]=b&l[1]=c") == {"l": ["b", "c"]}


def test_last_value_wins_like_php() -> None:
    assert parse_php_form("a=1&a=2") == {"a": "2"}
    assert parse_php_form("a=1&a[b]=2") == {"a": {"b": "2"}}
    assert parse_php_form("a[b]=2&a=1") == {"a": "1"}


def test_malformed_array_names_are_literal_keys() -> None:
    assert parse_php_form("a[b=1&[x]=2&f[a]b=3&g[a[b]]=4") == {"a[b": "1", "[x]": "2", "f[a]b": "3", "g[a[b]]": "4"}


def test_names_are_not_rewritten_like_php() -> None:
    assert parse_php_form("first.name=a&last name=b&Emails_Sent_/_Credits_Used=3") == {
        "first.name": "a",
        "last name": "b",
        "Emails_Sent_/_Credits_Used": "3",
    }


def test_split_name() -> None:
    assert split_name("a[b][]") == ["a", "b", ""]
    assert split_name("plain") is None
    assert split_name("[a]") is None
    assert split_name("a[b]x") is None


def test_surrounding_whitespace_and_empty_pairs_are_ignored() -> None:
    assert parse_php_form(b"  a=1&&b=2\r\n") == {"a": "1", "b": "2"}


def test_leading_bom_is_ignored() -> None:
    assert parse_php_form("\ufeffa=1".encode()) == {"a": "1"}


@pytest.mark.parametrize("body", [b"", b"   \n", b"\xef\xbb\xbf"])
def test_empty_body(body: bytes) -> None:
    with pytest.raises(BodyError) as info:
        parse_php_form(body)
    assert info.value.reason == "empty_body"


@pytest.mark.parametrize("body", [b"a=\xc3\x28", b"a=%C3%28", b"%FF=1", b"a[%C3]=1"])
def test_invalid_utf8_raw_or_percent_encoded(body: bytes) -> None:
    with pytest.raises(BodyError) as info:
        parse_php_form(body)
    assert info.value.reason == "invalid_utf8"


def test_too_many_fields() -> None:
    assert len(parse_php_form("&".join(f"f{i}=1" for i in range(MAX_FIELDS)))) == MAX_FIELDS
    with pytest.raises(BodyError) as info:
        parse_php_form("&".join(f"f{i}=1" for i in range(MAX_FIELDS + 1)))
    assert info.value.reason == "too_many_fields"


def test_nesting_limit() -> None:
    assert parse_php_form("a" + "[x]" * MAX_DEPTH + "=1")
    with pytest.raises(BodyError) as info:
        parse_php_form("a" + "[x]" * (MAX_DEPTH + 1) + "=1")
    assert info.value.reason == "too_deep"


@pytest.mark.parametrize(
    "body",
    [
        "&".join(f"a[{i}][]=1" for i in range(MAX_FIELDS)),
        "a[x]=1&" + "&".join("a[]=1" for _ in range(MAX_FIELDS - 1)),
        "&".join("a" + "[]" * MAX_DEPTH + "=1" for _ in range(MAX_FIELDS)),
        "a[" + "9" * 100_000 + "]=1&a[]=2",
        "a" + "[" * 1_000_000 + "=1",
        "a" + "[]" * 500_000 + "=1",
        "a" + "[]" * 500_000 + "x=1",
        "a" * 1_000_000 + "[x]y=1",
        "a[" + "]" * 1_000_000 + "=1",
    ],
)
def test_hostile_bodies_stay_fast(body: str) -> None:
    started = time.perf_counter()
    with contextlib.suppress(BodyError):
        parse_php_form(body)
    assert time.perf_counter() - started < 2.0


_NAME = st.text(st.characters(exclude_characters="[]", exclude_categories=["Cs"]), min_size=1, max_size=8)
_VALUE = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)


def _tree(depth: int) -> st.SearchStrategy[Any]:
    leaf = st.one_of(_VALUE, st.lists(_VALUE, min_size=1, max_size=3))
    if depth == 0:
        return leaf
    return st.one_of(leaf, st.dictionaries(_NAME, _tree(depth - 1), min_size=1, max_size=3))


def _encode(prefix: str, value: Any) -> list[str]:
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in _encode(f"{prefix}[{quote(k, safe='')}]", v)]
    if isinstance(value, list):
        return [f"{prefix}[]={quote(v, safe='')}" for v in value]
    return [f"{prefix}={quote(value, safe='')}"]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_NAME, _tree(4), min_size=1, max_size=4))
def test_round_trip_of_nested_fields(form: dict[str, Any]) -> None:
    body = "&".join(pair for name, value in form.items() for pair in _encode(quote(name, safe=""), value))
    assert parse_php_form(body) == form


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(alphabet="ab=&[]%0C3+ ", max_size=120)))
def test_any_input_gives_a_dict_or_a_body_error(body: bytes | str) -> None:
    try:
        form = parse_php_form(body)
    except BodyError as error:
        assert error.reason in {"empty_body", "invalid_utf8", "too_many_fields", "too_deep"}
    else:
        assert isinstance(form, dict)
