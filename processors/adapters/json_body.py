"""Safe JSON for hostile bodies: strict by default, lenient only as a fallback.

Strict means RFC 8259 plus the rules of the fixtures' README: duplicate keys, NaN/Infinity, integer
literals over 4,300 digits, nesting deeper than 512, invalid UTF-8 and raw control characters are
refused with a reason. Integers beyond 2^53 and numbers written with leading zeros (iPost's
``"mailing_id": 000001``) come out as their exact digit strings, because a JavaScript or float
consumer downstream would otherwise round or strip them. The lenient fallback (leading zeros,
Falconide's bracket-less ``{...},{...},``, a trailing comma in an array) only runs when the strict
parse failed, so well-formed bodies pay nothing for it.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import orjson

MAX_DEPTH = 512
# Levels of nesting the fast path proves orjson can still add above a body's values (see _fast_parse).
WRITE_MARGIN = 8
MAX_INT_DIGITS = 4300
_SAFE_INT = 2**53


class BodyError(Exception):
    """The body cannot be read; ``reason`` is a short stable code for metrics and dead letters."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise BodyError("duplicate_keys", f"key {dup[:64]!r} appears twice in one object")
    return obj


def _int_or_digits(text: str) -> int | str:
    # The limit counts digits: a minus sign does not make a 4,300-digit literal too long.
    digits = len(text) - (text[0] == "-")
    if digits > MAX_INT_DIGITS:
        raise BodyError("number_too_long", f"integer literal of {digits} digits")
    value = int(text)
    return value if -_SAFE_INT <= value <= _SAFE_INT else text


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise BodyError("number_out_of_range", f"{text[:32]} overflows a double")
    return value


def _reject_constant(name: str) -> Any:
    raise BodyError("nan_infinity", f"{name} is not JSON")


_DECODER = json.JSONDecoder(
    object_pairs_hook=_unique_keys,
    parse_int=_int_or_digits,
    parse_float=_finite_float,
    parse_constant=_reject_constant,
    strict=True,  # raw control characters (NUL included) inside strings are errors
)


def _check_depth(value: Any) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BodyError("too_deep", f"nesting deeper than {MAX_DEPTH}")
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))


def _fast_parse(body: bytes) -> Any:
    """orjson, when its answer is provably the strict parser's; else None (then the strict parser decides).

    orjson refuses NaN, bad UTF-8, control characters and unpaired surrogates by itself, but keeps
    the last of duplicate keys and loses big integers' digits. When writing the result back
    (compact, integers limited to 53 bits) gives the input byte for byte, none of that happened: a
    duplicate key would shorten it, a rounded number would change it. Senders that post compact
    JSON (most do) pay ~2 µs an event instead of ~7; anything else takes the strict path unchanged.

    The value is written inside ``WRITE_MARGIN`` extra arrays, so an answer also proves that orjson
    can write it, and every part of it, with that many levels of nesting above (it stops at 254):
    see ``parse_json_writable``. Only bodies nested within a few levels of that limit lose the fast path.
    """
    try:
        value = orjson.loads(body)
        if not isinstance(value, dict | list):
            return None
        wrapped: Any = value
        for _ in range(WRITE_MARGIN):
            wrapped = [wrapped]
        written = orjson.dumps(wrapped, option=orjson.OPT_STRICT_INTEGER)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return None
    return value if written[WRITE_MARGIN:-WRITE_MARGIN] == body.strip(b" \t\r\n") else None


def decode_text(body: bytes) -> str:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError("invalid_utf8", f"byte {exc.start}: {exc.reason}") from None
    return text[1:] if text.startswith("\ufeff") else text


def parse_json(body: bytes | str) -> Any:
    """Strict JSON; raises BodyError with the reason."""
    if isinstance(body, bytes):
        fast = _fast_parse(body)
        if fast is not None:
            return fast
    return _parse_strict(body)


