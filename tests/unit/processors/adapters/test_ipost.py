"""IPostAdapter against the recorded Firehose posts, the mapping rules, and hostile or mutated bodies."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from espwire.envelope import Envelope
from espwire.event import EVENT_ADAPTER, CanonicalEvent
from processors.adapters.base import AdaptResult
from processors.adapters.ipost import IPostAdapter
from processors.adapters.json_body import BodyError, parse_json_lenient
from tests.fixture_cases import Case, load_cases, sequence_mismatches
from tests.support.adapter_properties import FIELD_VALUES, JSON_VALUES, assert_well_formed, mutated

ADAPTER = IPostAdapter()
CASES = load_cases("ipost")
DEAD_LETTER_CASES = [c for c in load_cases("_bad") if c.meta.get("expect_dlq")]
RECEIVED = "2026-11-24T00:00:00Z"


def case_envelope(case: Case) -> Envelope:
    return case.envelope()


def envelope(body: bytes | str, **options: Any) -> Envelope:
    return Envelope(
        source_id="ipost-main",
        provider="ipost",
        request_id="r1",
        received_at=RECEIVED,
        method="POST",
        content_type="application/json",
        body=body.encode() if isinstance(body, str) else body,
        options=options,
    )


def adapt(body: bytes | str | Any, **options: Any) -> AdaptResult:
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
    result = ADAPTER.adapt(envelope(body, **options))
    for event in result.events:
        EVENT_ADAPTER.validate_python(event)
    return result


def one(body: bytes | str | Any, **options: Any) -> CanonicalEvent:
    result = adapt(body, **options)
    assert result.failures == []
    assert len(result.events) == 1
    return result.events[0]


def sample(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "event_name": "click",
        "event_time": "2026-11-20 08:01:40",
        "event_properties": {
            "mailing_id": "000001",
            "campaign_name": "Offer Email",
            "click_link_name": "Offer",
            "click_link_content": "https://shop.example.com/offer",
            "device": "desktop",
            "operating_system": "windows",
            "browser": "Safari",
            "email_client": "Chrome",
        },
        "contact": {"email": "bob@example.org", "mobile": "555-001-1001", "contact_id": "4001"},
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
    ("name", "canonical"),
    [
        ("click", "email.clicked"),
        ("open", "email.opened"),
        ("complaint", "email.complained"),
        ("send", "email.sent"),
        ("bounce", "email.bounced"),
        ("optout", "email.unsubscribed"),
        ("conversion", "commerce.converted"),
        ("Open", "email.opened"),
        ("forward", "unknown"),
    ],
)
def test_event_names(name: str, canonical: str) -> None:
    event = one(sample(event_name=name))
    assert event["type"] == canonical
    assert event["data"]["provider_event_type"] == name


def test_leading_zero_numbers_stay_digit_strings() -> None:
    body = '{"event_name":"open","event_time":"view_time","event_properties":{"mailing_id":000001,"automation_id":007}}'
    event = one(body)
    assert event["data"]["raw"]["event_properties"] == {"mailing_id": "000001", "automation_id": "007"}
    assert event["data"]["message"] == {"mailing_id": "000001"}
    assert event["data"]["metadata"] == {"automation_id": "007"}
    assert orjson.loads(orjson.dumps(event))["data"]["raw"]["event_properties"]["mailing_id"] == "000001"


def test_body_labelled_as_a_form_is_read_as_json() -> None:
    env = Envelope(
        source_id="ipost-main",
        provider="ipost",
        request_id="r1",
        received_at=RECEIVED,
        method="POST",
        content_type="application/x-www-form-urlencoded",
        body=json.dumps(sample()).encode(),
    )
    assert [e["type"] for e in ADAPTER.adapt(env).events] == ["email.clicked"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-20 08:01:40", "2026-11-20T08:01:40Z"),
        ("2026-11-20T08:10:00Z", "2026-11-20T08:10:00Z"),
        ("2026-11-20T03:06:40-05:00", "2026-11-20T08:06:40Z"),
        ("2026-11-20T09:11:40.5+01:00", "2026-11-20T08:11:40.500Z"),
        (1795161900, "2026-11-20T08:05:00Z"),
        ("1795161900", "2026-11-20T08:05:00Z"),
        # Epoch seconds only (the fixtures' rule): a millisecond count is no time.
        (1795161900250, None),
        ("1795161900250", None),
        ("view_time", None),
        ("hyperlink_resolve_time", None),
        ("2026-11-20", None),
        ("", None),
        (None, None),
        (True, None),
        ({"t": 1}, None),
        (42, None),
    ],
)
def test_event_time(value: Any, expected: str | None) -> None:
    event = one(sample(event_time=value))
    assert event["data"]["occurred_at"] == expected
    assert event["data"]["time_source"] == ("provider" if expected else "received")
    assert event["time"] == (expected or RECEIVED)


def test_naive_times_use_the_source_time_zone() -> None:
    assert one(sample(), timezone="America/New_York")["data"]["occurred_at"] == "2026-11-20T13:01:40Z"
    # Zoned and epoch times are instants already: the setting does not move them.
    assert one(sample(event_time="2026-11-20T08:10:00Z"), timezone="Asia/Tokyo")["data"]["occurred_at"] == (
        "2026-11-20T08:10:00Z"
    )
    assert one(sample(event_time=1795161900), timezone="Asia/Tokyo")["data"]["occurred_at"] == "2026-11-20T08:05:00Z"
    assert one(sample(), timezone="Not/A_Zone")["data"]["occurred_at"] == "2026-11-20T08:01:40Z"


def test_click_fields() -> None:
    data = one(sample())["data"]
    assert data["recipient"] == {"email": "bob@example.org", "phone": "555-001-1001", "contact_id": "4001"}
    assert data["message"] == {"mailing_id": "000001"}
    assert data["campaign"] == {"name": "Offer Email"}
    assert data["link"] == {"url": "https://shop.example.com/offer", "name": "Offer"}
    assert data["client"] == {"device": "desktop", "os": "windows", "browser": "Safari", "email_client": "Chrome"}
    assert "metadata" not in data


def test_send_fields_and_metadata() -> None:
    props = {
        "mailing_id": 1,
        "campaign_name": "Offer Email",
        "send_type": "Commercial",
        "from_email": "marketing@e.example.com",
        "subject": "50% Off",
        "automation_id": "000003",
        "preheader": "offer",
    }
    data = one(sample(event_name="send", event_properties=props))["data"]
    assert data["message"] == {"mailing_id": "1", "subject": "50% Off", "from": "marketing@e.example.com"}
    assert data["metadata"] == {"send_type": "Commercial", "automation_id": "000003", "preheader": "offer"}


def test_conversion_metadata() -> None:
    props = {"mailing_id": "000001", "conversion_type": "order", "order_id": "ABC123", "order_grand_total": "123.45"}
    data = one(sample(event_name="conversion", event_properties=props))["data"]
    assert data["metadata"] == {"conversion_type": "order", "order_id": "ABC123", "order_grand_total": "123.45"}


@pytest.mark.parametrize(
    ("bounce_type", "severity"),
    [("hard", "hard"), ("soft", "soft"), ("HARD", "hard"), ("block", "undetermined"), (None, "undetermined")],
)
def test_bounce_severity(bounce_type: str | None, severity: str) -> None:
    props = {"mailing_id": "000001"} if bounce_type is None else {"mailing_id": "000001", "bounce_type": bounce_type}
    data = one(sample(event_name="bounce", event_properties=props))["data"]
    assert data["bounce"] == {"severity": severity}
    assert data["reject_reason"] == "bounced"
    assert "metadata" not in data


def test_bounce_type_on_other_events_is_metadata() -> None:
    data = one(sample(event_name="open", event_properties={"bounce_type": "hard"}))["data"]
    assert "bounce" not in data
    assert data["metadata"] == {"bounce_type": "hard"}


def test_missing_contact_names_nobody() -> None:
    item = sample(event_name="complaint")
    del item["contact"]
    event = one(item)
    assert "subject" not in event
    assert event["data"]["recipient"] == {}


def test_contact_without_email_keeps_phone_but_names_nobody() -> None:
    event = one(sample(contact={"mobile": "555", "contact_id": 4001}))
    assert "subject" not in event
    assert event["data"]["recipient"] == {"phone": "555", "contact_id": "4001"}


@pytest.mark.parametrize("shape", ["properties", "contact"])
def test_sections_of_the_wrong_shape_are_ignored(shape: str) -> None:
    key = "event_properties" if shape == "properties" else "contact"
    event = one(sample(**{key: ["not", "an", "object"]}))
    assert event["type"] == "email.clicked"
    assert event["data"]["raw"][key] == ["not", "an", "object"]


def test_an_array_of_objects_is_a_batch_and_bad_items_fail_alone() -> None:
    result = adapt([sample(), "oops", sample(event_name="open"), {"event_time": 1795161900}])
    assert [e["type"] for e in result.events] == ["email.clicked", "email.opened"]
    assert [(f.reason, f.index) for f in result.failures] == [("invalid_event", 1), ("invalid_event", 3)]


def test_object_without_event_name_is_a_failure() -> None:
    result = adapt({"event_time": 1795161900, "contact": {"email": "a@example.com"}})
    assert result.events == []
    assert [(f.reason, f.index) for f in result.failures] == [("invalid_event", 0)]


def test_empty_array_is_nothing() -> None:
    assert adapt([]) == AdaptResult()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty_body"),
        (b"   ", "empty_body"),
        (b"type=click&email=a", "invalid_json"),
        (b'{"event_name": "open", "x": "\xc3\x28"}', "invalid_utf8"),
        (b'{"event_name": "open", "event_name": "click"}', "duplicate_keys"),
        (b'{"event_name": "open", "x": NaN}', "nan_infinity"),
        (b"[" * 10_000 + b"]" * 10_000, "too_deep"),
        (b'{"event_name": "open", "x": 1' + b"0" * 5000 + b"}", "number_too_long"),
        (b'"just a string"', "not_a_batch"),
        (b"42", "not_a_batch"),
    ],
)
def test_unreadable_bodies_give_one_failure(body: bytes, reason: str) -> None:
    result = adapt(body)
    assert result.events == []
    assert [(f.reason, f.index) for f in result.failures] == [(reason, None)]


def test_unencodable_event_fails_alone() -> None:
    result = adapt('[{"event_name": "open", "x": "\\ud800"}, {"event_name": "click"}]')
    assert [e["type"] for e in result.events] == ["email.clicked"]
    assert [(f.reason, f.index) for f in result.failures] == [("unencodable_event", 0)]


def test_redelivery_gives_the_same_ids() -> None:
    assert one(sample())["id"] == one(json.dumps(sample(), indent=2))["id"]
    assert one(sample())["id"] != one(sample(event_name="open"))["id"]


def test_a_bug_becomes_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    import processors.adapters.ipost as module

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(module, "build_event", broken)
    result = adapt([sample(), sample()])
    assert result.events == []
    assert [(f.reason, f.index) for f in result.failures] == [("adapter_error", 0), ("adapter_error", 1)]
    assert "boom" in result.failures[0].detail
    monkeypatch.setattr(module, "parse_json_lenient", broken)
    assert [f.reason for f in adapt(sample()).failures] == ["adapter_error"]


# --- properties: nothing a sender can put in a body makes adapt raise ---------------------------------

_BODIES = [c.body for c in CASES]


def mutated_bodies() -> st.SearchStrategy[bytes]:
    return mutated(_BODIES, [b"0", b"00", b"{", b"[", b",", b'"', b"\\u"])


_JSON_VALUES = JSON_VALUES
_FIELD_VALUES = FIELD_VALUES
_IPOST_OBJECTS = st.fixed_dictionaries(
    {},
    optional={
        "event_name": _FIELD_VALUES | st.sampled_from(["click", "open", "bounce", "send", "optout"]),
        "event_time": _FIELD_VALUES,
        "event_properties": st.dictionaries(
            st.sampled_from(["mailing_id", "bounce_type", "campaign_name", "device", "order_id"]), _FIELD_VALUES
        )
        | _FIELD_VALUES,
        "contact": st.dictionaries(st.sampled_from(["email", "mobile", "contact_id"]), _FIELD_VALUES) | _FIELD_VALUES,
    },
)


def check(body: bytes, result: AdaptResult) -> None:
    assert_well_formed(result)
    if not result.events and not result.failures:  # silence is only right for an empty batch
        try:
            assert parse_json_lenient(body) == []
        except BodyError:  # pragma: no cover - an unreadable body must have produced a failure
            pytest.fail("unreadable body without a failure")


@settings(max_examples=400, deadline=None)
@given(mutated_bodies())
def test_mutated_fixture_bodies_never_raise(body: bytes) -> None:
    check(body, ADAPTER.adapt(envelope(body)))


@settings(max_examples=300, deadline=None)
@given(st.one_of(_JSON_VALUES, _IPOST_OBJECTS, st.lists(_IPOST_OBJECTS | _JSON_VALUES, max_size=4)))
def test_random_json_never_raises(value: Any) -> None:
    body = json.dumps(value).encode("utf-8", "surrogatepass")
    check(body, ADAPTER.adapt(envelope(body)))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(alphabet='{}[]",:0123456789 -.eE"tfnulrs\\', max_size=80).map(str.encode))
def test_random_bytes_never_raise(body: bytes) -> None:
    check(body, ADAPTER.adapt(envelope(body)))
