"""SparkPostAdapter against the variations a real sender can produce within the docs and the fixture rules:
timestamp forms, batch wrappers, several classes in one msys, odd-typed fields, and the bodies that must be
dead-lettered with a reason (never a crash, never an event)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from processors.adapters.base import AdaptResult
from processors.adapters.sparkpost import SparkPostAdapter
from tests.support.adapter_requests import adapted, only, request
from tests.support.adapter_requests import email_summaries as summary

ADAPTER = SparkPostAdapter()


def adapt(body: bytes) -> AdaptResult:
    return adapted(ADAPTER, request("sparkpost", body))


def adapt_json(value: Any) -> AdaptResult:
    return adapt(json.dumps(value).encode())


def event(type_: str | None = "delivery", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"event_id": "1001", "rcpt_to": "a@example.com", "timestamp": "1795161660", **fields}
    if type_ is not None:
        body["type"] = type_
    return body


def item(type_: str | None = "delivery", event_class: str = "message_event", **fields: Any) -> dict[str, Any]:
    return {"msys": {event_class: event(type_, **fields)}}


# --- timestamp forms ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "occurred_at"),
    [
        (1795161660, "2026-11-20T08:01:00Z"),  # JSON integer (docs)
        ("1795161660", "2026-11-20T08:01:00Z"),  # numeric string (real batches)
        (" 1795161660 ", "2026-11-20T08:01:00Z"),
        (1795161660.5, "2026-11-20T08:01:00.500Z"),
        ("1795161660.250", "2026-11-20T08:01:00.250Z"),
        (1795161660123, "2026-11-20T08:01:00.123Z"),  # milliseconds
        ("1795161660123", "2026-11-20T08:01:00.123Z"),
        ("1427736822", "2015-03-30T17:33:42Z"),  # the docs' sample value
        ("2026-11-20T08:01:00Z", "2026-11-20T08:01:00Z"),
        ("2026-11-20T08:01:00.000Z", "2026-11-20T08:01:00Z"),
        ("2026-11-20T08:01:00.123z", "2026-11-20T08:01:00.123Z"),
        ("2026-11-20T08:01:00+00:00", "2026-11-20T08:01:00Z"),
        ("2026-11-20T10:01:00.250+02:00", "2026-11-20T08:01:00.250Z"),
        ("2026-11-20T03:01:00-0500", "2026-11-20T08:01:00Z"),
        ("2026-11-20T08:01:00.123456789Z", "2026-11-20T08:01:00.123456Z"),
        ("2026-11-20T08:01:00", "2026-11-20T08:01:00Z"),  # no zone: UTC
        ("2026-11-20 08:01:00", "2026-11-20T08:01:00Z"),
        ("soon", None),
        # Beyond datetime's range once the offset is applied: no time, not a crashed event.
        ("9999-12-31T23:59:59-23:59", None),
        ("0001-01-01T00:00:00+01:00", None),
        # Placeholders outside the sane range (years below 1000 would not even print as RFC 3339).
        ("0001-01-01T00:00:00Z", None),
        ("0999-12-31T00:00:00Z", None),
        ("1970-01-01T00:00:00Z", None),
        ("9999-12-31T23:59:59Z", None),
        ("1990-01-01T00:00:00Z", "1990-01-01T00:00:00Z"),
        ("2099-12-31T23:59:59Z", "2099-12-31T23:59:59Z"),
        ("", None),
        ("Fri, 20 Nov 2026 08:01:00 GMT", None),  # not ISO 8601
        ("\u0661\u0667\u0669\u0665\u0661\u0666\u0661\u0666\u0666\u0660", None),  # non-ASCII digits
        (0, None),
        (-1, None),
        (True, None),
        (None, None),
        ([1795161660], None),
        ({"s": 1795161660}, None),
    ],
)
def test_timestamp_forms(timestamp: Any, occurred_at: str | None) -> None:
    data = only(adapt_json([item(timestamp=timestamp)]))["data"]
    assert data["occurred_at"] == occurred_at
    assert data["time_source"] == ("provider" if occurred_at else "received")


def test_missing_timestamp_is_no_time() -> None:
    raw = item()
    del raw["msys"]["message_event"]["timestamp"]
    assert only(adapt_json([raw]))["data"].get("occurred_at") is None


# --- batch shapes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        [item("delivery"), item("open", "track_event")],
        {"results": [item("delivery"), item("open", "track_event")]},  # the samples endpoint's answer
    ],
)
def test_batch_and_results_wrapper_give_the_same_events(body: Any) -> None:
    result = adapt_json(body)
    assert result.failures == []
    assert summary(result) == [
        ("email.delivered", "a@example.com", "2026-11-20T08:01:00Z", "delivery"),
        ("email.opened", "a@example.com", "2026-11-20T08:01:00Z", "open"),
    ]


def test_bare_msys_object_is_a_batch_of_one() -> None:
    # The docs' "Confirm receipt" sample is one object, not an array.
    data = only(adapt_json(item("click", "track_event", target_link_url="http://example.com")))["data"]
    assert data["provider_event_type"] == "click"
    assert data["link"] == {"url": "http://example.com"}


@pytest.mark.parametrize(
    "body",
    [[{"msys": {}}], {"msys": {}}, {"results": []}, {"results": [{"msys": {}}]}, [], [{"msys": {}}, {"msys": {}}]],
)
def test_ping_shapes_give_nothing_and_no_failure(body: Any) -> None:
    assert adapt_json(body) == AdaptResult()


def test_item_without_msys_is_a_failure_but_not_the_batch() -> None:
    result = adapt_json([{}, item("bounce", bounce_class="10"), {"msys": None}])
    assert summary(result) == [("email.bounced", "a@example.com", "2026-11-20T08:01:00Z", "bounce")]
    assert [(f.reason, f.index) for f in result.failures] == [("invalid_event", 0), ("invalid_event", 2)]


def test_msys_with_several_classes_gives_one_event_per_class_in_order() -> None:
    element: dict[str, Any] = {
        "msys": {
            "message_event": event("delivery", rcpt_to="a@example.com"),
            "track_event": event("click", rcpt_to="b@example.com", timestamp=1795161661),
            "unsubscribe_event": event("list_unsubscribe", rcpt_to="c@example.com", event_id="1002"),
            "relay_event": {"type": "relay_delivery", "timestamp": "1795161662"},
        },
        "cust": {"id": "40211"},
    }
    result = adapt_json([element, item("open", "track_event")])
    assert result.failures == []
    assert summary(result) == [
        ("email.delivered", "a@example.com", "2026-11-20T08:01:00Z", "delivery"),
        ("email.clicked", "b@example.com", "2026-11-20T08:01:01Z", "click"),
        ("email.unsubscribed", "c@example.com", "2026-11-20T08:01:00Z", "list_unsubscribe"),
        ("unknown", None, "2026-11-20T08:01:02Z", "relay_delivery"),
        ("email.opened", "a@example.com", "2026-11-20T08:01:00Z", "open"),
    ]
    # Each event's raw holds only its own class, the cust sibling kept.
    assert result.events[1]["data"]["raw"] == {
        "msys": {"track_event": element["msys"]["track_event"]},
        "cust": {"id": "40211"},
    }
    assert len({e["id"] for e in result.events}) == 5


def test_class_that_is_not_an_object_fails_alone() -> None:
    result = adapt_json([{"msys": {"message_event": "delivery", "track_event": event("open")}}])
    assert summary(result) == [("email.opened", "a@example.com", "2026-11-20T08:01:00Z", "open")]
    assert [(f.reason, f.index) for f in result.failures] == [("invalid_event", 0)]


# --- odd-typed fields -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("literal", "provider_event_id"),
    [
        ('"92356927693813856"', "92356927693813856"),
        ("92356927693813856", "92356927693813856"),  # bare, above 2^53: exact digits
        ("184467440737095516150", "184467440737095516150"),  # above 2^64
        ("12345", "12345"),
        ('"d1add81d-0c34-453f-9454-adcd3b6bda09"', "d1add81d-0c34-453f-9454-adcd3b6bda09"),
        ('""', None),
        ("null", None),
        ("true", None),
        ("[1]", None),
    ],
)
def test_event_id_forms(literal: str, provider_event_id: str | None) -> None:
    body = '[{"msys":{"message_event":{"type":"delivery","rcpt_to":"a@example.com","event_id":' + literal + "}}}]"
    data = only(adapt(body.encode()))["data"]
    assert data["provider_event_id"] == provider_event_id


def test_event_id_as_number_or_string_gives_the_same_event_id() -> None:
    quoted = adapt(b'[{"msys":{"message_event":{"type":"delivery","event_id":"92356927693813856"}}}]')
    bare = adapt(b'[{"msys":{"message_event":{"type":"delivery","event_id":92356927693813856}}}]')
    assert only(quoted)["id"] == only(bare)["id"]


@pytest.mark.parametrize(
    ("bounce_class", "severity"),
    [
        (10, "hard"),
        ("10", "hard"),
        ("010", "hard"),  # zero-padded
        ("0021", "soft"),
        (" 21 ", "soft"),
        (21.0, "soft"),  # a relay that rewrote integers as floats
        (25, "admin"),
        ("26", "admin"),  # Smart Send Suppression: SparkPost's table has it, the fixture rules' list does not
        (26, "admin"),
        ("52", "block"),
        (90, "hard"),
        (100, "soft"),
        (1, "undetermined"),
        ("0", "undetermined"),
        ("99", "undetermined"),
        ("abc", "undetermined"),
        (None, "undetermined"),
        (True, "undetermined"),
    ],
)
@pytest.mark.parametrize("type_", ["bounce", "out_of_band"])
def test_bounce_class_forms(type_: str, bounce_class: Any, severity: str) -> None:
    event_ = only(adapt_json([item(type_, bounce_class=bounce_class)]))
    assert event_["type"] == "email.bounced"
    assert event_["data"]["bounce"]["severity"] == severity


def test_smart_send_suppression_is_an_admin_bounce_like_an_admin_failure() -> None:
    # SparkPost's bounce classification table: 26 Smart Send Suppression, category Admin.
    data = only(adapt_json([item("bounce", bounce_class="26", error_code="554")]))["data"]
    assert data["bounce"] == {
        "severity": "admin",
        "category": "smart_send_suppression",
        "class_code": "26",
        "smtp_status": "554",
    }
    assert data["reject_reason"] == "blocked"


@pytest.mark.parametrize(
    ("fields", "recipient", "subject"),
    [
        ({"rcpt_to": "a@example.com", "raw_rcpt_to": "A@Example.com"}, {"email": "a@example.com"}, "a@example.com"),
        ({"rcpt_to": "", "sms_dst": "15551234567"}, {"phone": "15551234567"}, "15551234567"),
        ({"rcpt_to": None}, {}, None),  # names nobody (as relay events without rcpt_to)
        ({"rcpt_to": ["a@example.com"]}, {}, None),
    ],
)
def test_recipient_forms(fields: dict[str, Any], recipient: dict[str, str], subject: str | None) -> None:
    event_ = only(adapt_json([item("delivery", **fields)]))
    assert event_["data"]["recipient"] == recipient
    assert event_.get("subject") == subject


@pytest.mark.parametrize(
    ("type_", "provider_event_type"), [(5, "message_event"), ("", "message_event"), (None, "message_event")]
)
def test_missing_or_odd_type_is_unknown_named_by_its_class(type_: Any, provider_event_type: str) -> None:
    raw = item("delivery")
    raw["msys"]["message_event"]["type"] = type_
    data = only(adapt_json([raw]))
    assert data["type"] == "unknown"
    assert data["data"]["provider_event_type"] == provider_event_type


def test_unknown_type_is_kept_not_dropped() -> None:
    data = only(adapt_json([item("amp_superopen", "some_future_event")]))
    assert (data["type"], data["data"]["provider_event_type"]) == ("unknown", "amp_superopen")


def test_rcpt_meta_and_tags_of_odd_types_do_not_cost_the_event() -> None:
    data = only(adapt_json([item("delivery", rcpt_meta=[], rcpt_tags="vip", cust=None)]))["data"]
    assert data["provider_event_type"] == "delivery"
    assert data["tags"] == ["vip"]
    assert "metadata" not in data


# --- bodies that must be dead-lettered, with a reason ----------------------------------------------------

GOOD = json.dumps([item("delivery")]).encode()
WRAPPER = b'[{"msys":{"message_event":{"type":"delivery","rcpt_to":"a@example.com","x":%s}}}]'


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty_body"),
        (b" \r\n\t", "empty_body"),
        (b"\xef\xbb\xbf", "empty_body"),  # a BOM and nothing else
        (b"\xef\xbb\xbf \n", "empty_body"),
        (b'[{"msys":{"message_event":{"type":"delivery","type":"open"}}}]', "duplicate_keys"),
        (b'[{"msys":{"message_event":{"type":"delivery","\\u0074ype":"open"}}}]', "duplicate_keys"),  # same key escaped
        (WRAPPER % b"NaN", "nan_infinity"),
        (WRAPPER % b"Infinity", "nan_infinity"),
        (WRAPPER % b"-Infinity", "nan_infinity"),
        (WRAPPER % (b"9" * 4301), "number_too_long"),
        (WRAPPER % (b"-" + b"9" * 4301), "number_too_long"),
        (WRAPPER % (b"9" * 100_000), "number_too_long"),
        (WRAPPER % b"1e400", "number_out_of_range"),
        (WRAPPER % (b"[" * 509 + b"]" * 509), "too_deep"),  # 513 levels with the batch's four
        (b"[" * 100_000 + b"]" * 100_000, "too_deep"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "too_deep"),
        (b'[{"msys":{"message_event":{"type":"delivery","rcpt_to":"\xc3\x28@example.com"}}}]', "invalid_utf8"),
        (b'[{"msys":{"message_event":{"type":"delivery","rcpt_to":"\xed\xa0\x80@example.com"}}}]', "invalid_utf8"),
        (b'[{"msys":{"message_event":{"type":"delivery","rcpt_to":"\xc0\xaf@example.com"}}}]', "invalid_utf8"),
        (json.dumps([item("delivery")]).encode("utf-16"), "invalid_utf8"),
        (b'[{"msys":{"message_event":{"type":"delivery","rcpt_to":"a\x00b@example.com"}}}]', "invalid_json"),
        (b'[{"msys":{"message_event":{"type":"delivery","rcpt_to":"a\tb@example.com"}}}]', "invalid_json"),
        (b'[{"msys":{"message_event":{"type":"delivery","reason":"a\nb"}}}]', "invalid_json"),
        (b"This is not JSON", "invalid_json"),
        (GOOD + b"x", "invalid_json"),
        (GOOD[:-5], "invalid_json"),  # truncated
        (b"null", "not_a_batch"),
        (b'"[]"', "not_a_batch"),
    ],
)
def test_unreadable_body_is_one_failure_with_its_reason_and_no_events(body: bytes, reason: str) -> None:
    result = adapt(body)
    assert result.events == []
    assert [(f.reason, f.index) for f in result.failures] == [(reason, None)]


@pytest.mark.parametrize(
    "value",
    [
        b"-" + b"9" * 4300,  # 4,300 digits: within the limit, whatever the sign
        b"9" * 4300,
        b"[" * 200 + b"]" * 200,
        b'"a\\u0000b"',  # an escaped control character is fine
        b'"tab\\there"',
    ],
)
def test_bodies_within_the_limits_are_read(value: bytes) -> None:
    data = only(adapt(WRAPPER % value))["data"]
    assert (data["provider_event_type"], data["recipient"]) == ("delivery", {"email": "a@example.com"})


def test_utf8_bom_is_ignored() -> None:
    result = adapt(b"\xef\xbb\xbf" + GOOD)
    assert summary(result) == [("email.delivered", "a@example.com", "2026-11-20T08:01:00Z", "delivery")]
    assert result.events[0]["id"] == only(adapt(GOOD))["id"]


def test_pretty_printed_body_gives_the_same_event() -> None:
    pretty = json.dumps([item("delivery")], indent=2).encode()
    assert only(adapt(pretty))["id"] == only(adapt(GOOD))["id"]


def test_nesting_the_parser_allows_but_orjson_cannot_write_fails_only_that_item() -> None:
    deep = b"[" * 500 + b"]" * 500
    body = b"[" + GOOD[1:-1] + b"," + (WRAPPER % deep)[1:-1] + b"]"
    result = adapt(body)
    assert summary(result) == [("email.delivered", "a@example.com", "2026-11-20T08:01:00Z", "delivery")]
    assert [(f.reason, f.index) for f in result.failures] == [("unencodable_event", 1)]
