"""Recurly Engage S3 export import: the recorded export file and bad lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from espwire.envelope import Envelope
from processors.adapters.base import AdaptResult
from processors.adapters.recurly_engage import RecurlyEngageAdapter
from processors.adapters.recurly_engage_s3 import adapt_export
from tests.fixture_cases import PROVIDERS_DIR, sequence_mismatches
from tests.support.adapter_properties import assert_well_formed

S3_DIR = PROVIDERS_DIR / "recurly_engage" / "s3"
ARTIFACTS = sorted(S3_DIR.glob("*.expect.json"))
RECEIVED = "2026-11-24T00:00:00Z"


def envelope(body: bytes, method: str = "S3") -> Envelope:
    return Envelope(
        source_id="engage-s3",
        provider="recurly_engage",
        request_id="exports/usages.json",
        received_at=RECEIVED,
        method=method,
        content_type="application/x-ndjson" if method == "S3" else "application/json",
        body=body,
    )


def adapt(body: bytes) -> AdaptResult:
    result = adapt_export(envelope(body))
    assert_well_formed(result)
    return result


@pytest.mark.parametrize("expect_path", ARTIFACTS, ids=lambda p: p.name)
def test_artifact(expect_path: Path) -> None:
    expect = json.loads(expect_path.read_text())
    body = (S3_DIR / expect["artifact"]).read_bytes()
    result = adapt(body)
    assert result.failures == []
    assert sequence_mismatches(expect["expect_events"], list(result.events)) == []  # type: ignore[arg-type]
    # The same objects posted to the webhook give the same events (same mapping, same ids).
    as_batch = b"[" + b",".join(line for line in body.splitlines() if line.strip()) + b"]"
    webhook = RecurlyEngageAdapter().adapt(envelope(as_batch, method="POST"))
    assert [e["id"] for e in webhook.events] == [e["id"] for e in result.events]
    assert [e["data"] for e in webhook.events] == [e["data"] for e in result.events]
    streamed = adapt_export(envelope(b""), iter(body.splitlines(keepends=True)))
    assert [e["id"] for e in streamed.events] == [e["id"] for e in result.events]


def test_bad_lines_fail_alone() -> None:
    body = (
        b'{"event":"Goal","user_id":"u-1","type":"prompt","ts":1795161700}\n'
        b"\n"
        b'{"event":"Goal",\n'
        b'[{"event":"Goal"}]\n'
        b'{"event":"Goal","user_id":"\xff"}\n'
        b'{"user_id":"u-2"}\n'
        b'{"event":"Home Page","type":"page","user_id":98765,"ts":"1795161800"}\r\n'
    )
    result = adapt(body)
    assert [e.get("subject") for e in result.events] == ["u-1", "98765"]
    assert sorted((f.reason, f.index) for f in result.failures) == [
        ("invalid_event", 3),
        ("invalid_event", 5),
        ("invalid_json", 2),
        ("invalid_utf8", 4),
    ]


@pytest.mark.parametrize("body", [b"", b"\n \n"])
def test_empty_export(body: bytes) -> None:
    assert adapt(body) == AdaptResult()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.binary(max_size=80) | st.text(alphabet='{}[]",:0123456789 eventGoalts', max_size=60).map(str.encode))
)
def test_random_exports_never_raise(lines: list[bytes]) -> None:
    result = adapt(b"\n".join(lines))
    assert isinstance(result, AdaptResult)


@pytest.mark.parametrize("indent", [None, 2])
def test_an_export_holding_the_webhooks_array_is_that_batch(indent: int | None) -> None:
    """The document's payload shape ("a JSON array of event objects") in a file, one line or pretty-printed."""
    items = [
        {"event": "Goal", "user_id": "u-1", "type": "prompt", "ts": 1795161700},
        {"event": "Home Page", "type": "page", "user_id": 98765, "ts": "1795161800"},
    ]
    body = json.dumps(items, indent=indent).encode()
    result = adapt(body)
    assert result.failures == []
    ndjson = adapt(b"\n".join(json.dumps(item).encode() for item in items))
    assert [e["id"] for e in result.events] == [e["id"] for e in ndjson.events]
    assert [e["data"] for e in result.events] == [e["data"] for e in ndjson.events]
    streamed = adapt_export(envelope(b""), iter(body.splitlines(keepends=True)))
    assert [e["id"] for e in streamed.events] == [e["id"] for e in ndjson.events]


def test_an_array_file_that_does_not_read_whole_is_read_by_lines() -> None:
    body = b'[{"event":"Goal","user_id":"u-1"}]\n{"event":"Goal","user_id":"u-2","type":"prompt"}\n{"event":\n'
    result = adapt(body)
    assert [e.get("subject") for e in result.events] == ["u-2"]
    assert sorted((f.reason, f.index) for f in result.failures) == [("invalid_event", 0), ("invalid_json", 2)]
