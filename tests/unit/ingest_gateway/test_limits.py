"""Decompression is bounded, and only gzip/deflate/identity are accepted."""

from __future__ import annotations

import gzip
import zlib

import pytest

from ingest_gateway.limits import RequestRefused, decode_body


def test_gzip_and_both_deflate_flavours_inflate() -> None:
    body = b'[{"msys":{}}]' * 100
    assert decode_body(gzip.compress(body), "gzip", 1 << 20) == body
    assert decode_body(zlib.compress(body), "deflate", 1 << 20) == body
    raw = zlib.compressobj(wbits=-15)
    assert decode_body(raw.compress(body) + raw.flush(), "deflate", 1 << 20) == body


def test_bomb_is_refused_without_inflating_it_all() -> None:
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))
    with pytest.raises(RequestRefused) as refused:
        decode_body(bomb, "gzip", 10 * 1024 * 1024)
    assert refused.value.status == 413


def test_broken_stream_is_a_400() -> None:
    with pytest.raises(RequestRefused) as refused:
        decode_body(b"not gzip at all", "gzip", 1 << 20)
    assert refused.value.status == 400
    with pytest.raises(RequestRefused) as truncated:
        decode_body(gzip.compress(b"x" * 1000)[:-10], "gzip", 1 << 20)
    assert truncated.value.status == 400
