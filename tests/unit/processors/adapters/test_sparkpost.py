"""SparkPostAdapter: the fixture cases, the mapping rules one by one, and hostile input (hypothesis)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from espwire.envelope import Envelope
from espwire.event import CanonicalEvent
from processors.adapters import sparkpost
from processors.adapters.base import AdaptResult, Failure
from processors.adapters.fields import epoch_or_time
from processors.adapters.json_body import WRITE_MARGIN, parse_json, parse_json_writable
from processors.adapters.sparkpost import SparkPostAdapter
from processors.normalize import build_event
from processors.pipeline import serialise_event
from processors.timestamps import parse_time
from tests.fixture_cases import Case, load_cases, sequence_mismatches
from tests.support.adapter_properties import MUTATIONS, SMALL_JSON_VALUES, Mutation, assert_well_formed, mutate

ADAPTER = SparkPostAdapter()
CASES = load_cases("sparkpost")
DEAD_LETTER_CASES = [c for c in load_cases("_bad") if c.provider == "sparkpost" and c.meta.get("expect_dlq")]
DEAD_LETTER_REASONS = {
    "deep_nesting_10000": "too_deep",
    "duplicate_keys": "duplicate_keys",
    "empty_body_sparkpost": "empty_body",
    "huge_integer_100000_digits": "number_too_long",
    "invalid_utf8": "invalid_utf8",
    "nan_infinity": "nan_infinity",
    "not_json": "invalid_json",
    "nul_byte_in_string": "invalid_json",
}
FIXTURE_BODIES = [case.body for case in CASES]


def case_envelope(case: Case) -> Envelope:
    return case.envelope()


def body_envelope(body: bytes) -> Envelope:
    return Envelope(
        source_id="sparkpost",
        provider="sparkpost",
        request_id="r1",
        received_at="2026-11-24T00:00:00Z",
        method="POST",
        content_type="application/json",
        body=body,
    )


def adapt(envelope: Envelope) -> AdaptResult:
    """adapt() plus the promises every result keeps, whatever the input."""
    result = ADAPTER.adapt(envelope)
    assert isinstance(result, AdaptResult)
    assert_well_formed(result)
    for event in result.events:
        assert event["data"]["provider"] == "sparkpost"
    for failure in result.failures:
        assert isinstance(failure, Failure)
        assert failure.reason and isinstance(failure.reason, str)
    return result


def adapt_json(batch: Any) -> AdaptResult:
    return adapt(body_envelope(json.dumps(batch).encode()))


def one(batch: Any) -> CanonicalEvent:
    result = adapt_json(batch)
    assert result.failures == []
    assert len(result.events) == 1
    return result.events[0]


def item(type_: str | None, event_class: str = "message_event", **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": "1001",
        "rcpt_to": "a@example.com",
        "timestamp": 1795161660,
        **fields,
    }
    if type_ is not None:
        event["type"] = type_
    return {"msys": {event_class: event}}


# --- fixture cases -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_fixture_case_gives_exactly_its_expected_events(case: Case) -> None:
    result = adapt(case_envelope(case))
    assert result.failures == []
    assert sequence_mismatches(case.expect_events, cast(list[dict[str, Any]], result.events)) == []


def test_redelivered_batch_gives_the_same_event_ids() -> None:
    by_name = {case.name: case for case in CASES}
    first = adapt(case_envelope(by_name["batch_original"])).events
    again = adapt(case_envelope(by_name["batch_redelivered"])).events
    assert [e["id"] for e in first] == [e["id"] for e in again]
    assert len({e["id"] for e in first}) == len(first)


@pytest.mark.parametrize("case", DEAD_LETTER_CASES, ids=lambda case: case.name)
def test_unreadable_body_is_one_failure_and_no_events(case: Case) -> None:
    result = adapt(case_envelope(case))
    assert result.events == []
    assert [f.reason for f in result.failures] == [DEAD_LETTER_REASONS[case.name]]
    assert result.failures[0].index is None


# --- batch shape ---------------------------------------------------------------------------------------


def test_validation_ping_and_empty_batch_give_nothing() -> None:
    assert adapt_json([{"msys": {}}]) == AdaptResult()
    assert adapt_json([]) == AdaptResult()


@pytest.mark.parametrize("body", [b"42", b'"text"', b"null", b"true"])
def test_json_that_is_not_a_batch_is_one_failure(body: bytes) -> None:
    result = adapt(body_envelope(body))
    assert result.events == []
    assert [f.reason for f in result.failures] == ["not_a_batch"]


def test_item_that_is_not_an_msys_object_fails_alone_with_its_index() -> None:
    batch = [item("delivery"), 7, {"cust": {"id": "1"}}, {"msys": "x"}, {"msys": {"c": []}}, item("open")]
    result = adapt_json(batch)
    assert [e["type"] for e in result.events] == ["email.delivered", "email.opened"]
    assert [(f.reason, f.index) for f in result.failures] == [("invalid_event", i) for i in (1, 2, 3, 4)]


def test_single_object_and_samples_response_are_read_as_batches() -> None:
    assert one(item("delivery"))["type"] == "email.delivered"
    assert one({"results": [item("click")]})["type"] == "email.clicked"


def test_class_without_type_is_unknown_named_by_its_class() -> None:
    event = one([item(None, "relay_message", msg_from="x@example.net")])
    assert event["type"] == "unknown"
    assert event["data"]["provider_event_type"] == "relay_message"


def test_item_with_several_classes_gives_one_event_per_class() -> None:
    element = {
        "msys": {"message_event": {"type": "delivery"}, "track_event": {"type": "open"}},
        "cust": {"id": "9"},
    }
    result = adapt_json([element])
    assert [e["type"] for e in result.events] == ["email.delivered", "email.opened"]
    assert result.events[0]["data"]["raw"] == {
        "msys": {"message_event": {"type": "delivery"}},
        "cust": {"id": "9"},
    }
    # Without event_id the id is a fingerprint of raw: the two must not collide.
    assert result.events[0]["id"] != result.events[1]["id"]


def test_raw_is_the_batch_item_untouched() -> None:
    element = item("delivery", rcpt_meta={"n": 1}) | {"cust": {"id": "40211"}}
    assert one([element])["data"]["raw"] == element


# --- mapping -------------------------------------------------------------------------------------------

TYPE_MAP = {
    "injection": "email.sent",
    "delivery": "email.delivered",
    "delay": "email.deferred",
    "bounce": "email.bounced",
    "out_of_band": "email.bounced",
    "policy_rejection": "email.rejected",
    "generation_failure": "email.rejected",
    "generation_rejection": "email.rejected",
    "open": "email.opened",
    "initial_open": "email.opened",
    "amp_open": "email.opened",
    "amp_initial_open": "email.opened",
    "click": "email.clicked",
    "amp_click": "email.clicked",
    "spam_complaint": "email.complained",
    "list_unsubscribe": "email.unsubscribed",
    "link_unsubscribe": "email.unsubscribed",
    "sms_status": "sms.status",
    "relay_injection": "unknown",
    "relay_rejection": "unknown",
    "relay_delivery": "unknown",
    "relay_tempfail": "unknown",
    "relay_permfail": "unknown",
    "ab_test_completed": "unknown",
    "ab_test_cancelled": "unknown",
    "ingest_success": "unknown",
    "amp_superopen": "unknown",
    "Delivery": "unknown",
}


@pytest.mark.parametrize(("raw_type", "canonical"), TYPE_MAP.items())
def test_type_decides_whatever_the_class(raw_type: str, canonical: str) -> None:
    for event_class in ("message_event", "track_event", "gen_event", "some_future_event"):
        event = one([item(raw_type, event_class)])
        assert event["type"] == canonical
        assert event["data"]["provider_event_type"] == raw_type


BOUNCE_CLASSES = {
    # code: (severity, reject reason)
    "1": ("undetermined", "other"),
    "10": ("hard", "invalid"),
    "20": ("soft", "bounced"),
    "21": ("soft", "bounced"),
    "22": ("soft", "bounced"),
    "23": ("soft", "bounced"),
    "24": ("soft", "timed_out"),
    "25": ("admin", "blocked"),
    "30": ("hard", "bounced"),
    "40": ("soft", "bounced"),
    "50": ("block", "blocked"),
    "51": ("block", "spam"),
    "52": ("block", "spam"),
    "53": ("block", "other"),
    "54": ("block", "blocked"),
    "60": ("soft", "other"),
    "70": ("soft", "bounced"),
    "80": ("admin", "other"),
    "90": ("hard", "unsubscribed"),
    "100": ("soft", "other"),
}


@pytest.mark.parametrize(("code", "expected"), BOUNCE_CLASSES.items())
@pytest.mark.parametrize("raw_type", ["bounce", "out_of_band"])
def test_bounce_class_table(raw_type: str, code: str, expected: tuple[str, str]) -> None:
    for value in (code, int(code)):
        data = one([item(raw_type, bounce_class=value)])["data"]
        assert (data["bounce"]["severity"], data["reject_reason"]) == expected
        assert data["bounce"]["class_code"] == code


NO_KNOWN_CLASS = [{}, {"bounce_class": "99"}, {"bounce_class": None}, {"bounce_class": [1]}]


@pytest.mark.parametrize("fields", NO_KNOWN_CLASS)
def test_bounce_without_a_known_class_is_undetermined(fields: dict[str, Any]) -> None:
    data = one([item("bounce", **fields)])["data"]
    assert data["bounce"]["severity"] == "undetermined"
    assert data["reject_reason"] == "bounced"


def test_bounce_diagnosis_from_error_code_and_reason_texts() -> None:
    data = one(
        [
            item(
                "bounce",
                bounce_class="10",
                error_code="550",
                raw_reason="550 5.1.1 <a@example.com>: Recipient address rejected: User unknown",
                reason="550 5.1.1 <...@...>: Recipient address rejected: User unknown",
            )
        ]
    )["data"]
    assert data["bounce"] == {
        "severity": "hard",
        "category": "invalid_recipient",
        "class_code": "10",
        "smtp_status": "550",
        "enhanced_status": "5.1.1",
        "reason": "550 5.1.1 <a@example.com>: Recipient address rejected: User unknown",
    }


def test_bounce_codes_parsed_from_reason_when_error_code_missing() -> None:
    data = one([item("bounce", bounce_class="21", reason="451 4.4.0 DNS resolution failed")])["data"]
    bounce = data["bounce"]
    assert (bounce["smtp_status"], bounce["enhanced_status"]) == ("451", "4.4.0")
    data = one([item("bounce", bounce_class="60", reason="Auto-Reply: out until 5.12.2026")])["data"]
    bounce = data["bounce"]
    assert (bounce.get("smtp_status"), bounce.get("enhanced_status")) == (None, None)


def test_deferred_carries_the_diagnosis_but_no_severity_or_reject_reason() -> None:
    data = one([item("delay", bounce_class="21", raw_reason="451 4.4.0 DNS resolution failed")])["data"]
    assert data["bounce"] == {
        "category": "dns_failure",
        "class_code": "21",
        "smtp_status": "451",
        "enhanced_status": "4.4.0",
        "reason": "451 4.4.0 DNS resolution failed",
    }
    assert "reject_reason" not in data


@pytest.mark.parametrize("raw_type", ["delay", "policy_rejection", "out_of_band", "generation_rejection"])
def test_only_bounces_carry_a_severity(raw_type: str) -> None:
    # The fixture rules: bounce_severity only on email.bounced (out_of_band is a bounce that came later).
    event = one([item(raw_type, bounce_class="10", raw_reason="550 5.1.1 no such user")])
    assert ("severity" in event["data"]["bounce"]) == (event["type"] == "email.bounced")


@pytest.mark.parametrize(
    ("raw_type", "fields", "reason"),
    [
        (
            "policy_rejection",
            {"raw_reason": "554 5.7.1 recipient address suppressed due to customer policy"},
            "blocked",
        ),
        ("policy_rejection", {"reason": "554 5.7.1 Message rejected: SPAM content"}, "spam"),
        ("policy_rejection", {"bounce_class": "51"}, "spam"),
        ("policy_rejection", {}, "blocked"),
        ("generation_failure", {"raw_reason": "554 5.3.3 [internal] Error while rendering"}, "other"),
        ("generation_rejection", {"bounce_class": "10"}, "other"),
    ],
)
def test_rejection_reasons(raw_type: str, fields: dict[str, Any], reason: str) -> None:
    assert one([item(raw_type, **fields)])["data"]["reject_reason"] == reason


def test_only_bounced_and_rejected_events_have_a_reject_reason() -> None:
    for raw_type in ("delivery", "open", "delay", "spam_complaint", "relay_permfail"):
        assert "reject_reason" not in one([item(raw_type, bounce_class="10")])["data"]


def test_message_campaign_link_client_tags_and_metadata() -> None:
    event = one(
        [
            {
                "msys": {
                    "track_event": {
                        "type": "click",
                        "event_id": "539211617276405459",
                        "rcpt_to": "dev.patel@example.com",
                        "raw_rcpt_to": "Dev.Patel@Example.com",
                        "message_id": "5edaa386c4a7670c5891",
                        "transmission_id": "324452355729195744",
                        "subject": "Winter deals",
                        "friendly_from": "news@shop.example.com",
                        "campaign_id": "black-friday-2026",
                        "target_link_url": "https://shop.example.com/sale",
                        "target_link_name": "Shop now",
                        "ip_address": "192.0.2.189",
                        "user_agent": "Mozilla/5.0",
                        "rcpt_tags": ["newsletter", 7, None, ""],
                        "rcpt_meta": {"crm_id": "1003"},
                    }
                },
                "cust": {"id": "40211"},
            }
        ]
    )
    data = event["data"]
    assert event["subject"] == "dev.patel@example.com"
    assert data["recipient"] == {"email": "dev.patel@example.com"}
    assert data["message"] == {
        "message_id": "5edaa386c4a7670c5891",
        "transmission_id": "324452355729195744",
        "subject": "Winter deals",
        "from": "news@shop.example.com",
    }
    assert data["campaign"] == {"id": "black-friday-2026"}
    assert data["link"] == {"url": "https://shop.example.com/sale", "name": "Shop now"}
    assert data["client"] == {"user_agent": "Mozilla/5.0", "ip": "192.0.2.189"}
    assert data["tags"] == ["newsletter", "7"]
    assert data["metadata"] == {"crm_id": "1003", "cust": {"id": "40211"}}


def test_ip_address_is_the_client_only_on_opens_and_clicks() -> None:
    delivery = one([item("delivery", ip_address="192.0.2.111", user_agent="MTA")])["data"]
    assert delivery["client"] == {"user_agent": "MTA"}
    assert "client" not in one([item("delivery", ip_address="192.0.2.111")])["data"]
    assert one([item("open", ip_address="198.51.100.1")])["data"]["client"] == {"ip": "198.51.100.1"}


def test_sms_recipient_is_the_phone_number() -> None:
    sms = {"type": "sms_status", "event_id": "9", "sms_dst": "15552684291"}
    event = one([{"msys": {"message_event": sms}}])
    assert event["type"] == "sms.status"
    assert event["subject"] == "15552684291"
    assert event["data"]["recipient"] == {"phone": "15552684291"}


def test_event_without_recipient_has_no_subject() -> None:
    event = one([{"msys": {"relay_event": {"type": "relay_delivery", "event_id": "1"}}}])
    assert "subject" not in event
    assert event["data"]["recipient"] == {}


@pytest.mark.parametrize(
    ("event_id", "expected"),
    [
        ("18446744073709551557", "18446744073709551557"),
        ("d1add81d-0c34-453f-9454-adcd3b6bda09", "d1add81d-0c34-453f-9454-adcd3b6bda09"),
        (12345, "12345"),
        (None, None),
        ({"x": 1}, None),
    ],
)
def test_provider_event_id_is_the_exact_event_id_string(event_id: Any, expected: str | None) -> None:
    assert one([item("delivery", event_id=event_id)])["data"]["provider_event_id"] == expected


def test_bare_integer_event_id_beyond_2p53_keeps_its_digits() -> None:
    body = b'[{"msys":{"message_event":{"type":"delivery","event_id":18446744073709551557}}}]'
    assert adapt(body_envelope(body)).events[0]["data"]["provider_event_id"] == "18446744073709551557"


@pytest.mark.parametrize(
    ("timestamp", "occurred_at"),
    [
        (1795161660, "2026-11-20T08:01:00Z"),
        ("1795161660", "2026-11-20T08:01:00Z"),
        ("2026-11-20T08:40:00.000Z", "2026-11-20T08:40:00Z"),
        ("2026-11-20T10:40:53.250+02:00", "2026-11-20T08:40:53.250Z"),
        (1795161660123, "2026-11-20T08:01:00.123Z"),
        ("soon", None),
        (True, None),
        (None, None),
        (99, None),
    ],
)
def test_timestamp_forms(timestamp: Any, occurred_at: str | None) -> None:
    event = one([item("delivery", timestamp=timestamp)])
    data = event["data"]
    assert data["occurred_at"] == occurred_at
    assert data["time_source"] == ("provider" if occurred_at else "received")
    assert event["time"] == (occurred_at or data["received_at"])


@given(st.one_of(st.integers(-(10**12), 10**14), st.integers(0, 10**12).map(str), st.text(max_size=12)))
def test_fast_epoch_path_agrees_with_parse_time(value: int | str) -> None:
    assert epoch_or_time(value) == parse_time(value)


# --- never raises ---------------------------------------------------------------------------------------


def test_a_bug_in_one_item_is_a_failure_for_that_item(monkeypatch: pytest.MonkeyPatch) -> None:
    real = build_event

    def flaky(envelope: Envelope, **kwargs: Any) -> CanonicalEvent:
        if kwargs["provider_event_type"] == "open":
            raise RuntimeError("boom")
        return real(envelope, **kwargs)

    monkeypatch.setattr(sparkpost, "build_event", flaky)
    result = adapt_json([item("delivery"), item("open"), item("click")])
    assert [e["type"] for e in result.events] == ["email.delivered", "email.clicked"]
    assert [(f.reason, f.index) for f in result.failures] == [("adapter_error", 1)]
    assert "boom" in result.failures[0].detail


def test_a_bug_anywhere_is_one_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(body: bytes) -> Any:
        raise MemoryError

    monkeypatch.setattr(sparkpost, "parse_json_writable", broken)
    result = adapt_json([item("delivery")])
    assert result.events == []
    assert [(f.reason, f.index) for f in result.failures] == [("adapter_error", None)]


def test_unpaired_surrogate_fails_only_its_item() -> None:
    body = (
        b'[{"msys":{"message_event":{"type":"open","event_id":"2","rcpt_meta":{"k":"\\ud800"}}}},'
        b'{"msys":{"message_event":{"type":"click","event_id":"3"}}}]'
    )
    result = adapt(body_envelope(body))
    assert [e["type"] for e in result.events] == ["email.clicked"]
    assert [(f.reason, f.index) for f in result.failures] == [("unencodable_event", 0)]


def test_item_too_deep_to_fingerprint_is_a_failure_with_its_index() -> None:
    deep: Any = "x"
    for _ in range(300):  # the parser allows 512 levels, orjson writes 254
        deep = [deep]
    no_id = {"msys": {"message_event": {"type": "open", "rcpt_meta": {"deep": deep}}}}
    result = adapt_json([item("delivery"), no_id, item("click")])
    assert [e["type"] for e in result.events] == ["email.delivered", "email.clicked"]
    assert [(f.reason, f.index) for f in result.failures] == [("unencodable_event", 1)]


JSON_VALUES = SMALL_JSON_VALUES
FIELD_NAMES = [
    "type",
    "event_id",
    "timestamp",
    "rcpt_to",
    "sms_dst",
    "bounce_class",
    "raw_reason",
    "reason",
    "error_code",
    "rcpt_tags",
    "rcpt_meta",
    "ip_address",
    "user_agent",
    "target_link_url",
    "target_link_name",
    "message_id",
    "transmission_id",
    "campaign_id",
    "friendly_from",
    "subject",
]
TYPE_VALUES = st.sampled_from([*TYPE_MAP, ""]) | JSON_VALUES
EVENT_OBJECTS = st.builds(
    lambda event, has_type, type_: {**event, "type": type_} if has_type else event,
    st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), JSON_VALUES, max_size=12),
    st.booleans(),
    TYPE_VALUES,
)
CLASSES = st.sampled_from(["message_event", "track_event", "gen_event", "relay_event", "unsubscribe_event"])
ITEMS = st.builds(
    lambda classes, cust: {"msys": classes} | ({} if cust is None else {"cust": cust}),
    st.dictionaries(CLASSES | st.text(max_size=8), EVENT_OBJECTS, max_size=3),
    st.none() | JSON_VALUES,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ITEMS, max_size=6))
def test_every_event_object_comes_out_whatever_its_field_values(batch: list[dict[str, Any]]) -> None:
    body = json.dumps(batch).encode()
    result = adapt(body_envelope(body))
    assert result.failures == []
    # The adapter sees what the parser gives (integers beyond 2^53 as digit strings), so the oracle does too.
    parsed = parse_json(body)
    assert len(result.events) == sum(len(element["msys"]) for element in parsed)
    objects = [(cls, event) for element in parsed for cls, event in element["msys"].items()]
    for (event_class, event), out in zip(objects, result.events, strict=True):
        raw_type = event.get("type")
        expected = raw_type if isinstance(raw_type, str) and raw_type else event_class
        assert out["data"]["provider_event_type"] == expected


@settings(max_examples=200, deadline=None)
@given(JSON_VALUES)
def test_random_json_never_raises(value: Any) -> None:
    adapt_json(value)
    adapt_json([value, item("delivery")])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_never_raise(body: bytes) -> None:
    adapt(body_envelope(body))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FIXTURE_BODIES), MUTATIONS)
def test_mutated_fixture_bodies_never_raise(body: bytes, mutations: list[Mutation]) -> None:
    adapt(body_envelope(mutate(body, mutations)))


def nested(levels: int) -> Any:
    """A value ``levels`` containers deep (a string inside ``levels`` arrays)."""
    value: Any = "x"
    for _ in range(levels):
        value = [value]
    return value


def deepest_body(shape: Callable[[Any], Any]) -> tuple[bytes, int]:
    """The deepest compact body of ``shape`` (a nested value inside it) that the fast path proves
    writable, and its nesting depth; one level deeper must take the strict path."""
    levels = 200
    while parse_json_writable(orjson.dumps(shape(nested(levels + 1))))[1]:
        levels += 1
    body = orjson.dumps(shape(nested(levels)))
    assert parse_json_writable(body)[1]
    assert not parse_json_writable(orjson.dumps(shape(nested(levels + 1))))[1]
    return body, _depth(orjson.loads(body))


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _message(**extra: Any) -> dict[str, Any]:
    return {"type": "click", "event_id": "9", "rcpt_to": "a@example.com", "timestamp": 1795161660, **extra}


# Every place a SparkPost event copies a body value from, in every batch form the adapter reads.
DEEP_SHAPES: dict[str, Callable[[Any], Any]] = {
    "rcpt_meta": lambda deep: [{"msys": {"track_event": _message(rcpt_meta={"k": deep})}}],
    "cust": lambda deep: [{"msys": {"track_event": _message()}, "cust": deep}],
    "item": lambda deep: [{"msys": {"track_event": _message()}, "extra": deep}],
    "event": lambda deep: [{"msys": {"track_event": _message(extra=deep)}}],
    "two_classes": lambda deep: [{"msys": {"track_event": _message(extra=deep), "message_event": _message()}}],
    "no_event_id": lambda deep: [{"msys": {"track_event": {"type": "open", "x": deep}}}],
    "bare_object_cust": lambda deep: {"msys": {"track_event": _message()}, "cust": deep},
    "bare_object_rcpt_meta": lambda deep: {"msys": {"track_event": _message(rcpt_meta={"k": deep})}},
    "results": lambda deep: {"results": [{"msys": {"track_event": _message(rcpt_meta={"k": deep})}}]},
}


@pytest.mark.parametrize("shape", DEEP_SHAPES.values(), ids=DEEP_SHAPES.keys())
def test_fast_path_bodies_need_no_encodability_check(shape: Callable[[Any], Any]) -> None:
    """The adapter skips keep_encodable for bodies the fast path read; sound because such a body is
    proven writable with WRITE_MARGIN levels to spare and an event nests body values at most 2 deeper."""
    body, depth = deepest_body(shape)
    assert depth == 254 - WRITE_MARGIN  # orjson writes 254 levels
    result = adapt(body_envelope(body))  # assert_well_formed serialises each event
    assert result.failures == []
    assert result.events
    for event in result.events:
        assert _depth(event) <= depth + 2
        serialise_event("t", event)  # as the pipeline writes it
    orjson.dumps(result.events)  # even the whole batch, one level more


def test_an_envelope_orjson_cannot_write_still_gets_checked() -> None:
    """A record not written by our gateway may carry any JSON in its envelope header."""
    envelope = body_envelope(orjson.dumps([item("delivery")]))
    envelope.source_id = nested(300)
    result = ADAPTER.adapt(envelope)
    assert result.events == []
    assert [(f.reason, f.index) for f in result.failures] == [("unencodable_event", 0)]
