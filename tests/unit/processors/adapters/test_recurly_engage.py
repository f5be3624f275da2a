"""RecurlyEngageAdapter against the recorded Firehose requests, the mapping rules, and hostile or mutated bodies."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from espwire.envelope import Envelope
from espwire.event import EVENT_ADAPTER, CanonicalEvent
from processors.adapters.base import AdaptResult
from processors.adapters.json_body import BodyError, parse_json
from processors.adapters.recurly_engage import RecurlyEngageAdapter
from tests.fixture_cases import Case, load_cases, sequence_mismatches
from tests.support.adapter_properties import FIELD_VALUES, JSON_VALUES, assert_well_formed, mutated

ADAPTER = RecurlyEngageAdapter()
CASES = load_cases("recurly_engage")
DEAD_LETTER_CASES = [c for c in load_cases("_bad") if c.meta.get("expect_dlq")]
RECEIVED = "2026-11-24T00:00:00Z"


def case_envelope(case: Case) -> Envelope:
    return case.envelope()


def envelope(body: bytes | str = b"", *, method: str = "POST", query: str = "") -> Envelope:
    return Envelope(
        source_id="engage-main",
        provider="recurly_engage",
        request_id="r1",
        received_at=RECEIVED,
        method=method,
        content_type="application/json" if body else "",
        body=body.encode() if isinstance(body, str) else body,
        query=query,
    )


def adapt(body: bytes | str | Any = b"", *, method: str = "POST", query: str = "") -> AdaptResult:
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
    result = ADAPTER.adapt(envelope(body, method=method, query=query))
    for event in result.events:
        EVENT_ADAPTER.validate_python(event)
    return result


def one(body: Any) -> CanonicalEvent:
    result = adapt(body)
    assert result.failures == []
    assert len(result.events) == 1
    return result.events[0]


def prompt(event: str = "Impression", **changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "app_id": "74f72649",
        "user_id": "u-1",
        "anonymous_user_id": "anon-1",
        "event": event,
        "platform": "ios",
        "type": "prompt",
        "properties": {"path_id": "p-1", "path_name": "Annual upgrade offer", "zone": "banner"},
        "ts": 1795161700,
    }
    item.update(changes)
    return item


def usage(tracker_type: str = "page", event: str | None = "Home Page", **changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "user_id": "u-2",
        "anonymous_user_id": "anon-2",
        "event": event,
        "platform": "redfast",
        "type": tracker_type,
        "properties": {"id": "t-1", "values": [{"url_path": "/"}], "options": {"use_regex": False}},
        "ts": 1795161795,
        "traits": {"plan": "basic"},
        "segments": [{"id": "s-1", "name": "Engaged"}],
        "paths": [{"id": "p-1", "name": "Prompt A", "device_type": "web", "zone": "banner"}],
    }
    item.update(changes)
    return item


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_fixture_case(case: Case) -> None:
    result = ADAPTER.adapt(case_envelope(case))
    assert result.failures == []
    assert_well_formed(result)
    assert sequence_mismatches(case.expect_events, list(result.events)) == []  # type: ignore[arg-type]


@pytest.mark.parametrize("case", DEAD_LETTER_CASES, ids=lambda c: c.id)
def test_dead_letter_bodies_give_one_failure(case: Case) -> None:
    result = ADAPTER.adapt(case_envelope(case))
    assert result.events == []
    assert len(result.failures) == 1 and result.failures[0].index is None


@pytest.mark.parametrize(
    ("event", "canonical"),
    [
        ("Impression", "prompt.impression"),
        ("Timeout", "prompt.timeout"),
        ("Dismiss", "prompt.dismissed"),
        ("Decline", "prompt.declined"),
        ("Click", "prompt.accepted"),
        ("Goal", "prompt.accepted"),
        ("Custom_Goals_Upgrade", "prompt.goal_completed"),
        ("Custom_Goals_Watch Video", "prompt.goal_completed"),
        ("Exclude", "prompt.excluded"),
        ("Holdout", "prompt.holdout"),
        ("Pipeline_Impression", "prompt.pipeline_impression"),
        ("Pipeline_Transition", "prompt.pipeline_transition"),
        ("goal", "prompt.accepted"),
        ("Settings Screen", "unknown"),
    ],
)
def test_prompt_events(event: str, canonical: str) -> None:
    result = one(prompt(event))
    assert result["type"] == canonical
    assert result["data"]["provider_event_type"] == event


@pytest.mark.parametrize(
    ("tracker_type", "canonical"),
    [("page", "app.page_viewed"), ("track", "app.tracked"), ("custom", "app.custom"), ("Page", "app.page_viewed")],
)
def test_usage_trackers_win_over_event_names(tracker_type: str, canonical: str) -> None:
    # A customer may call a tracker "Click"; with a usage type it is a tracker, not a prompt interaction.
    for name in ("Home Page", "Click", "Custom_Goals_X"):
        event = one(usage(tracker_type, name))
        assert event["type"] == canonical
        assert event["data"]["provider_event_type"] == name


def test_unknown_type_without_known_event_is_unknown() -> None:
    assert one(usage("screen", "Settings"))["type"] == "unknown"
    assert one(usage("page", event=None))["data"]["provider_event_type"] == ""


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (1795161700, "2026-11-20T08:01:40Z"),
        ("1795161700", "2026-11-20T08:01:40Z"),
        (1795161700.5, "2026-11-20T08:01:40.500Z"),
        (1795162410250, "2026-11-20T08:13:30.250Z"),
        ("1795162410250", "2026-11-20T08:13:30.250Z"),
        ("2026-11-20T08:01:40Z", None),
        ("soon", None),
        (None, None),
        (True, None),
        (12, None),
    ],
)
def test_ts(ts: Any, expected: str | None) -> None:
    event = one(prompt(ts=ts))
    assert event["data"]["occurred_at"] == expected
    assert event["time"] == (expected or RECEIVED)


@pytest.mark.parametrize(
    ("user_id", "anonymous_id", "subject", "recipient"),
    [
        ("u-1", "anon-1", "u-1", {"user_id": "u-1", "anonymous_id": "anon-1"}),
        (98765, "anon-1", "98765", {"user_id": "98765", "anonymous_id": "anon-1"}),
        (None, "anon-1", "anon-1", {"anonymous_id": "anon-1"}),
        ("", 12345, "12345", {"anonymous_id": "12345"}),
        (None, None, None, {}),
    ],
)
def test_recipient(user_id: Any, anonymous_id: Any, subject: str | None, recipient: dict[str, str]) -> None:
    event = one(prompt(user_id=user_id, anonymous_user_id=anonymous_id))
    assert event.get("subject") == subject
    assert event["data"]["recipient"] == recipient


def test_prompt_fields() -> None:
    data = one(prompt("Goal"))["data"]
    assert data["campaign"] == {"id": "p-1", "name": "Annual upgrade offer"}
    assert data["client"] == {"device": "ios"}
    assert data["metadata"] == {
        "app_id": "74f72649",
        "platform": "ios",
        "type": "prompt",
        "properties": {"path_id": "p-1", "path_name": "Annual upgrade offer", "zone": "banner"},
    }


def test_usage_fields_go_to_metadata() -> None:
    item = usage()
    data = one(item)["data"]
    assert "campaign" not in data and "client" not in data
    assert data["metadata"] == {
        k: v for k, v in item.items() if k not in {"event", "ts", "user_id", "anonymous_user_id"}
    }
    assert data["raw"] == item


def test_get_reads_the_events_query_parameter() -> None:
    query = urlencode({"events": json.dumps([usage("track", "Play Button"), prompt("Goal")]), "other": "x"})
    result = adapt(method="GET", query=query)
    assert result.failures == []
    assert [e["data"]["provider_event_type"] for e in result.events] == ["Play Button", "Goal"]


def test_several_events_parameters_are_read_in_order() -> None:
    query = "events=" + quote(json.dumps(prompt("Goal"))) + "&events=" + quote(json.dumps([prompt("Holdout")]))
    assert [e["type"] for e in adapt(method="GET", query=query).events] == ["prompt.accepted", "prompt.holdout"]


def test_the_body_wins_over_the_query() -> None:
    query = urlencode({"events": json.dumps([prompt("Holdout")])})
    assert [e["type"] for e in adapt([prompt("Goal")], method="POST", query=query).events] == ["prompt.accepted"]
    assert [e["type"] for e in adapt(b"", method="POST", query=query).events] == ["prompt.holdout"]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("", "empty_body"),
        ("other=1", "empty_body"),
        ("events=", "empty_body"),
        ("events=%C3%28", "invalid_utf8"),
        ("events=%5Bnot%20json", "invalid_json"),
        ("events=" + quote('[{"event":"Goal","event":"Click"}]'), "duplicate_keys"),
        ("&".join(["x=1"] * 1001), "too_many_fields"),
        ("events=7", "not_a_batch"),
    ],
)
def test_get_without_a_readable_batch(query: str, reason: str) -> None:
    result = adapt(method="GET", query=query)
    assert result.events == []
    assert [(f.reason, f.index) for f in result.failures] == [(reason, None)]


def test_put_and_post_are_the_same() -> None:
    body = json.dumps([prompt("Goal"), usage()])
    assert [e["id"] for e in adapt(body, method="PUT").events] == [e["id"] for e in adapt(body, method="POST").events]


def test_bad_items_fail_alone() -> None:
    result = adapt([prompt("Goal"), 7, {"ts": 1795161700}, [prompt()], usage()])
    assert [e["type"] for e in result.events] == ["prompt.accepted", "app.page_viewed"]
    assert [(f.reason, f.index) for f in result.failures] == [
        ("invalid_event", 1),
        ("invalid_event", 2),
        ("invalid_event", 3),
    ]


def test_unencodable_event_fails_alone() -> None:
    result = adapt('[{"event": "Goal", "traits": {"name": "\\udc00"}}, {"event": "Holdout"}]')
    assert [e["type"] for e in result.events] == ["prompt.holdout"]
    assert [(f.reason, f.index) for f in result.failures] == [("unencodable_event", 0)]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b" \n", "empty_body"),
        (b'[{"event": "Goal", "user_id": "\xff"}]', "invalid_utf8"),
        (b'[{"event": "Goal", "ts": 0123}]', "invalid_json"),
        (b'{"event": "Goal", "ts": 0123}\n{"event": "Goal"}', "invalid_json"),
        (b"source=engage&note=hello", "invalid_json"),
        (b'[{"event": "Goal"}] trailing', "invalid_json"),
        (b"[" * 600 + b"]" * 600, "too_deep"),
        (b'"Goal"', "not_a_batch"),
        (b"null", "not_a_batch"),
    ],
)
def test_unreadable_bodies_give_one_failure(body: bytes, reason: str) -> None:
    result = adapt(body)
    assert result.events == []
    assert [(f.reason, f.index) for f in result.failures] == [(reason, None)]


def test_a_bug_becomes_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    import processors.adapters.recurly_engage as module

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(module, "build_event", broken)
    result = adapt([prompt()])
    assert [(f.reason, f.index) for f in result.failures] == [("adapter_error", 0)]
    assert "boom" in result.failures[0].detail
    monkeypatch.setattr(module, "parse_json_lenient", broken)
    assert [(f.reason, f.index) for f in adapt([prompt()]).failures] == [("adapter_error", None)]


# --- properties: nothing a sender can put in a body makes adapt raise ---------------------------------

_BODIES = [c.body for c in CASES if c.body.strip()]


def mutated_bodies() -> st.SearchStrategy[bytes]:
    return mutated(_BODIES, [b"{", b"[", b",", b'"', b"\\u", b"1e999"])


_JSON_VALUES = JSON_VALUES
_FIELD_VALUES = FIELD_VALUES
_ENGAGE_OBJECTS = st.fixed_dictionaries(
    {},
    optional={
        "event": _FIELD_VALUES | st.sampled_from(["Goal", "Impression", "Custom_Goals_X", "Home Page"]),
        "type": _FIELD_VALUES | st.sampled_from(["page", "track", "custom", "prompt"]),
        "ts": _FIELD_VALUES,
        "user_id": _FIELD_VALUES,
        "anonymous_user_id": _FIELD_VALUES,
        "platform": _FIELD_VALUES,
        "properties": st.dictionaries(st.sampled_from(["path_id", "path_name", "id"]), _FIELD_VALUES) | _FIELD_VALUES,
    },
)


def check(body: bytes | str, result: AdaptResult) -> None:
    assert_well_formed(result)
    if not result.events and not result.failures:  # silence is only right for an empty batch
        try:
            assert parse_json(body) == []
        except BodyError:  # pragma: no cover - an unreadable body must have produced a failure
            pytest.fail("unreadable body without a failure")


@settings(max_examples=400, deadline=None)
@given(mutated_bodies())
def test_mutated_fixture_bodies_never_raise(body: bytes) -> None:
    check(body, ADAPTER.adapt(envelope(body)))


@settings(max_examples=300, deadline=None)
@given(st.one_of(_JSON_VALUES, _ENGAGE_OBJECTS, st.lists(_ENGAGE_OBJECTS | _JSON_VALUES, max_size=4)))
def test_random_json_never_raises(value: Any) -> None:
    body = json.dumps(value).encode("utf-8", "surrogatepass")
    check(body, ADAPTER.adapt(envelope(body)))


@settings(max_examples=300, deadline=None)
@given(st.one_of(_JSON_VALUES, st.lists(_ENGAGE_OBJECTS, max_size=3)))
def test_random_json_in_the_query_never_raises(value: Any) -> None:
    text = json.dumps(value)
    result = ADAPTER.adapt(envelope(method="GET", query="events=" + quote(text.encode("utf-8", "surrogatepass"))))
    check(text, result)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="events=%5B7Dabc&+[]{}", max_size=80), st.binary(max_size=100))
def test_random_queries_and_bytes_never_raise(query: str, body: bytes) -> None:
    for env in (envelope(method="GET", query=query), envelope(body)):
        result = ADAPTER.adapt(env)
        assert isinstance(result, AdaptResult)
        assert result.events or result.failures or env.body.strip() or "events" in query


GOAL, IMPRESSION = prompt("Goal"), prompt("Impression")


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(GOAL) + "\n" + json.dumps(IMPRESSION) + "\n",  # one object a line, as the S3 export writes
        json.dumps(GOAL) + "\r\n" + json.dumps(IMPRESSION),
        json.dumps(GOAL) + "," + json.dumps(IMPRESSION),
        json.dumps({"events": [GOAL, IMPRESSION]}),  # the batch under the parameter's name, as JSON
        "source=engage&events=" + quote(json.dumps([GOAL, IMPRESSION])),  # the form field, not first
        "events=" + quote(json.dumps([GOAL])) + "&events=" + quote(json.dumps([IMPRESSION])) + "&x=1",
    ],
)
def test_other_batch_shapes_give_the_same_events(body: str) -> None:
    expected = adapt(json.dumps([GOAL, IMPRESSION])).events
    result = adapt(body)
    assert result.failures == []
    assert [e["data"]["raw"] for e in result.events] == [GOAL, IMPRESSION]
    assert [e["id"] for e in result.events] == [e["id"] for e in expected]


def test_an_object_with_an_events_list_and_its_own_event_is_one_event() -> None:
    event = one({**GOAL, "events": [1, 2]})
    assert event["type"] == "prompt.accepted"
