"""Headers as relays and odd senders write them, through the real gateway and broker: a list header on
several lines (X-Forwarded-For below a client's own, Content-Encoding twice), a forwarded hop with its
port, header bytes that are not UTF-8, and a source's own body limit on a gzip body."""

from __future__ import annotations

import asyncio
import gzip
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import aiohttp
from multidict import CIMultiDict

from espwire.config import Settings
from espwire.envelope import Envelope
from tests.support.gateway import gateway_settings, running_gateway
from tests.support.kafka import consume_all

PURE360_ALLOWED = "198.51.100.7"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
OPEN = (Path(__file__).parents[1] / "data/providers/pure360/open.body").read_bytes()


def behind_a_proxy(prefix: str, tmp_path: Path) -> Settings:
    """The gateway behind a balancer on 127.0.0.0/8; Pure360 allowed from one public address only;
    Falconide (no credentials) held to 1 KiB."""
    settings = gateway_settings(prefix, tmp_path, trusted_proxies=[ip_network("127.0.0.0/8")])
    sources = []
    for source in settings.sources:
        if source.id == "pure360":
            source = source.model_copy(update={"allow_ips": [ip_network(PURE360_ALLOWED), ip_network("2001:db8::1")]})
        elif source.id == "falconide":
            source = source.model_copy(update={"max_body_bytes": 1024})
        sources.append(source)
    return settings.model_copy(update={"sources": sources})


async def _post(http: aiohttp.ClientSession, url: str, body: bytes, headers: Any) -> int:
    async with http.post(url, data=body, headers=headers) as response:
        await response.read()
        return response.status


async def test_every_forwarded_for_line_counts_and_a_hop_may_carry_its_port(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = behind_a_proxy(topic_prefix, tmp_path)
    cases = [
        # A relay's own line, then the balancer's with the sender's address: the sender is allowed.
        (["10.9.8.7", PURE360_ALLOWED], 200),
        # A forged line from the client, then the balancer's with the client's real address: refused.
        ([PURE360_ALLOWED, "203.0.113.50"], 401),
        ([f"{PURE360_ALLOWED}:4711"], 200),
        (["[2001:db8::1]:443"], 200),
        (["[2001:db8::2]:443"], 401),
    ]
    async with running_gateway(settings, kafka_bootstrap) as gateway, aiohttp.ClientSession() as http:
        statuses = []
        for lines, _ in cases:
            headers = CIMultiDict(FORM)
            for line in lines:
                headers.add("X-Forwarded-For", line)
            statuses.append(await _post(http, f"{gateway.url}/hooks/pure360", OPEN, headers))
    assert statuses == [status for _, status in cases]
    records = await consume_all(kafka_bootstrap, gateway.topics.raw, expect=3, idle_seconds=2)
    envelopes = [Envelope.from_record(r.value, r.headers) for r in records]
    assert sorted(e.remote_addr or "" for e in envelopes) == [PURE360_ALLOWED, PURE360_ALLOWED, "2001:db8::1"]
    assert sorted(e.headers["x-forwarded-for"] for e in envelopes) == [
        f"10.9.8.7, {PURE360_ALLOWED}",
        f"{PURE360_ALLOWED}:4711",
        "[2001:db8::1]:443",
    ]


async def test_a_header_that_is_not_utf8_is_stored_as_latin1_not_refused_for_good(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = gateway_settings(topic_prefix, tmp_path)
    body = b'[{"msys":{"message_event":{"type":"delivery","event_id":"1","rcpt_to":"a@example.com"}}}]'
    async with running_gateway(settings, kafka_bootstrap):
        reader, writer = await asyncio.open_connection("127.0.0.1", settings.gateway.port)
        writer.write(
            b"POST /hooks/sparkpost HTTP/1.1\r\nHost: x\r\nX-MessageSystems-Webhook-Token: sp-test-token\r\n"
            b"Content-Type: application/json\r\nUser-Agent: Mailer caf\xe9\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        answer = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    [record] = await consume_all(kafka_bootstrap, f"{topic_prefix}.raw", expect=1, idle_seconds=2)
    envelope = Envelope.from_record(record.value, record.headers)
    assert envelope.body == body
    assert envelope.headers["user-agent"] == "Mailer caf\xe9"  # the byte 0xE9, one latin-1 character


async def test_content_encoding_on_two_lines_and_a_sources_limit_on_the_inflated_body(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = behind_a_proxy(topic_prefix, tmp_path)
    events = b'[{"EVENT":"sent","EMAIL":"a@example.com","TIMESTAMP":"1795161700"}]'
    two_lines = CIMultiDict([("Content-Type", "application/json"), ("Content-Encoding", "identity")])
    two_lines.add("Content-Encoding", "gzip")
    bomb = gzip.compress(b"[" + b"{}," * 60_000 + b"{}]")  # ~1 KiB on the wire, 180 KiB inflated
    assert len(bomb) < 1024
    async with running_gateway(settings, kafka_bootstrap) as gateway, aiohttp.ClientSession() as http:
        url = f"{gateway.url}/hooks/falconide"
        # Read as one list, "identity, gzip", as when sent on one line: refused, never stored still encoded.
        assert await _post(http, url, gzip.compress(events), two_lines) == 415
        gzipped = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        assert await _post(http, url, bomb, gzipped) == 413
        assert await _post(http, url, gzip.compress(events), gzipped) == 200
    records = await consume_all(kafka_bootstrap, gateway.topics.raw, expect=1, idle_seconds=2)
    assert [r.value for r in records] == [events]
