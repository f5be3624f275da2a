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


def test_every_member_of_a_multi_member_gzip_body_is_kept() -> None:
    # RFC 1952 allows members one after another (`cat a.gz b.gz`); the stored body must be all of them.
    first, second = b'[{"msys":{"message_event":{"type":"delivery"', b',"event_id":"1"}}}]'
    body = gzip.compress(first) + gzip.compress(second) + gzip.compress(b"")
    assert decode_body(body, "gzip", 1 << 20) == first + second
    assert decode_body(gzip.compress(first) + b"\0" * 512, "gzip", 1 << 20) == first  # zero padding after the end


def test_the_size_limit_counts_every_member() -> None:
    member = gzip.compress(b"x" * 600_000)
    with pytest.raises(RequestRefused) as refused:
        decode_body(member + member, "gzip", 1_000_000)
    assert refused.value.status == 413


def test_bytes_after_the_end_of_the_stream_are_a_400_not_dropped() -> None:
    for body, encoding in [
        (gzip.compress(b"[1]") + b"trailing garbage", "gzip"),
        (zlib.compress(b"[1]") + b"more", "deflate"),
    ]:
        with pytest.raises(RequestRefused) as refused:
            decode_body(body, encoding, 1 << 20)
        assert refused.value.status == 400, encoding
