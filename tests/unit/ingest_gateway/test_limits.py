"""Decompression is bounded, and only gzip/deflate/identity are accepted."""

from __future__ import annotations

import gzip
import zlib
from ipaddress import ip_network

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from ingest_gateway.limits import RequestRefused, client_address, decode_body


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


TRUSTED = [ip_network("10.0.0.0/8")]


def _from_proxy(*forwarded: str) -> str | None:
    """The client address of a request from 10.0.0.5 (a trusted proxy) carrying these X-Forwarded-For lines."""
    headers = CIMultiDict(("X-Forwarded-For", line) for line in forwarded)
    request = make_mocked_request("POST", "/hooks/x", headers=headers, transport=_Peer("10.0.0.5"))
    return client_address(request, TRUSTED)


class _Peer:
    def __init__(self, host: str) -> None:
        self.host = host

    def get_extra_info(self, name: str, default: object = None) -> object:
        return (self.host, 12345) if name == "peername" else default

    def is_closing(self) -> bool:
        return False


@pytest.mark.parametrize(
    ("lines", "address"),
    [
        (["198.51.100.7"], "198.51.100.7"),
        (["198.51.100.7:4711"], "198.51.100.7"),
        (["[2001:db8::1]:443"], "2001:db8::1"),
        (["[2001:db8::1]"], "2001:db8::1"),
        (["2001:db8::1"], "2001:db8::1"),
        (["203.0.113.9", "198.51.100.7, 10.0.0.9"], "198.51.100.7"),  # every line, right-most untrusted hop
        # Malformed hops: not trusted past the proxy itself.
        (["[198.51.100.7]x"], "10.0.0.5"),
        (["198.51.100.7:abc"], "10.0.0.5"),
        (["198.51.100.7:"], "10.0.0.5"),
        (["198.51.100.7:99999999"], "10.0.0.5"),
        (["[2001:db8::1"], "10.0.0.5"),
    ],
)
def test_forwarded_hops_with_ports_and_several_lines(lines: list[str], address: str) -> None:
    assert _from_proxy(*lines) == address
