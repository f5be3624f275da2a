"""Every fixture request posted to a real gateway: the right status, and byte-identical bodies in espwire.raw."""

from __future__ import annotations

import gzip
import io
from ipaddress import ip_network
from pathlib import Path

import aiohttp
import pytest

from espwire.envelope import Envelope
from tests.fixture_cases import Case, all_http_cases
from tests.support.gateway import gateway_settings, running_gateway
from tests.support.kafka import consume_all

CASES = all_http_cases()


def _stored(case: Case) -> bool:
    """Whether a correct gateway keeps a record of this request on espwire.raw."""
    return case.meta["expect_status"] == 200 and case.meta["method"] not in ("HEAD",)


async def post_case(session: aiohttp.ClientSession, base_url: str, case: Case) -> aiohttp.ClientResponse:
    url = f"{base_url}/hooks/{case.provider}"
    if case.meta.get("query"):
        url += "?" + case.meta["query"]
    method = case.meta["method"]
    body = io.BytesIO(case.body) if method not in ("GET", "HEAD") else None
    async with session.request(
        method, url, data=body, headers=case.headers, skip_auto_headers=["Content-Type"]
    ) as response:
        await response.read()
        return response


async def test_every_fixture_gets_its_status_and_is_kept_byte_identical(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = gateway_settings(topic_prefix, tmp_path)
    statuses: dict[str, int] = {}
    request_ids: dict[str, str] = {}
    async with running_gateway(settings, kafka_bootstrap) as gateway, aiohttp.ClientSession() as session:
        for case in CASES:
            response = await post_case(session, gateway.url, case)
            statuses[case.id] = response.status
            if response.status == 200 and case.meta["method"] == "POST":
                request_ids[case.id] = (await response.json())["request_id"]
    wrong = {
        cid: (got, c.meta["expect_status"])
        for c in CASES
        if (got := statuses[(cid := c.id)]) != c.meta["expect_status"]
    }
    assert not wrong, wrong

    stored_cases = [c for c in CASES if _stored(c)]
    records = await consume_all(kafka_bootstrap, f"{topic_prefix}.raw", expect=len(stored_cases))
    envelopes = {
        Envelope.from_record(r.value, r.headers).request_id: Envelope.from_record(r.value, r.headers) for r in records
    }
    assert len(records) == len(stored_cases), "one raw record per accepted request, none for refused ones"
    for case_id, request_id in request_ids.items():
        case = next(c for c in CASES if c.id == case_id)
        envelope = envelopes[request_id]
        assert envelope.body == case.body, case_id
        assert envelope.provider == case.provider
        # Credentials never reach Kafka.
        assert not {"authorization", "x-api-key", "x-messagesystems-webhook-token"} & set(envelope.headers)
    for record in records:
        assert b"sp-test-token" not in b"".join(v for _, v in record.headers)


@pytest.mark.parametrize(
    "header",
    [
        {},
        {"X-MessageSystems-Webhook-Token": "nope"},
        {"Authorization": "Basic c3AtdXNlcjpub3Bl"},
        {"Authorization": "Bearer nope"},
    ],
)
async def test_sparkpost_refuses_bad_credentials(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, header: dict[str, str]
) -> None:
    settings = gateway_settings(topic_prefix, tmp_path)
    async with running_gateway(settings, kafka_bootstrap) as gateway, aiohttp.ClientSession() as session:
        async with session.post(f"{gateway.url}/hooks/sparkpost", data=b"[]", headers=header) as response:
            assert response.status == 401
            if "Authorization" in header or not header:
                assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert await consume_all(kafka_bootstrap, f"{topic_prefix}.raw", idle_seconds=1.5) == []


async def test_unknown_source_and_ip_allow_list(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    settings = gateway_settings(topic_prefix, tmp_path)
    pure360 = settings.sources[3].model_copy(update={"allow_ips": [ip_network("203.0.113.0/24")]})
    settings = settings.model_copy(update={"sources": [*settings.sources[:3], pure360, *settings.sources[4:]]})
    async with running_gateway(settings, kafka_bootstrap) as gateway, aiohttp.ClientSession() as session:
        async with session.post(f"{gateway.url}/hooks/nope", data=b"x") as response:
            assert response.status == 404
        async with session.post(f"{gateway.url}/hooks/pure360", data=b"type=OPEN") as response:
            assert response.status == 401  # 127.0.0.1 is not in 203.0.113.0/24
        async with session.get(f"{gateway.url}/healthz") as response:
            assert response.status == 200
        async with session.get(f"{gateway.url}/readyz") as response:
            assert response.status == 200
            assert (await response.json())["kafka"] is True
        async with session.get(f"{gateway.url}/metrics") as response:
            text = await response.text()
            assert 'espwire_gateway_requests_total{provider="pure360",source="pure360",status="401"}' in text


async def test_a_multi_member_gzip_body_is_kept_whole_and_trailing_garbage_is_refused_unstored(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """RFC 1952 lets a gzip body hold several members (`cat a.gz b.gz`): all of it is what was acknowledged.
    Bytes after the end of the stream are a 400 and leave no record (the sender learns, nothing half-kept)."""
    first = b'[{"msys":{"message_event":{"type":"delivery","event_id":"1","rcpt_to":"a@x.com"}}},'
    second = b'{"msys":{"message_event":{"type":"delivery","event_id":"2","rcpt_to":"b@x.com"}}}]'
    headers = {"X-MessageSystems-Webhook-Token": "sp-test-token", "Content-Encoding": "gzip"}
    settings = gateway_settings(topic_prefix, tmp_path)
    async with running_gateway(settings, kafka_bootstrap) as gateway, aiohttp.ClientSession() as session:
        url = f"{gateway.url}/hooks/sparkpost"
        async with session.post(url, data=gzip.compress(first) + gzip.compress(second), headers=headers) as ok:
            assert ok.status == 200
            accepted = (await ok.json())["request_id"]
        async with session.post(url, data=gzip.compress(first) + b"garbage", headers=headers) as refused:
            assert refused.status == 400
    records = await consume_all(kafka_bootstrap, f"{topic_prefix}.raw", expect=1)
    assert [(e.request_id, e.body) for e in (Envelope.from_record(r.value, r.headers) for r in records)] == [
        (accepted, first + second)
    ]
