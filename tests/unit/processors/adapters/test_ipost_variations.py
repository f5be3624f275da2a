"""IPostAdapter against variations a real Firehose sender can produce beyond the recorded fixtures.

Each case states the concrete outcome: canonical type, subject, occurred_at, provider_event_type and the
raw values kept as sent (leading-zero numbers as their digit strings), or the failure reason.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from espwire.event import CanonicalEvent
from processors.adapters.base import AdaptResult
from processors.adapters.ipost import IPostAdapter
from tests.support.adapter_requests import RECEIVED, adapted, only, request

ADAPTER = IPostAdapter()


def adapt(body: str | bytes, content_type: str = "application/json", **options: Any) -> AdaptResult:
    envelope = request("ipost", body, source_id="ipost-main", content_type=content_type, options=options)
    return adapted(ADAPTER, envelope)


def one(body: str | bytes, content_type: str = "application/json", **options: Any) -> CanonicalEvent:
    return only(adapt(body, content_type, **options))


def open_with_time(literal: str) -> str:
    """An open event whose event_time is the given JSON literal, written as the Firehose does (bare)."""
    return (
        '{"event_name":"open","event_time":' + literal + ',"event_properties":{"mailing_id":000001},'
        '"contact":{"email":"ann@example.com","contact_id":"7"}}'
    )


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        # The documented forms: YYYY-MM-DD HH:MM:SS (UTC), ISO 8601 with Z or an offset, epoch seconds.
        ('"2026-11-20 08:01:40"', "2026-11-20T08:01:40Z"),
        ('"2026-11-20T08:01:40Z"', "2026-11-20T08:01:40Z"),
        ('"2026-11-20T08:01:40.250Z"', "2026-11-20T08:01:40.250Z"),
        ('"2026-11-20T03:01:40-05:00"', "2026-11-20T08:01:40Z"),
        ('"2026-11-20T09:01:40+01:00"', "2026-11-20T08:01:40Z"),
        ('"2026-11-20T09:01:40+0100"', "2026-11-20T08:01:40Z"),
        ('"2026-11-20 09:01:40+01:00"', "2026-11-20T08:01:40Z"),
        ('"2026-11-20T08:01:40"', "2026-11-20T08:01:40Z"),
        ("1795161700", "2026-11-20T08:01:40Z"),
        ('"1795161700"', "2026-11-20T08:01:40Z"),
        ('" 1795161700 "', "2026-11-20T08:01:40Z"),
        ("1795161700.5", "2026-11-20T08:01:40.500Z"),
        ("1795161700250", None),  # milliseconds: iPost sends seconds, anything else is no time
        # RFC 3339 allows lower-case t and z; ISO 8601 also has the basic (no separators) format.
        ('"2026-11-20t08:01:40z"', "2026-11-20T08:01:40Z"),
        ('"20261120T080140Z"', "2026-11-20T08:01:40Z"),
        ('"20261120T090140+0100"', "2026-11-20T08:01:40Z"),
        # Garbage: placeholders, dates without a time, impossible dates, out-of-range instants -> null.
        ('"view_time"', None),
        ('"send_time"', None),
        ('"2026-11-20"', None),
        ('"2026-02-30 08:00:00"', None),
        ('"0000-00-00 00:00:00"', None),
        ('"2026-11-20 08:01:40 UTC"', None),
        ('"0001-01-01T00:00:00+01:00"', None),
        ('"9999-12-31T23:59:59-01:00"', None),
        ('"0999-06-01 00:00:00"', None),
        ('"1.7951617e9"', None),
        ("-1795161700", None),
        ("42", None),
        ('""', None),
        ("null", None),
        ("true", None),
        ("[1795161700]", None),
        ('{"t":1795161700}', None),
    ],
)
def test_event_time_forms(literal: str, expected: str | None) -> None:
    event = one(open_with_time(literal))
    data = event["data"]
    assert event["type"] == "email.opened"
    assert event["subject"] == "ann@example.com"
    assert data["occurred_at"] == expected
    assert data["time_source"] == ("provider" if expected else "received")
    assert event["time"] == (expected or RECEIVED)
    assert data["raw"]["event_properties"]["mailing_id"] == "000001"


def test_naive_time_past_year_9999_in_the_source_zone_is_null_not_a_failure() -> None:
    event = one(open_with_time('"9999-12-31 23:59:59"'), timezone="America/New_York")
    assert event["data"]["occurred_at"] is None
    assert event["time"] == RECEIVED


def test_leading_zero_numbers_anywhere_are_kept_as_written() -> None:
    body = (
        '{"event_name":"send","event_time":01795161700,'
        '"event_properties":{"mailing_id":000001,"automation_id":-007,"order_grand_total":0012.50,'
        '"score":-00.5e3,"ids":[001,02,3],"nested":{"deeper":[{"code":0009}]},"zero":0,"text":"a 0001 \\"002"},'
        '"contact":{"email":"ann@example.com","contact_id":0001234}}'
    )
    event = one(body)
    raw = event["data"]["raw"]
    props = raw["event_properties"]
    assert raw["event_time"] == "01795161700"
    assert props["mailing_id"] == "000001"
    assert props["automation_id"] == "-007"
    assert props["order_grand_total"] == "0012.50"
    assert props["score"] == "-00.5e3"
    assert props["ids"] == ["001", "02", 3]
    assert props["nested"] == {"deeper": [{"code": "0009"}]}
    assert props["zero"] == 0
    assert props["text"] == 'a 0001 "002'
    assert raw["contact"]["contact_id"] == "0001234"
    data = event["data"]
    assert data["message"]["mailing_id"] == "000001"
    assert data["recipient"] == {"email": "ann@example.com", "contact_id": "0001234"}
    assert data["metadata"]["automation_id"] == "-007"
    # A leading-zero epoch is still a number of seconds.
    assert data["occurred_at"] == "2026-11-20T08:01:40Z"
    # The strings survive serialisation: the published message carries the exact digits.
    published = orjson.loads(orjson.dumps(event))
    assert published["data"]["raw"]["event_properties"]["mailing_id"] == "000001"
    assert published["data"]["raw"]["contact"]["contact_id"] == "0001234"


def test_leading_zeros_in_every_item_of_an_array() -> None:
    body = (
        '[{"event_name":"open","event_time":1795161700,"event_properties":{"mailing_id":000001},'
        '"contact":{"email":"a@example.com"}},'
        '{"event_name":"click","event_time":1795161760,"event_properties":{"mailing_id":000002},'
        '"contact":{"email":"b@example.com"}}]'
    )
    result = adapt(body)
    assert result.failures == []
    assert [(e["type"], e.get("subject"), e["data"]["occurred_at"]) for e in result.events] == [
        ("email.opened", "a@example.com", "2026-11-20T08:01:40Z"),
        ("email.clicked", "b@example.com", "2026-11-20T08:02:40Z"),
    ]
    assert [e["data"]["raw"]["event_properties"]["mailing_id"] for e in result.events] == ["000001", "000002"]


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=UTF-8", "text/plain", ""],
)
def test_json_labelled_as_anything_is_read_as_json(content_type: str) -> None:
    body = (
        '{"event_name":"send","event_time":"2026-11-20T03:06:40-05:00",'
        '"event_properties":{"mailing_id":000001,"automation_id":000003},"contact":{"email":"ann@example.com"}}'
    )
    event = one(body, content_type)
    assert event["type"] == "email.sent"
    assert event["subject"] == "ann@example.com"
    assert event["data"]["occurred_at"] == "2026-11-20T08:06:40Z"
    assert event["data"]["raw"]["event_properties"] == {"mailing_id": "000001", "automation_id": "000003"}


def test_pretty_printed_body_with_crlf_and_bom() -> None:
    body = b'\xef\xbb\xbf{\r\n  "event_name": "optout",\r\n  "event_time": "2026-11-20T08:10:00Z",\r\n'
    body += b'  "event_properties": {"mailing_id": 000001, "opt_out_reason": "uploaded"},\r\n'
    body += b'  "contact": {"email": "ann@example.com"}\r\n}\r\n'
    event = one(body)
    assert event["type"] == "email.unsubscribed"
    assert event["data"]["occurred_at"] == "2026-11-20T08:10:00Z"
    assert event["data"]["metadata"] == {"opt_out_reason": "uploaded"}


@pytest.mark.parametrize(
    "contact",
    [None, "null", "{}", '{"email":""}', '{"email":null}', '"ann@example.com"', "[]"],
    ids=["missing", "null", "empty", "empty-email", "null-email", "string", "array"],
)
def test_complaint_without_a_usable_contact_names_nobody(contact: str | None) -> None:
    body = '{"event_name":"complaint","event_time":"opt_out_time","event_properties":{"mailing_id":000001}'
    body += "}" if contact is None else f',"contact":{contact}}}'
    event = one(body)
    assert event["type"] == "email.complained"
    assert "subject" not in event
    assert event["data"]["recipient"] == {}
    assert event["data"]["occurred_at"] is None
    assert event["data"]["provider_event_type"] == "complaint"


@pytest.mark.parametrize(
    ("bounce_type", "severity"),
    [
        ('"hard"', "hard"),
        ('"Hard"', "hard"),
        ('"HARD"', "hard"),
        ('" hard "', "hard"),
        ('"soft"', "soft"),
        ('"Soft"', "soft"),
        ('"SOFT"', "soft"),
        ('"hardbounce"', "undetermined"),
        ('""', "undetermined"),
        ("null", "undetermined"),
        ("1", "undetermined"),
    ],
)
def test_bounce_type_casing(bounce_type: str, severity: str) -> None:
    body = (
        '{"event_name":"bounce","event_time":"2026-11-20 08:01:40",'
        f'"event_properties":{{"mailing_id":000001,"bounce_type":{bounce_type}}},'
        '"contact":{"email":"ann@example.com"}}'
    )
    event = one(body)
    assert event["type"] == "email.bounced"
    assert event["subject"] == "ann@example.com"
    assert event["data"]["bounce"] == {"severity": severity}
    assert event["data"]["reject_reason"] == "bounced"
    assert event["data"]["raw"]["event_properties"]["bounce_type"] == json.loads(bounce_type)


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("click", "email.clicked"),
        ("CLICK", "email.clicked"),
        (" Open ", "email.opened"),
        ("Complaint", "email.complained"),
        ("SEND", "email.sent"),
        ("Bounce", "email.bounced"),
        ("OptOut", "email.unsubscribed"),
        ("Conversion", "commerce.converted"),
        ("unsubscribe", "unknown"),
        ("forward", "unknown"),
        ("delivered", "unknown"),
    ],
)
def test_event_names_keep_the_provider_spelling(name: str, canonical: str) -> None:
    body = json.dumps({"event_name": name, "event_time": 1795161700, "contact": {"email": "ann@example.com"}})
    event = one(body)
    assert event["type"] == canonical
    assert event["data"]["provider_event_type"] == name
    assert event["subject"] == "ann@example.com"
    assert event["data"]["occurred_at"] == "2026-11-20T08:01:40Z"


def test_unknown_event_in_a_batch_is_kept_and_a_nameless_one_fails_alone() -> None:
    body = json.dumps(
        [
            {"event_name": "resubscribe", "event_time": 1795161700, "contact": {"email": "a@example.com"}},
            {"event_name": "", "contact": {"email": "b@example.com"}},
            {"event_name": "open", "event_time": "view_time", "contact": {"email": "c@example.com"}},
        ]
    )
    result = adapt(body)
    assert [(e["type"], e.get("subject"), e["data"]["provider_event_type"]) for e in result.events] == [
        ("unknown", "a@example.com", "resubscribe"),
        ("email.opened", "c@example.com", "open"),
    ]
    assert [(f.reason, f.index) for f in result.failures] == [("invalid_event", 1)]


def test_comma_separated_objects_without_brackets_are_a_batch() -> None:
    body = '{"event_name":"send","event_properties":{"mailing_id":000001}},\n{"event_name":"open"},\n'
    result = adapt(body)
    assert result.failures == []
    assert [e["type"] for e in result.events] == ["email.sent", "email.opened"]
    assert result.events[0]["data"]["raw"]["event_properties"]["mailing_id"] == "000001"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"event_name":"open","event_properties":{"mailing_id":000001},}', "invalid_json"),
        ('{"event_name":"open","event_properties":{"mailing_id":000001,"mailing_id":2}}', "duplicate_keys"),
        ('{"event_name":"open","x":NaN,"event_properties":{"mailing_id":000001}}', "nan_infinity"),
        ("event_name=open&email=ann%40example.com", "invalid_json"),
    ],
)
def test_broken_bodies_with_leading_zeros_still_fail_with_the_reason(body: str, reason: str) -> None:
    result = adapt(body, "application/x-www-form-urlencoded")
    assert result.events == []
    assert [(f.reason, f.index) for f in result.failures] == [(reason, None)]
