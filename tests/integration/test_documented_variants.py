"""Body shapes the providers' documents show, beyond the shared fixtures, through a real gateway, broker and
processor: each POST gets 200, is kept byte for byte on espwire.raw, and gives its events on espwire.events."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import quote

import aiohttp
import orjson

from espwire.envelope import Envelope
from processors.consumer import run_processor
from tests.support.adapter_requests import summary
from tests.support.gateway import gateway_settings, running_gateway
from tests.support.kafka import consume_all

FORM = "application/x-www-form-urlencoded"
# (source, body, content type, what its one event must be: type, subject, occurred_at, provider_event_type)
POSTS: list[tuple[str, bytes, str, tuple[str, str | None, str | None, str]]] = [
    # Pure360's HTTP reference lays the body out one field a line.
    (
        "pure360",
        b"type=OPEN&\nEvent_date=1795161994&\nemail=a%40example.com&\nmessageName=Welcome",
        FORM,
        ("email.opened", "a@example.com", "2026-11-20T08:06:34Z", "OPEN"),
    ),
    (
        "pure360",
        b"type=DELIVERYSTART&\r\nDelivery_Start_Date=1795161800&\r\nmessageName=Welcome\r\n",
        FORM,
        ("campaign.started", None, "2026-11-20T08:03:20Z", "DELIVERYSTART"),
    ),
    # Falconide's guide writes BOUNCE TYPE and FROM ADDRESS with spaces; a form posts them as +.
    (
        "falconide",
        b"TRANSID=198987967556&EMAIL=b%40example.com&EVENT=bounced&TIMESTAMP=1795161700"
        b"&BOUNCE+TYPE=SOFTBOUNCE&BOUNCE+REASON=452+4.2.2+Mailbox+full&FROM+ADDRESS=info%40example.com\r\n",
        FORM,
        ("email.bounced", "b@example.com", "2026-11-20T08:01:40Z", "bounced"),
    ),
    # Falconide TIMESTAMP is Unix seconds: a millisecond count is no time (the event keeps received_at).
    (
        "falconide",
        b'[{"TRANSID":"198987967557","EMAIL":"c@example.com","EVENT":"sent","TIMESTAMP":"1795161700250"}]',
        "application/json",
        ("email.delivered", "c@example.com", None, "sent"),  # Falconide "sent" is a delivery
    ),
    # A batch in a form field beside the params the guide says come with every call: the batch, with them.
    (
        "falconide",
        b"data="
        + quote(
            '[{"TRANSID":"198987967558","EMAIL":"d@example.com","EVENT":"opened","TIMESTAMP":"1795161700"}]'
        ).encode()
        + b"&X-APIHEADER=ACC1",
        FORM,
        ("email.opened", "d@example.com", "2026-11-20T08:01:40Z", "opened"),
    ),
]


async def test_documented_variants_are_kept_and_give_their_events(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = gateway_settings(topic_prefix, tmp_path)
    stop = asyncio.Event()
    processor = asyncio.create_task(run_processor(settings, kafka_bootstrap, stop))
    posted: dict[str, tuple[bytes, tuple[str, str | None, str | None, str]]] = {}
    async with running_gateway(settings, kafka_bootstrap) as gateway, aiohttp.ClientSession() as session:
        for source, body, content_type, expected in POSTS:
            async with session.post(
                f"{gateway.url}/hooks/{source}", data=body, headers={"Content-Type": content_type}
            ) as response:
                assert response.status == 200, body
                posted[(await response.json())["request_id"]] = (body, expected)
        raw = await consume_all(kafka_bootstrap, f"{topic_prefix}.raw", expect=len(POSTS))
        records = await consume_all(kafka_bootstrap, f"{topic_prefix}.events", expect=len(POSTS), timeout=90)
        dead = await consume_all(kafka_bootstrap, f"{topic_prefix}.dlq", idle_seconds=2)
    stop.set()
    await processor

    # Every acknowledged request is on espwire.raw exactly as sent, once.
    stored = {env.request_id: env.body for env in (Envelope.from_record(r.value, r.headers) for r in raw)}
    assert stored == {request_id: body for request_id, (body, _) in posted.items()}
    assert dead == []
    events = [orjson.loads(record.value) for record in records]
    got = {e["data"]["request_id"]: summary(e) for e in events}
    assert len(events) == len(POSTS)
    assert got == {request_id: expected for request_id, (_, expected) in posted.items()}
    (bounced,) = (e for e in events if e["type"] == "email.bounced")
    assert bounced["data"]["bounce"]["severity"] == "soft"
    assert bounced["data"]["message"]["from"] == "info@example.com"
    (opened,) = (e for e in events if e["type"] == "email.opened" and e["data"]["provider"] == "falconide")
    assert opened["data"]["raw"]["X-APIHEADER"] == "ACC1"