@contextlib.contextmanager
def _decoder_errors() -> Iterator[None]:
    """The json decoder's complaints (and the hooks' own BodyErrors) as BodyErrors with their reason."""
    try:
        yield
    except BodyError:
        raise
    except RecursionError:
        raise BodyError("too_deep", f"nesting deeper than {MAX_DEPTH}") from None
    except json.JSONDecodeError as exc:
        raise BodyError("invalid_json", f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:  # int() limits and the like
        raise BodyError("invalid_json", str(exc)[:200]) from None


def _parse_strict(body: bytes | str) -> Any:
    text = decode_text(body) if isinstance(body, bytes) else body
    if not text.strip():
        raise BodyError("empty_body", "no content")
    with _decoder_errors():
        value = _DECODER.decode(text)
    if isinstance(value, dict | list):
        _check_depth(value)
    return value


def parse_json_writable(body: bytes) -> tuple[Any, bool]:
    """``parse_json``, and whether the fast path read the body: then orjson is proven to write its value
    with ``WRITE_MARGIN`` levels of nesting above it (orjson's only limit a parsed value can hit: its
    strings are valid Unicode, its keys strings, its integers within 53 bits). An adapter that places the
    body's values at most that many levels deeper in its events, beside values of its own that orjson
    writes, needs no further check that its events serialise (``keep_encodable``).
    """
    fast = _fast_parse(body)
    if fast is not None:
        return fast, True
    return _parse_strict(body), False


# A JSON string, or a number with a leading zero that is not itself inside a longer token.
_LEADING_ZERO = re.compile(r'"(?:[^"\\]|\\.)*"|(?<![\w.+-])(-?0\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)')


def _quote_leading_zeros(text: str) -> str:
    return _LEADING_ZERO.sub(lambda m: f'"{m.group(1)}"' if m.group(1) else m.group(0), text)


def parse_json_lenient(body: bytes | str, *, leading_zeros: bool = True) -> Any:
    """Strict JSON first; then the variations real senders produce.

    - numbers with leading zeros, kept as their digit strings (iPost; off with ``leading_zeros=False``)
    - values one after another with no enclosing brackets, separated by commas (objects also by whitespace
      alone), a trailing comma allowed (Falconide's ``{...},{...},``, or one object a line): a list
    - an array with a comma before its closing bracket (the bracket-less shape wrapped by a relay)
    Refusals for hostile input (duplicate keys, NaN, depth, long numbers, bad UTF-8) are final.
    """
    if isinstance(body, bytes):
        # Strict parsing of the bytes may take the fast path; of the decoded text it could not.
        fast = _fast_parse(body)
        if fast is not None:
            return fast
    text = decode_text(body) if isinstance(body, bytes) else body
    try:
        return _parse_strict(text)
    except BodyError as strict_error:
        if strict_error.reason != "invalid_json":
            raise
        # The reason, not the exception: an exception kept in a local after its except clause holds its
        # traceback, whose frames hold the caller's whole slice of records and events (their f_back chain),
        # in a cycle only the garbage collector frees (measured: every slice with a lenient body stayed in
        # memory until the next collection).
        detail = strict_error.detail
    repaired = _quote_leading_zeros(text) if leading_zeros else text
    stripped = repaired.strip()
    readings: list[tuple[Callable[[str], Any], str]] = []
    if repaired != text:
        readings.append((parse_json, repaired))
    if stripped.startswith("{"):
        readings.append((_parse_sequence, stripped))
    elif stripped.startswith("[") and stripped.endswith("]") and (head := stripped[:-1].rstrip()).endswith(","):
        head = head[:-1].rstrip()
        if head != "[":  # "[,]" has a comma after nothing: no array reads that way
            readings.append((parse_json, head + "]"))
    for read, candidate in readings:
        try:
            return read(candidate)
        except BodyError as reading_error:
            if reading_error.reason != "invalid_json":
                raise
            detail = reading_error.detail  # the last reading tried says best where the body went wrong
    raise BodyError("invalid_json", detail)


# JSON whitespace (RFC 8259 allows only these four) and commas.
_SEPARATORS = re.compile(r"[ \t\r\n,]*")


def _after_separators(text: str, position: int) -> int:
    match = _SEPARATORS.match(text, position)
    return match.end() if match else position


def _parse_sequence(text: str) -> list[Any]:
    """JSON values one after another, separated by any run of commas and whitespace, as a list.

    Only objects may follow one another without a comma (``}{``, one a line); other values need one, as in
    an array, so that ``1 1`` or ``-0-0`` stay errors instead of becoming two values.
    """
    items: list[Any] = []
    position = _after_separators(text, 0)
    with _decoder_errors():
        while position < len(text):
            value, end = _DECODER.raw_decode(text, position)
            items.append(value)
            position = _after_separators(text, end)
            no_comma = position < len(text) and "," not in text[end:position]
            if no_comma and not (isinstance(value, dict) and text[position] == "{"):
                raise json.JSONDecodeError("Expecting ',' delimiter", text, position)
    _check_depth(items)
    return items
