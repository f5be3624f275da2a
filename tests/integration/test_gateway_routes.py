"""The gateway's routes as its dispatcher serves them: the router's 404 and 405 rules, Expect: 100-continue, and
readiness during the shutdown grace."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import orjson
from yarl import URL

from espwire.broker import wait_for_port
from espwire.envelope import Envelope
from ingest_gateway.app import serve
from processors.adapters import ADAPTERS
from tests.support.gateway import gateway_settings, running_gateway
from tests.support.kafka import consume_all

TOKEN = {"X-MessageSystems-Webhook-Token": "sp-test-token"}


async def test_health_routes_answer_get_and_head_only(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    settings = gateway_settings(topic_prefix, tmp_path)
    async with running_gateway(settings, kafka_bootstrap) as gateway, aiohttp.ClientSession() as http:
        for path in ("/healthz", "/readyz", "/metrics"):
            for method in ("GET", "HEAD"):
                async with http.request(method, gateway.url + path) as response:
                    assert response.status == 200, (method, path)
            for method in ("POST", "PUT", "DELETE"):
                async with http.request(method, gateway.url + path) as response:
                    assert response.status == 405, (method, path)
                    assert sorted(m.strip() for m in response.headers["Allow"].split(",")) == ["GET", "HEAD"]


async def test_hooks_take_exactly_one_segment(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    settings = gateway_settings(topic_prefix, tmp_path)
    async with running_gateway(settings, kafka_bootstrap) as gateway, aiohttp.ClientSession() as http:
        for path in ("/hooks/", "/hooks", "/hooks/sparkpost/extra", "/hooks/a/b", "/healthz/", "/nowhere"):
            async with http.post(gateway.url + path, data=b"[]", headers=TOKEN) as response:
                assert response.status == 404, path
        async with http.post(gateway.url + "/hooks/nosuchsource", data=b"[]", headers=TOKEN) as response:
            assert response.status == 404
            assert await response.json() == {"error": "unknown source"}
        async with http.patch(gateway.url + "/hooks/sparkpost", data=b"[]", headers=TOKEN) as response:
            assert response.status == 405
            assert response.headers["Allow"] == "POST, PUT, GET, HEAD"


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)


async def test_expect_100_continue_gets_its_interim_answer_before_the_body(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = gateway_settings(topic_prefix, tmp_path)
    body = orjson.dumps([{"msys": {"message_event": {"type": "delivery", "pad": "x" * 2000}}}])
    async with running_gateway(settings, kafka_bootstrap):
        reader, writer = await asyncio.open_connection("127.0.0.1", settings.gateway.port)
        try:
            writer.write(
                b"POST /hooks/sparkpost HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"X-MessageSystems-Webhook-Token: sp-test-token\r\nExpect: 100-continue\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body)
            )
            await writer.drain()
            assert await _read_head(reader) == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(body)
            await writer.drain()
            head = await _read_head(reader)
            assert head.startswith(b"HTTP/1.1 200 "), head
            length = next(
                int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
            )
            answer = orjson.loads(await asyncio.wait_for(reader.readexactly(length), timeout=5))
            assert answer["status"] == "accepted"
        finally:
            writer.close()
            await writer.wait_closed()


async def test_unknown_expectation_is_417(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    settings = gateway_settings(topic_prefix, tmp_path)
    async with running_gateway(settings, kafka_bootstrap) as gateway, aiohttp.ClientSession() as http:
        headers = {**TOKEN, "Expect": "something-else"}
        async with http.post(gateway.url + "/hooks/sparkpost", data=b"[]", headers=headers) as response:
            assert response.status == 417


async def test_a_stopping_gateway_says_not_ready_and_still_stores_during_its_grace(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = gateway_settings(topic_prefix, tmp_path, shutdown_grace_seconds=1.5)
    url = f"http://127.0.0.1:{settings.gateway.port}"
    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, kafka_bootstrap, stop=stop))
    # The publisher is started before the port opens: once it listens, it is ready.
    await asyncio.to_thread(wait_for_port, "127.0.0.1", settings.gateway.port, 20)
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/readyz") as response:
            assert response.status == 200
        stop.set()
        await asyncio.sleep(0.2)
        async with http.get(url + "/readyz") as response:
            assert response.status == 503
            assert (await response.json())["ready"] is False
        async with http.post(url + "/hooks/sparkpost", data=b'[{"msys":{}}]', headers=TOKEN) as response:
            assert response.status == 200
            assert (await response.json())["status"] == "accepted"
        await asyncio.wait_for(server, timeout=15)
        try:
            async with http.get(url + "/healthz") as response:
                raise AssertionError(f"still answering after the grace: {response.status}")
        except aiohttp.ClientConnectionError:
            pass  # the port is closed once the grace is over


def _post(version: bytes, connection: bytes | None, body: bytes) -> bytes:
    head = b"POST /hooks/sparkpost %s\r\nHost: x\r\nX-MessageSystems-Webhook-Token: sp-test-token\r\n" % version
    if connection is not None:
        head += b"Connection: %s\r\n" % connection
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes], bytes]:
    status, *lines = (await _read_head(reader)).rstrip(b"\r\n").split(b"\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(b":") for line in lines)}
    body = await asyncio.wait_for(reader.readexactly(int(headers[b"content-length"])), timeout=5)
    return status, headers, body


async def test_the_accepted_answer_keeps_or_closes_the_connection_as_the_request_asks(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """The 200 is written whole by the gateway (whole_response.py), not by aiohttp's Response: its
    status line, Date, length and Connection header must follow the request's HTTP version."""
    settings = gateway_settings(topic_prefix, tmp_path)
    body = orjson.dumps([{"msys": {"message_event": {"type": "delivery", "event_id": "1"}}}])
    cases = [  # version, Connection asked, Connection answered, connection left open
        (b"HTTP/1.1", None, None, True),
        (b"HTTP/1.1", b"close", b"close", False),
        (b"HTTP/1.0", None, None, False),
        (b"HTTP/1.0", b"keep-alive", b"keep-alive", True),
    ]
    async with running_gateway(settings, kafka_bootstrap):
        for version, asked, answered, open_after in cases:
            reader, writer = await asyncio.open_connection("127.0.0.1", settings.gateway.port)
            try:
                # Pipelined where the connection stays: the first answer must not lose or swallow the second.
                writer.write(_post(version, asked, body) * (2 if open_after else 1))
                await writer.drain()
                status, headers, answer = await _read_response(reader)
                assert status == version + b" 200 OK", (version, asked)
                assert headers[b"content-type"] == b"application/json"
                assert headers.get(b"connection") == answered, (version, asked)
                sent_at = parsedate_to_datetime(headers[b"date"].decode())
                assert sent_at.tzinfo is not None and abs((sent_at - datetime.now(UTC)).total_seconds()) < 60
                first = orjson.loads(answer)
                assert first["status"] == "accepted"
                if open_after:
                    _, _, again = await _read_response(reader)
                    assert orjson.loads(again)["request_id"] != first["request_id"]
                else:
                    assert await asyncio.wait_for(reader.read(), timeout=5) == b"", (version, asked)
            finally:
                writer.close()
                await writer.wait_closed()


