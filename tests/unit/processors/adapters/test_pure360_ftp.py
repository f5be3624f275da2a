"""Pure360 FTP event log import: the recorded daily log, the line format's quirks, and bad lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from espwire.envelope import Envelope
from processors.adapters.base import AdaptResult
from processors.adapters.json_body import BodyError
from processors.adapters.pure360 import Pure360Adapter
from processors.adapters.pure360_ftp import adapt_log, parse_line
from tests.fixture_cases import PROVIDERS_DIR, sequence_mismatches
from tests.support.adapter_properties import assert_well_formed

FTP_DIR = PROVIDERS_DIR / "pure360" / "ftp"
ARTIFACTS = sorted(FTP_DIR.glob("*.expect.json"))
RECEIVED = "2026-11-24T00:00:00Z"


def envelope(body: bytes, name: str = "events.log") -> Envelope:
    return Envelope(
        source_id="pure360-ftp",
        provider="pure360",
        request_id=name,
        received_at=RECEIVED,
        method="FTP",
        content_type="text/plain",
        body=body,
    )


def adapt(body: bytes | str) -> AdaptResult:
    result = adapt_log(envelope(body.encode() if isinstance(body, str) else body))
    assert_well_formed(result)
    return result


@pytest.mark.parametrize("expect_path", ARTIFACTS, ids=lambda p: p.name)
def test_artifact(expect_path: Path) -> None:
    expect = json.loads(expect_path.read_text())
    body = (FTP_DIR / expect["artifact"]).read_bytes()
    result = adapt(body)
    assert result.failures == []
    assert sequence_mismatches(expect["expect_events"], list(result.events)) == []  # type: ignore[arg-type]
    # Streaming the lines gives the same events.
    streamed = adapt_log(envelope(b""), iter(body.splitlines(keepends=True)))
    assert [e["id"] for e in streamed.events] == [e["id"] for e in result.events]


def test_line_format_quirks() -> None:
    line = (
        '\'"type:CLICK","event date:1795165200","email:carla@example.net",'
        '"click url:https://shop.example.com/l/2?a=1&b=2","bounce reason:550 5.1.1 user unknown, account disabled",'
        '"lastName:O\'Neil", "list names:web_signup, fb_signup"\''
    )
    assert parse_line(line) == {
        "type": "CLICK",
        "event date": "1795165200",
        "email": "carla@example.net",
        "click url": "https://shop.example.com/l/2?a=1&b=2",
        "bounce reason": "550 5.1.1 user unknown, account disabled",
        "lastName": "O'Neil",
        "list names": "web_signup, fb_signup",
    }
    assert parse_line('\'"type:DELIVERYSTART", "delivery complete date:""\'') == {
        "type": "DELIVERYSTART",
        "delivery complete date": "",
    }
    # A value containing "," is joined back together.
    assert parse_line('\'"type:OPEN","note:a","b"\'') == {"type": "OPEN", "note": 'a","b'}
    # Without the outer single quotes too.
    assert parse_line('"type:OPEN","email:a@b.c"') == {"type": "OPEN", "email": "a@b.c"}


def test_same_notification_same_event_as_http() -> None:
    line = b'\'"type:BOUNCE","event date:1795165500","email:dev@example.com","bounce reason:550 5.1.1 no"\''
    ftp = adapt(line).events[0]
    http = (
        Pure360Adapter()
        .adapt(
            Envelope(
                source_id="pure360-ftp",
                provider="pure360",
                request_id="r1",
                received_at=RECEIVED,
                method="POST",
                content_type="application/x-www-form-urlencoded",
                body=b"type=BOUNCE&Event_date=1795165500&email=dev@example.com&Bounce_Reason=550%205.1.1%20no",
            )
        )
        .events[0]
    )
    for section in ("occurred_at", "recipient", "bounce", "reject_reason", "provider_event_type"):
        assert ftp["data"][section] == http["data"][section]
    assert ftp["type"] == http["type"] == "email.bounced"


def test_bad_lines_fail_alone() -> None:
    body = (
        b'\'"type:OPEN","event date:1795164900","email:a@example.com"\'\n'
        b"\n"
        b"not a log line\n"
        b'\'"type:OPEN","email:b@\xc3\x28.com"\'\n'
        b'\'"event date:1795164900","email:c@example.com"\'\n'
        b'\'"no colon here","type:OPEN"\'\n'
        b'\'"type:CLICK","event date:1795165200","email:d@example.com"\'\r\n'
    )
    result = adapt(body)
    assert [e["subject"] for e in result.events] == ["a@example.com", "d@example.com"]
    assert sorted((f.reason, f.index) for f in result.failures) == [
        ("invalid_event", 4),
        ("invalid_line", 2),
        ("invalid_line", 5),
        ("invalid_utf8", 3),
    ]


@pytest.mark.parametrize("body", [b"", b"\n\n  \n"])
def test_empty_log_is_a_quiet_day(body: bytes) -> None:
    assert adapt(body) == AdaptResult()


def test_parse_line_refuses_other_shapes() -> None:
    with pytest.raises(BodyError):
        parse_line("type=OPEN&email=a")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=80) | st.text(alphabet="'\",: :typeOPN0123456789", max_size=60).map(str.encode)))
def test_random_logs_never_raise(lines: list[Any]) -> None:
    result = adapt(b"\n".join(lines))
    assert isinstance(result, AdaptResult)
