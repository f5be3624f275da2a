"""Promise 4: a hostile client cannot crash, hang or starve the gateway, and never gets a secret logged."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest

from tests.support.gateway import gateway_settings, running_gateway
from tests.support.kafka import consume_all

TOKEN = {"X-MessageSystems-Webhook-Token": "sp-test-token"}


async def _raw_request(port: int, head: bytes, body_parts: list[bytes], pause: float = 0.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        for part in body_parts:
            await asyncio.sleep(pause)
            writer.write(part)
            await writer.drain()
        return await asyncio.wait_for(reader.read(4096), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_slow_body_gets_408(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    settings = gateway_settings(topic_prefix, tmp_path, read_timeout_seconds=1.0)
    async with running_gateway(settings, kafka_bootstrap):
        head = (
            b"POST /hooks/sparkpost HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
            b"X-MessageSystems-Webhook-Token: sp-test-token\r\n\r\n"
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        response = await _raw_request(settings.gateway.port, head, [b"[" for _ in range(3)], pause=0.6)
        assert response.startswith(b"HTTP/1.1 408"), response[:80]
        assert loop.time() - started < 5


async def test_declared_oversize_is_refused_before_the_body_is_sent(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = gateway_settings(topic_prefix, tmp_path, max_body_bytes=1024)
    async with running_gateway(settings, kafka_bootstrap):
        head = (
            b"POST /hooks/sparkpost HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n"
            b"X-MessageSystems-Webhook-Token: sp-test-token\r\n\r\n"
        )
        response = await _raw_request(settings.gateway.port, head, [])
        assert response.startswith(b"HTTP/1.1 413")


async def test_chunked_oversize_is_refused(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    settings = gateway_settings(topic_prefix, tmp_path, max_body_bytes=64 * 1024)

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(100):
            yield b"x" * 8192

    async with running_gateway(settings, kafka_bootstrap) as gateway, aiohttp.ClientSession() as session:
        async with session.post(f"{gateway.url}/hooks/sparkpost", data=chunks(), headers=TOKEN) as response:
            assert response.status == 413
    assert await consume_all(kafka_bootstrap, f"{topic_prefix}.raw", idle_seconds=1.5) == []


async def test_refused_credentials_are_never_logged(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = gateway_settings(topic_prefix, tmp_path)
    caplog.set_level(logging.DEBUG)
    guesses = ["sp-test-token-GUESS", "Basic c3AtdXNlcjpzcC1wYXNzWA==", "Bearer sp-oauth-GUESS"]
    async with running_gateway(settings, kafka_bootstrap) as gateway, aiohttp.ClientSession() as session:
        for guess in guesses:
            header = {"X-MessageSystems-Webhook-Token": guess} if guess.startswith("sp-") else {"Authorization": guess}
            async with session.post(f"{gateway.url}/hooks/sparkpost", data=b"[]", headers=header) as response:
                assert response.status == 401
        async with session.post(f"{gateway.url}/hooks/sparkpost", data=b"[]", headers=TOKEN) as response:
            assert response.status == 200
    logged = "\n".join(record.getMessage() + repr(record.__dict__) for record in caplog.records)
    for secret in ["sp-test-token", "c3AtdXNlcjpzcC1wYXNz", "sp-oauth", "sp-pass"]:
        assert secret not in logged
    records = await consume_all(kafka_bootstrap, f"{topic_prefix}.raw", expect=1, idle_seconds=1.5)
    assert len(records) == 1, "only the authenticated request is stored"
    assert all(b"sp-test-token" not in value for _, value in records[0].headers)
