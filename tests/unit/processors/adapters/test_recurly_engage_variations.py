"""RecurlyEngageAdapter (and the S3 export reader) against variations a real Event API Firehose can produce.

Each case states the concrete outcome: canonical type, subject (user_id, else anonymous_user_id, as a
string), occurred_at, provider_event_type, or the failure reason.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from espwire.envelope import Envelope
from espwire.event import CanonicalEvent
from processors.adapters.base import AdaptResult
from processors.adapters.recurly_engage import RecurlyEngageAdapter
from processors.adapters.recurly_engage_s3 import adapt_export
from tests.support.adapter_properties import assert_well_formed
from tests.support.adapter_requests import RECEIVED, adapted, only, request, summary

ADAPTER = RecurlyEngageAdapter()
TS = 1795161900
AT = "2026-11-20T08:05:00Z"


def envelope(body: bytes | str = b"", method: str = "POST", query: str = "", content_type: str = "") -> Envelope:
    content_type = content_type or ("" if method == "GET" else "application/json")
    return request(
        "recurly_engage", body, source_id="engage-main", content_type=content_type, method=method, query=query
    )


def adapt(body: Any = b"", method: str = "POST", query: str = "", content_type: str = "") -> AdaptResult:
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
    return adapted(ADAPTER, envelope(body, method, query, content_type))


def one(item: dict[str, Any]) -> CanonicalEvent:
    return only(adapt([item]))


BATCH = [
    {"app_id": "74f7", "user_id": "123", "event": "Home Page", "platform": "redfast", "type": "page", "ts": TS},
    {"user_id": "123", "event": "Impression", "platform": "web", "type": "prompt", "ts": TS + 1},
]
EXPECTED = [
    ("app.page_viewed", "123", AT, "Home Page"),
    ("prompt.impression", "123", "2026-11-20T08:05:01Z", "Impression"),
]


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_post_and_put_carry_the_batch_in_the_body(method: str) -> None:
    result = adapt(BATCH, method)
    assert result.failures == []
    assert [summary(e) for e in result.events] == EXPECTED


@pytest.mark.parametrize(
    "query",
    [
        "events=" + quote(json.dumps(BATCH)),
        "events=" + quote_plus(json.dumps(BATCH)),
        "source=engage&events=" + quote(json.dumps(BATCH)) + "&v=1",
        "events=" + quote(json.dumps(BATCH[:1])) + "&events=" + quote(json.dumps(BATCH[1])),
    ],
    ids=["quote", "quote_plus", "among-others", "split-over-two-params"],
)
def test_get_carries_the_batch_in_the_events_query_parameter(query: str) -> None:
    result = adapt(b"", "GET", query)
    assert result.failures == []
    assert [summary(e) for e in result.events] == EXPECTED


def test_get_and_post_of_the_same_batch_give_the_same_events() -> None:
    posted = adapt(BATCH, "POST").events
    got = adapt(b"", "GET", "events=" + quote(json.dumps(BATCH))).events
    assert [e["id"] for e in posted] == [e["id"] for e in got]


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_the_events_parameter_posted_as_a_form_body(method: str) -> None:
    body = "events=" + quote_plus(json.dumps(BATCH))
    result = adapt(body, method, content_type="application/x-www-form-urlencoded")
    assert result.failures == []
    assert [summary(e) for e in result.events] == EXPECTED


@pytest.mark.parametrize(
    ("body", "method", "query", "reason"),
    [
        (b"", "GET", "", "empty_body"),
        (b"", "GET", "source=engage", "empty_body"),
        (b"", "GET", "events=", "empty_body"),
        (b"  \n", "POST", "", "empty_body"),
        (b"", "GET", "events=%5B%7Bnot", "invalid_json"),
        (b"", "GET", "events=%C3%28", "invalid_utf8"),
        (b"events=%5B%7Bnot", "POST", "", "invalid_json"),
        (b"events=%C3%28", "POST", "", "invalid_utf8"),
        (b"evnts=%5B%5D", "POST", "", "invalid_json"),
        (b"user_id=1&event=Goal", "POST", "", "invalid_json"),
        (b'[{"event":"Goal","event":"Click"}]', "POST", "", "duplicate_keys"),
        (b'"Goal"', "POST", "", "not_a_batch"),
    ],
)
def test_unreadable_requests_fail_with_the_reason(body: bytes, method: str, query: str, reason: str) -> None:
    result = adapt(body, method, query)
    assert result.events == []
    assert [(f.reason, f.index) for f in result.failures] == [(reason, None)]


@pytest.mark.parametrize(
    ("tracker_type", "event_name", "canonical"),
    [
        ("page", "Home Page", "app.page_viewed"),
        ("Page", "Home Page", "app.page_viewed"),
        ("track", "Buy Button", "app.tracked"),
        ("TRACK", "Buy Button", "app.tracked"),
        ("custom", "Transaction Complete", "app.custom"),
        # A usage tracker's name is the customer's choice: the type decides, even for a prompt event name.
        ("page", "Click", "app.page_viewed"),
        ("track", "Goal", "app.tracked"),
        ("custom", "Custom_Goals_Signup", "app.custom"),
        ("screen", "Home", "unknown"),
        (None, "Impression", "prompt.impression"),
        ("prompt", "Impression", "prompt.impression"),
        (None, "Timeout", "prompt.timeout"),
        (None, "Dismiss", "prompt.dismissed"),
        (None, "Decline", "prompt.declined"),
        (None, "Click", "prompt.accepted"),
        (None, "Goal", "prompt.accepted"),
        (None, "GOAL", "prompt.accepted"),
        (None, "Custom_Goals_Purchase", "prompt.goal_completed"),
        (None, "custom_goals_Sign Up", "prompt.goal_completed"),
        (None, "Custom_Goals_", "prompt.goal_completed"),
        (None, "Exclude", "prompt.excluded"),
        (None, "Holdout", "prompt.holdout"),
        (None, "Pipeline_Impression", "prompt.pipeline_impression"),
        (None, "Pipeline_Transition", "prompt.pipeline_transition"),
        (None, "Custom_Goal_Purchase", "unknown"),
        (None, "Conversion", "unknown"),
        ("prompt", "Snooze", "unknown"),
    ],
)
def test_type_and_event_names(tracker_type: str | None, event_name: str, canonical: str) -> None:
    item: dict[str, Any] = {"user_id": "123", "event": event_name, "ts": TS}
    if tracker_type is not None:
        item["type"] = tracker_type
    assert summary(one(item)) == (canonical, "123", AT, event_name)


def test_unknown_type_without_an_event_is_kept_as_unknown() -> None:
    event = one({"user_id": "123", "type": "screen", "ts": TS})
    assert summary(event) == ("unknown", "123", AT, "")
    assert event["data"]["metadata"] == {"type": "screen"}


def test_object_with_neither_event_nor_type_fails_alone() -> None:
    result = adapt([{"user_id": "1", "ts": TS}, {"user_id": "2", "event": "Goal", "ts": TS}])
    assert [summary(e) for e in result.events] == [("prompt.accepted", "2", AT, "Goal")]
    assert [(f.reason, f.index) for f in result.failures] == [("invalid_event", 0)]


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (TS, AT),
        (str(TS), AT),
        (f" {TS} ", AT),
        (TS + 0.25, "2026-11-20T08:05:00.250Z"),
        (f"{TS}.25", "2026-11-20T08:05:00.250Z"),
        (TS * 1000 + 250, "2026-11-20T08:05:00.250Z"),
        (str(TS * 1000 + 250), "2026-11-20T08:05:00.250Z"),
        (float(TS * 1000), AT),
        (1_000_000_000_000, "2001-09-09T01:46:40Z"),  # above 10^11: milliseconds
        (10**11 + 1, None),  # milliseconds, but 1973: outside the sane range
        (TS * 1_000_000, None),  # microseconds are not a documented form
        ("2026-11-20T08:05:00Z", None),
        ("garbage", None),
        ("", None),
        (None, None),
        (True, None),
        (0, None),
        (-TS, None),
        (10**20, None),
        ([TS], None),
        ({"s": TS}, None),
    ],
)
def test_ts_forms(ts: Any, expected: str | None) -> None:
    event = one({"user_id": "123", "event": "Goal", "ts": ts})
    assert summary(event) == ("prompt.accepted", "123", expected, "Goal")
    assert event["data"]["time_source"] == ("provider" if expected else "received")
    assert event["time"] == (expected or RECEIVED)


def test_ts_missing_is_null() -> None:
    assert summary(one({"user_id": "123", "event": "Goal"})) == ("prompt.accepted", "123", None, "Goal")


@pytest.mark.parametrize(
    ("ids", "subject", "recipient"),
    [
        ({"user_id": "123", "anonymous_user_id": "anon-1"}, "123", {"user_id": "123", "anonymous_id": "anon-1"}),
        ({"user_id": 98765}, "98765", {"user_id": "98765"}),
        ({"user_id": 98765.0}, "98765", {"user_id": "98765"}),
        ({"user_id": 0}, "0", {"user_id": "0"}),
        ({"anonymous_user_id": "2528a84d8fa8"}, "2528a84d8fa8", {"anonymous_id": "2528a84d8fa8"}),
        ({"anonymous_user_id": 4242}, "4242", {"anonymous_id": "4242"}),
        ({"user_id": "", "anonymous_user_id": 4242}, "4242", {"anonymous_id": "4242"}),
        ({"user_id": None, "anonymous_user_id": "a"}, "a", {"anonymous_id": "a"}),
        ({"user_id": True, "anonymous_user_id": "a"}, "a", {"anonymous_id": "a"}),
        ({"user_id": {"id": 1}, "anonymous_user_id": "a"}, "a", {"anonymous_id": "a"}),
        ({}, None, {}),
    ],
)
def test_user_ids(ids: dict[str, Any], subject: str | None, recipient: dict[str, str]) -> None:
    event = one({"event": "Impression", "ts": TS, **ids})
    assert event.get("subject") == subject
    assert event["data"]["recipient"] == recipient


def test_user_id_beyond_2_53_keeps_every_digit() -> None:
    result = adapt('[{"event":"Impression","ts":1795161900,"user_id":123456789012345678901}]')
    assert [summary(e) for e in result.events] == [("prompt.impression", "123456789012345678901", AT, "Impression")]
    assert result.events[0]["data"]["raw"]["user_id"] == "123456789012345678901"


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_single_object_instead_of_an_array(method: str) -> None:
    result = adapt(BATCH[0], method)
    assert result.failures == []
    assert [summary(e) for e in result.events] == EXPECTED[:1]


def test_get_with_a_single_object() -> None:
    result = adapt(b"", "GET", "events=" + quote(json.dumps(BATCH[1])))
    assert [summary(e) for e in result.events] == EXPECTED[1:]


@pytest.mark.parametrize(
    "payload",
    [
        "\n".join(json.dumps(item) for item in BATCH),  # one object a line, as the S3 export writes them
        ",".join(json.dumps(item) for item in BATCH),
        json.dumps(BATCH)[:-1] + ",]",
        json.dumps({"data": BATCH}),
    ],
    ids=["one-a-line", "comma-separated", "trailing-comma", "one-key-wrapper"],
)
@pytest.mark.parametrize("where", ["query", "form"])
def test_the_events_parameter_is_read_as_a_body_is(payload: str, where: str) -> None:
    # The parameter's JSON took the strict reading alone: each of these, given as a body, came out, and as the
    # parameter was dead-lettered (invalid_json, or invalid_event for the wrapper).
    if where == "query":
        result = adapt(b"", "GET", "events=" + quote(payload))
    else:
        result = adapt("events=" + quote_plus(payload), content_type="application/x-www-form-urlencoded")
    assert result.failures == []
    assert [summary(e) for e in result.events] == EXPECTED
    assert [e["id"] for e in result.events] == [e["id"] for e in adapt(BATCH).events]


@pytest.mark.parametrize(
    "body",
    [
        {"data": BATCH},
        {"batch": BATCH},
        {"events": BATCH, "sent_at": TS},
    ],
)
def test_a_batch_wrapped_under_one_key_is_that_batch(body: dict[str, Any]) -> None:
    result = adapt(body)
    assert result.failures == []
    assert [summary(e) for e in result.events] == EXPECTED


def test_one_event_wrapped_under_one_key_is_that_event() -> None:
    assert [summary(e) for e in adapt({"events": BATCH[1]}).events] == EXPECTED[1:]
    assert [summary(e) for e in adapt({"data": BATCH[1]}).events] == EXPECTED[1:]


@pytest.mark.parametrize(
    "body",
    [
        {"user_id": "1", "segments": [{"id": "s"}]},  # an event without its name, not a wrapper
        {"data": [1, 2]},
        {"data": {"user_id": "1"}},
        {"data": []},  # an empty list under another name than events: no sign of a batch
        {"events": BATCH[1], "extra": 1},
    ],
)
def test_objects_that_wrap_no_events_still_fail(body: dict[str, Any]) -> None:
    result = adapt(body)
    assert result.events == []
    assert [(f.reason, f.index) for f in result.failures] == [("invalid_event", 0)]


def test_empty_array_and_odd_items() -> None:
    assert adapt([]) == AdaptResult()
    result = adapt([[BATCH[0]], "x", BATCH[1], None])
    assert [summary(e) for e in result.events] == EXPECTED[1:]
    assert [(f.reason, f.index) for f in result.failures] == [
        ("invalid_event", 0),
        ("invalid_event", 1),
        ("invalid_event", 3),
    ]


def test_prompt_fields_and_usage_fields() -> None:
    prompt = one(
        {
            "user_id": "1",
            "event": "Goal",
            "type": "prompt",
            "platform": "ios",
            "ts": TS,
            "properties": {"path_id": "p1"},
        }
    )
    assert prompt["data"]["campaign"] == {"id": "p1"}
    assert prompt["data"]["client"] == {"device": "ios"}
    usage = one({"user_id": "1", "event": "Home", "type": "page", "platform": "redfast", "ts": TS})
    assert "campaign" not in usage["data"] and "client" not in usage["data"]
    assert usage["data"]["metadata"] == {"type": "page", "platform": "redfast"}


def test_s3_export_lines_map_like_the_webhook() -> None:
    lines = [json.dumps(item).encode() for item in BATCH]
    body = b"\xef\xbb\xbf" + lines[0] + b"\r\n\r\n" + lines[1] + b"\r\n" + b"not json\n" + b"[1]\n"
    result = adapt_export(envelope(body))
    assert_well_formed(result)
    assert [summary(e) for e in result.events] == EXPECTED
    assert [(f.reason, f.index) for f in result.failures] == [("invalid_json", 3), ("invalid_event", 4)]
    webhook = adapt(BATCH).events
    assert [e["id"] for e in result.events] == [e["id"] for e in webhook]
