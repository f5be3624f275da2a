"""HTTP forward sink against real local receivers that verify Standard Webhooks signatures."""

from __future__ import annotations

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
from sinks.runner import DLQ_HEADER
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


async def test_flaky_receiver_gets_each_event_once_dead_one_gets_a_dead_letter_topic(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    # The flaky receiver knows only the new secret: rotation means both signatures are sent.
    flaky = Receiver(NEW_SECRET, script=[503, 500])
    down = Receiver(OLD_SECRET, script=[500] * 1000)
    async with serving(flaky, down):
        config = SinkConfig(
            name="fwd",
            type="http_forward",
            batch_wait_ms=50,
            max_events_per_request=100,
            destinations=[
                _destination("flaky", flaky),
                _destination("down", down, max_attempts=2, max_elapsed_seconds=2),
            ],
        )  # type: ignore[call-arg]
        settings = sink_settings(topic_prefix, tmp_path, config)
        events = [make_event(i) for i in range(250)]
        await publish_events(kafka_bootstrap, topic_prefix, events)
        async with running_sink(settings, config, kafka_bootstrap):

            async def delivered() -> bool:
                return len(flaky.received) >= 250

            await wait_until(delivered)
            dead = await consume_all(
                kafka_bootstrap, Topics(topic_prefix).sink_dlq("fwd.down"), expect=250, idle_seconds=1
            )
    assert sorted(e["id"] for e in flaky.received) == sorted(e["id"] for e in events)
    assert flaky.bad_signatures == 0 and down.bad_signatures == 0
    assert len(set(flaky.webhook_ids)) == len(flaky.webhook_ids)
    assert sorted(orjson.loads(r.value)["id"] for r in dead) == sorted(e["id"] for e in events)
    assert orjson.loads(dict(dead[0].headers)[DLQ_HEADER])["reason"].startswith("retries_exhausted: http_500")


async def test_refused_content_is_dead_lettered_at_once_and_webhook_id_is_stable(tmp_path: Path) -> None:
    refusing = Receiver(NEW_SECRET, script=[422])
    async with serving(refusing):
        config = SinkConfig(name="fwd", type="http_forward", destinations=[_destination("strict", refusing)])  # type: ignore[call-arg]
        sink = HttpForwardSink(HttpForwardOptions.from_config(config), sink_settings("p", tmp_path))
        await sink.start()
        try:
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
        finally:
            await sink.close()
