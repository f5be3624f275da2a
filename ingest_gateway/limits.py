"""Request limits: body size before and after decompression, accepted encodings, client address.

A body over the limit is refused (413) before anything past the limit is read, and a compressed
body is inflated in bounded steps, so a gzip bomb costs at most the limit in memory.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address

from aiohttp import web

from espwire.config import IPNetwork

ACCEPTED_ENCODINGS = ("identity", "gzip", "x-gzip", "deflate")
_READ_CHUNK = 64 * 1024


class RequestRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def joined(request: web.BaseRequest, name: str) -> str | None:
    """A header's lines as one comma-separated value (RFC 9110 section 5.3), None when it is absent: a list
    header may come as several lines, and reading the first alone would miss the rest (a relay's
    X-Forwarded-For below the client's own, a second Content-Encoding)."""
    lines = request.headers.getall(name, ())
    return ", ".join(lines) if lines else None


def content_encoding(request: web.BaseRequest) -> str:
    # Most webhooks send none: the lines are only gathered when there is one.
    given = request.headers.get("Content-Encoding")
    if given is not None:
        given = joined(request, "Content-Encoding")
    encoding = (given or "identity").strip().lower() or "identity"
    if encoding not in ACCEPTED_ENCODINGS:
        raise RequestRefused(415, f"Content-Encoding {encoding[:32]!r} is not supported")
    return encoding


def _check_declared(request: web.BaseRequest, max_bytes: int) -> int | None:
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        raise RequestRefused(413, f"body of {declared} bytes is over the {max_bytes}-byte limit")
    return declared


def complete_body(request: web.BaseRequest, max_bytes: int) -> bytes | None:
    """The body when it came whole with the headers (the usual webhook): taken without an await or a
    timer. None when more is still to come; then ``read_body`` waits for it."""
    declared = _check_declared(request, max_bytes)
    if declared == 0:
        return b""
    content = request.content
    if not content.is_eof():
        return None
    body = content.read_nowait()
    if len(body) > max_bytes:  # chunked, so nothing was declared
        raise RequestRefused(413, f"body is over the {max_bytes}-byte limit")
    return body


async def read_body(request: web.BaseRequest, max_bytes: int, timeout: float) -> bytes:
    """The body as sent on the wire, refusing (413) as soon as it is over ``max_bytes``; a client that
    takes longer than ``timeout`` to send it gets TimeoutError (the caller answers 408)."""
    declared = _check_declared(request, max_bytes)
    if declared == 0:
        return b""
    async with asyncio.timeout(timeout):
        return await _read(request, declared, max_bytes)


async def _read(request: web.BaseRequest, declared: int | None, max_bytes: int) -> bytes:
    if declared is not None:
        try:
            return await request.content.readexactly(declared)  # the common case: one await
        except asyncio.IncompleteReadError as exc:
            raise RequestRefused(400, f"body ended after {len(exc.partial)} of {declared} bytes") from None
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(_READ_CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise RequestRefused(413, f"body is over the {max_bytes}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def decode_body(body: bytes, encoding: str, max_bytes: int) -> bytes:
    """Inflates gzip/deflate in bounded steps: 413 past ``max_bytes``, 400 for a broken stream.

    A gzip body may hold several members one after another (RFC 1952 section 2.2; ``cat a.gz b.gz``):
    each is inflated in turn, as gzip itself does, and zero bytes after the last are padding. Anything
    else after the end of the stream is refused (400), never dropped: a stored body cut short would be
    an acknowledged request whose events are lost.
    """
    if encoding == "identity" or not body:
        return body
    gzip = encoding in ("gzip", "x-gzip")
    if gzip:
        wbits = 16 + zlib.MAX_WBITS
    else:
        # "deflate" is zlib-wrapped by the RFC, raw in some clients: the header tells which.
        raw = len(body) < 2 or (body[0] & 0x0F) != 8 or ((body[0] << 8) | body[1]) % 31 != 0
        wbits = -zlib.MAX_WBITS if raw else zlib.MAX_WBITS
    out: list[bytes] = []
    size = 0
    pending = body
    try:
        while True:
            inflater = zlib.decompressobj(wbits)
            while pending:
                piece = inflater.decompress(pending, _READ_CHUNK)
                size += len(piece)
                if size > max_bytes:
                    raise RequestRefused(413, f"body inflates past the {max_bytes}-byte limit")
                out.append(piece)
                pending = inflater.unconsumed_tail
                if inflater.eof:
                    break
            if not inflater.eof:
                raise RequestRefused(400, f"truncated {encoding} stream")
            pending = inflater.unused_data
            if not pending.strip(b"\0"):
                break
            if not gzip:
                raise RequestRefused(400, f"{len(pending)} bytes after the end of the {encoding} stream")
    except zlib.error as exc:
        raise RequestRefused(400, f"invalid {encoding} stream: {exc}") from None
    return b"".join(out)


def client_address(request: web.BaseRequest, trusted_proxies: Sequence[IPNetwork]) -> str | None:
    """The peer, or the first untrusted hop of X-Forwarded-For when the peer is a trusted proxy."""
    peer = request.remote
    if not trusted_proxies or peer is None:
        return peer
    try:
        peer_ip: IPv4Address | IPv6Address = ip_address(peer)
    except ValueError:
        return peer
    if not any(peer_ip in net for net in trusted_proxies):
        return peer
    forwarded = joined(request, "X-Forwarded-For") or ""
    for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
        try:
            hop_ip = ip_address(_without_port(hop))
        except ValueError:
            return peer  # a malformed chain is not trusted past the proxy itself
        if not any(hop_ip in net for net in trusted_proxies):
            return str(hop_ip)
    return peer


def _without_port(hop: str) -> str:
    """The address of a forwarded hop that some proxies write with its port: ``192.0.2.1:4711``,
    ``[2001:db8::1]:443`` or ``[2001:db8::1]`` (a bare IPv6 address has colons of its own). Anything else
    after the address (``[...]x``, ``:abc``, an empty or out-of-range port) is returned whole, so that it
    fails to parse: a malformed chain is not trusted."""
    if hop.startswith("["):
        address, bracket, rest = hop[1:].partition("]")
        return address if bracket and (not rest or (rest[0] == ":" and _is_port(rest[1:]))) else hop
    if hop.count(":") == 1:
        address, _, port = hop.partition(":")
        return address if _is_port(port) else hop
    return hop


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit() and int(text) <= 65535


def address_allowed(address: str | None, allow: Sequence[IPNetwork]) -> bool:
    if not allow:
        return True
    if address is None:
        return False
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in allow)
