"""HTTP forward sink against real local receivers that verify Standard Webhooks signatures."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from espwire.broker import free_port
from espwire.config import SinkConfig
from espwire.topics import Topics
from sinks.http_forward import HttpForwardOptions, HttpForwardSink
from sinks.runner import SinkStatus
from tests.integration.sinks.conftest import publish_events, running_sink, sink_settings, wait_until
from tests.support.kafka import consume_all
from tests.unit.sinks.factory import make_event

OLD_SECRET = "whsec_" + base64.b64encode(b"old-secret-old-secret-32-bytes!!").decode()
NEW_SECRET = "whsec_" + base64.b64encode(b"new-secret-new-secret-32-bytes!!").decode()


@dataclass
class Receiver:
    """Accepts a request only with a valid signature; ``script`` gives the statuses to answer first."""

    secret: str
    script: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    bad_signatures: int = 0
    webhook_ids: list[str] = field(default_factory=list)
    url: str = ""
    max_events: int | None = None  # more in one request: 413

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests += 1
        try:
            Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.bad_signatures += 1
            return web.Response(status=401)
        if self.script:
            status = self.script.pop(0)
            return web.Response(status=status, headers={"Retry-After": "1"} if status in (429, 503) else {})
        if self.max_events is not None and len(orjson.loads(body)) > self.max_events:
            return web.Response(status=413)
        self.webhook_ids.append(request.headers["webhook-id"])
        self.received.extend(orjson.loads(body))
        return web.Response(status=204)


@contextlib.asynccontextmanager
async def serving(*receivers: Receiver) -> AsyncIterator[None]:
    app = web.Application()
    for i, receiver in enumerate(receivers):
        app.router.add_post(f"/r{i}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    for i, receiver in enumerate(receivers):
        receiver.url = f"http://127.0.0.1:{port}/r{i}"
    try:
        yield
    finally:
        await runner.cleanup()


def _destination(name: str, receiver: Receiver, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "url": receiver.url,
        "secrets": [OLD_SECRET, NEW_SECRET],
        "backoff_initial_seconds": 0.05,
        **extra,
    }


@contextlib.asynccontextmanager
async def started_sink(tmp_path: Path, name: str, receiver: Receiver) -> AsyncIterator[HttpForwardSink]:
    """The sink alone (no runner) with one destination, started and closed around the block."""
    config = SinkConfig(name="fwd", type="http_forward", destinations=[_destination(name, receiver)])  # type: ignore[call-arg]
    sink = HttpForwardSink(HttpForwardOptions.from_config(config), sink_settings("p", tmp_path))
    await sink.start()
    try:
        yield sink
    finally:
        await sink.close()


async def test_a_receiver_down_holds_its_sink_back_and_each_receiver_gets_each_event_once(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    # The flaky receiver knows only the new secret: rotation means both signatures are sent.
    flaky = Receiver(NEW_SECRET, script=[503, 500])
    # Down for a while, misconfigured and failing: none of it is the events' fault, so none is dead-lettered.
    down = Receiver(OLD_SECRET, script=[401, 404, 302, 500, 429, 500, 500, 500])
    async with serving(flaky, down):
        config = SinkConfig(
            name="fwd",
            type="http_forward",
            batch_wait_ms=50,
            max_events_per_request=100,
            retry_initial_seconds=0.1,
            retry_max_seconds=0.5,
            destinations=[
                _destination("flaky", flaky),
                _destination("down", down, max_attempts=2, max_elapsed_seconds=2, breaker_reset_seconds=0.5),
            ],
        )  # type: ignore[call-arg]
        settings = sink_settings(topic_prefix, tmp_path, config)
        status = SinkStatus()
        events = [make_event(i) for i in range(250)]
        await publish_events(kafka_bootstrap, topic_prefix, events)
        async with running_sink(settings, config, kafka_bootstrap, status):

            async def not_ready() -> bool:
                return not status.ready and down.requests > 0

            async def delivered() -> bool:
                return len(down.received) >= 250 and status.ready

            await wait_until(not_ready)
            await wait_until(delivered)
    dead = await consume_all(kafka_bootstrap, Topics(topic_prefix).sink_dlq("fwd.down"), idle_seconds=1)
    assert dead == [], "a destination that is down is waited for, never dead-lettered"
    ids = sorted(e["id"] for e in events)
    # The batch retried while "down" was down was not sent to "flaky" again.
    assert sorted(e["id"] for e in flaky.received) == ids
    assert sorted(e["id"] for e in down.received) == ids
    assert flaky.bad_signatures == 0 and down.bad_signatures == 0
    assert len(set(flaky.webhook_ids)) == len(flaky.webhook_ids)


async def test_a_request_too_large_is_split_and_one_event_too_large_dead_lettered(tmp_path: Path) -> None:
    small = Receiver(NEW_SECRET, max_events=2)
    async with serving(small), started_sink(tmp_path, "small", small) as sink:
        events = [make_event(i) for i in range(7)]
        outcome = await sink.write_batch(events)
        assert outcome.ok and outcome.written == 7
        assert sorted(e["id"] for e in small.received) == sorted(e["id"] for e in events)
        small.max_events = 0  # now it takes nothing at all
        outcome = await sink.write_batch([make_event(9)])
        assert [(p.index, p.reason) for p in outcome.poison] == [(0, "http_413")]


async def test_refused_content_is_dead_lettered_at_once_and_webhook_id_is_stable(tmp_path: Path) -> None:
    refusing = Receiver(NEW_SECRET, script=[422])
    async with serving(refusing), started_sink(tmp_path, "strict", refusing) as sink:
        events = [make_event(i) for i in range(3)]
        outcome = await sink.write_batch(events)
        assert [(p.index, p.reason, p.topic) for p in outcome.poison] == [
            (i, "http_422", "p.dlq.fwd.strict") for i in range(3)
        ]
        assert refusing.requests == 1, "a 4xx is not retried"
        again = await sink.write_batch(events)
        assert again.ok and again.written == 3
        await sink.write_batch(events)
        assert refusing.webhook_ids[0] == refusing.webhook_ids[1], "same events, same webhook-id"


async def test_a_receiver_that_accepts_then_stalls_its_answer_gets_the_request_once(tmp_path: Path) -> None:
    # 200 at once, then a body that trickles on past the sink's timeout (a proxy streaming, a slow app):
    # the status says the request was taken; before, the read timed out, the request was sent again on
    # every attempt and the batch was never done (DestinationUnavailable, over and over).
    requests: list[bytes] = []

    async def accept_then_stall(request: web.Request) -> web.StreamResponse:
        requests.append(await request.read())
        Webhook(NEW_SECRET).verify(requests[-1], dict(request.headers))
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            for _ in range(20):
                await response.write(b'{"status": "queued"} ')
                await asyncio.sleep(0.2)
        return response

    app = web.Application()
    app.router.add_post("/slow", accept_then_stall)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    destination = {
        "name": "slow",
        "url": f"http://127.0.0.1:{port}/slow",
        "secrets": [NEW_SECRET],
        "timeout_seconds": 1,
        "max_attempts": 3,
        "backoff_initial_seconds": 0.05,
    }
    config = SinkConfig(name="fwd", type="http_forward", destinations=[destination])  # type: ignore[call-arg]
    sink = HttpForwardSink(HttpForwardOptions.from_config(config), sink_settings("p", tmp_path))
    await sink.start()
    try:
        events = [make_event(i) for i in range(3)]
        outcome = await sink.write_batch(events)
        assert outcome.ok and outcome.written == 3
        assert len(requests) == 1
        assert [e["id"] for e in orjson.loads(requests[0])] == [e["id"] for e in events]
    finally:
        await sink.close()
        await runner.cleanup()
