"""The gateway's routes as its dispatcher serves them: the router's 404 and 405 rules, Expect: 100-continue, and
readiness during the shutdown grace."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import orjson

from espwire.broker import wait_for_port
from ingest_gateway.app import serve
from tests.support.gateway import gateway_settings, running_gateway

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