# A value with what a query must escape: "%20" as text (sent as %2520), a plus, an ampersand, an equals sign.
TRACKED = {
    "app_id": "74f72649-0327-4911-bd21-a4cd533cec1c",
    "user_id": "u-01040",
    "event": "Play Button",
    "platform": "redfast",
    "type": "page",
    "properties": {"id": "1aa8", "values": [{"url_path": "/a%20b+c", "query_params": "x=1&y=%2F"}]},
    "ts": 1795162100,
}


def recurly_get_query(events: int) -> str:
    """A Recurly Engage GET batch: the events, URL-encoded in the ``events`` query parameter."""
    return urlencode({"events": orjson.dumps([TRACKED] * events).decode()})


async def test_a_get_batch_in_a_long_query_is_stored_as_sent_and_past_the_limit_refused(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = gateway_settings(topic_prefix, tmp_path)
    limit = settings.gateway.max_url_bytes
    long_query = recurly_get_query(150)  # ~60 KiB: aiohttp's own request-line limit is 8 KiB
    too_long = recurly_get_query(limit // 300)
    assert 8190 < len(long_query) < limit < len(too_long)
    key = {"x-api-key": "re-test-key"}
    async with running_gateway(settings, kafka_bootstrap) as gateway, aiohttp.ClientSession() as http:
        # encoded=True: sent as written (yarl would otherwise unquote what a query may carry bare).
        url = URL(f"{gateway.url}/hooks/recurly_engage?{long_query}", encoded=True)
        async with http.get(url, headers=key) as response:
            assert response.status == 200, await response.text()
        url = URL(f"{gateway.url}/hooks/recurly_engage?{too_long}", encoded=True)
        async with http.get(url, headers=key) as response:
            assert response.status == 400
    records = await consume_all(kafka_bootstrap, gateway.topics.raw, idle_seconds=2)
    envelopes = [Envelope.from_record(r.value, r.headers) for r in records]
    assert [e.query for e in envelopes] == [long_query], "the query exactly as it was on the request line"
    events = ADAPTERS["recurly_engage"].adapt(envelopes[0]).events
    assert len(events) == 150
    assert all(event["data"]["raw"] == TRACKED for event in events), "decoded once: values as the sender wrote them"
