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


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # "key : value" as the documentation describes the format: the spaces are the separator's.
        (
            '\'"type : OPEN","event date : 1795164900","email : a@example.com"\'',
            {"type": "OPEN", "event date": "1795164900", "email": "a@example.com"},
        ),
        ('\'"type:DELIVERY","message type: EMAIL"\'', {"type": "DELIVERY", "message type": "EMAIL"}),
        (
            '\'"type:DELIVERYSTART", "delivery complete date: ""\'',
            {"type": "DELIVERYSTART", "delivery complete date": ""},
        ),
        # The documented DELIVERY example's item without its closing quote.
        (
            '\'"type:DELIVERY","profile: profileName,"delivery id:989565","emails sent:256545"\'',
            {"type": "DELIVERY", "profile": "profileName", "delivery id": "989565", "emails sent": "256545"},
        ),
        # A "," inside a value that is not followed by a name and its colon stays in the value.
        ('\'"type:OPEN","note:a,"b c","email:a@x.com"\'', {"type": "OPEN", "note": 'a,"b c', "email": "a@x.com"}),
    ],
)
def test_documented_spacing_and_unclosed_items(line: str, expected: dict[str, str]) -> None:
    assert parse_line(line) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            b'\'"type : OPEN","event date : 1795164900","email : bob@example.org"\'',
            ("email.opened", "bob@example.org", "2026-11-20T08:55:00Z", "OPEN"),
        ),
        (
            b'\'"type:DELIVERY","profile: TestProfile,"delivery complete date:1795166100","emails sent:256545"\'',
            ("campaign.sending", None, "2026-11-20T09:15:00Z", "DELIVERY"),
        ),
    ],
)
def test_documented_variants_give_the_event(line: bytes, expected: tuple[str, str | None, str, str]) -> None:
    # Before: provider_event_type " OPEN"; the DELIVERY time was swallowed by the "profile" value.
    (event,) = adapt(line).events
    data = event["data"]
    assert (event["type"], event.get("subject"), data["occurred_at"], data["provider_event_type"]) == expected
