"""FalconideAdapter: the fixture cases, every body shape, the mapping rules, hostile input (hypothesis)."""

from __future__ import annotations

import json
from typing import Any, cast
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from espwire.envelope import Envelope
from espwire.event import CanonicalEvent
from processors.adapters import falconide
from processors.adapters.base import AdaptResult, Failure
from processors.adapters.falconide import FalconideAdapter
from processors.adapters.fields import MAX_FORM_FIELDS
from processors.adapters.json_body import parse_json
from processors.normalize import build_event
from tests.fixture_cases import Case, load_cases, sequence_mismatches
from tests.support.adapter_properties import MUTATIONS, SMALL_JSON_VALUES, Mutation, assert_well_formed, mutate

ADAPTER = FalconideAdapter()
CASES = load_cases("falconide")
DEAD_LETTER_CASES = [c for c in load_cases("_bad") if c.meta.get("expect_dlq")]
FIXTURE_BODIES = [case.body for case in CASES if case.body]
FORM = "application/x-www-form-urlencoded"


def case_envelope(case: Case) -> Envelope:
    return case.envelope()


def body_envelope(body: bytes, content_type: str = "application/json", method: str = "POST") -> Envelope:
    return Envelope(
        source_id="falconide",
        provider="falconide",
        request_id="r1",
        received_at="2026-11-24T00:00:00Z",
        method=method,
        content_type=content_type,
        body=body,
    )


def adapt(envelope: Envelope) -> AdaptResult:
    """adapt() plus the promises every result keeps, whatever the input."""
    result = ADAPTER.adapt(envelope)
    assert isinstance(result, AdaptResult)
    assert_well_formed(result)
    for event in result.events:
        assert event["data"]["provider_event_id"] is None
    for failure in result.failures:
        assert isinstance(failure, Failure)
        assert failure.reason and isinstance(failure.reason, str)
    return result


def adapt_body(body: bytes | str, content_type: str = "application/json") -> AdaptResult:
    return adapt(body_envelope(body.encode() if isinstance(body, str) else body, content_type))


def record(event: str = "opened", **fields: Any) -> dict[str, Any]:
    return {
        "TRANSID": "32708057162422418",
        "EMAIL": "kofi@example.org",
        "EVENT": event,
        "TIMESTAMP": "1795161700",
        "X-APIHEADER": "ACC00070",
        **fields,
    }


def one(obj: Any) -> CanonicalEvent:
    result = adapt_body(json.dumps(obj))
    assert result.failures == []
    assert len(result.events) == 1
    return result.events[0]


# --- fixture cases -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_fixture_case_gives_exactly_its_expected_events(case: Case) -> None:
    result = adapt(case_envelope(case))
    assert result.failures == []
    assert sequence_mismatches(case.expect_events, cast(list[dict[str, Any]], result.events)) == []


@pytest.mark.parametrize("case", DEAD_LETTER_CASES, ids=lambda case: case.name)
def test_unreadable_body_is_one_failure_and_no_events(case: Case) -> None:
    result = adapt_body(case.body)
    assert result.events == []
    assert len(result.failures) == 1
    assert result.failures[0].index is None


# --- body shapes ---------------------------------------------------------------------------------------


def test_url_check_without_body_gives_nothing_but_an_empty_post_is_a_failure() -> None:
    assert adapt(body_envelope(b"", "", "HEAD")) == AdaptResult()
    assert adapt(body_envelope(b"", "", "GET")) == AdaptResult()
    assert [f.reason for f in adapt_body(b" \n").failures] == ["empty_body"]


@pytest.mark.parametrize("body", ["[]", " \n[ ]\n", "data=%5B%5D", "data=[]"])
def test_verification_post_with_empty_array_gives_nothing(body: str) -> None:
    assert adapt_body(body, FORM) == AdaptResult()


ARRAY = json.dumps([record("sent"), record("opened")])


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (ARRAY, "application/json"),
        (ARRAY, FORM),  # labelled as a form, but it is JSON
        ("\ufeff" + ARRAY, ""),
        (ARRAY[1:-1], "application/json"),  # bracket-less {..},{..}
        (ARRAY[1:-1] + ",\n\n", "text/plain"),
        ("data=" + quote(ARRAY), FORM),
        ("payload=" + quote(ARRAY), ""),  # any field name, unlabelled
        ("events=" + quote(ARRAY[1:-1] + ","), FORM),
        ("json=" + quote(ARRAY) + "&submit=Send", FORM),  # one JSON-valued field among others
    ],
)
def test_every_body_shape_gives_the_same_events(body: str, content_type: str) -> None:
    result = adapt_body(body, content_type)
    assert result.failures == []
    assert [e["type"] for e in result.events] == ["email.delivered", "email.opened"]
    assert [e["data"]["raw"] for e in result.events] == [record("sent"), record("opened")]


def test_single_object_is_a_batch_of_one() -> None:
    assert one(record("clicked"))["type"] == "email.clicked"


@pytest.mark.parametrize("content_type", [FORM, ""])
def test_flat_form_fields_are_one_event(content_type: str) -> None:
    body = urlencode(record("clicked", URL="https://shop.example.com/t?a=1&b=2", TAGS="a,b"))
    result = adapt_body(body, content_type)
    assert result.failures == []
    (event,) = result.events
    assert event["type"] == "email.clicked"
    assert event["data"]["link"] == {"url": "https://shop.example.com/t?a=1&b=2"}
    assert event["data"]["message"]["message_id"] == "32708057162422418"
    assert event["data"]["tags"] == ["a", "b"]


def test_flat_form_without_event_name_is_unknown() -> None:
    (event,) = adapt_body("TRANSID=123&EMAIL=a%40example.com", FORM).events
    assert event["type"] == "unknown"
    assert event["data"]["provider_event_type"] == ""
    assert event["subject"] == "a@example.com"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("Hello, this is definitely not JSON", "unrecognised_body"),
        ("a=%5B1%5D&b=%7B%7D", "unrecognised_body"),  # two JSON-looking fields: which one?
        ("data=%5B%7Bbroken", "invalid_json"),
        ("EVENT=sent&EVENT=opened", "duplicate_keys"),
        ("EMAIL=%C3%28%40example.com&EVENT=sent", "invalid_utf8"),
        ("&".join(f"f{n}=1" for n in range(MAX_FORM_FIELDS + 1)), "too_many_fields"),
        ("42", "unrecognised_body"),
        ("[1] trailing", "invalid_json"),
        ('"text"', "unrecognised_body"),
    ],
)
def test_unreadable_forms_and_text_are_one_failure(body: str, reason: str) -> None:
    result = adapt_body(body, FORM)
    assert result.events == []
    assert [(f.reason, f.index) for f in result.failures] == [(reason, None)]


def test_item_that_is_not_an_object_fails_alone_with_its_index() -> None:
    result = adapt_body(json.dumps([record("sent"), "x", None, [record("opened")], record("opened")]))
    assert [e["type"] for e in result.events] == ["email.delivered", "email.opened"]
    assert [(f.reason, f.index) for f in result.failures] == [("invalid_event", i) for i in (1, 2, 3)]


# --- mapping -------------------------------------------------------------------------------------------

TYPE_MAP = {
    "sent": "email.delivered",
    "dropped": "email.rejected",
    "invalid": "email.rejected",
    "bounced": "email.bounced",
    "opened": "email.opened",
    "clicked": "email.clicked",
    "unsubscribed": "email.unsubscribed",
    "unsub": "email.unsubscribed",
    "abuse": "email.complained",
    "spam": "email.complained",
    "Opened": "email.opened",
    " SENT ": "email.delivered",
    "deferred": "unknown",
    "": "unknown",
}


@pytest.mark.parametrize(("name", "canonical"), TYPE_MAP.items())
def test_event_names(name: str, canonical: str) -> None:
    event = one(record(name))
    assert event["type"] == canonical
    assert event["data"]["provider_event_type"] == name


def test_missing_or_odd_event_name_is_unknown() -> None:
    no_name = {k: v for k, v in record().items() if k != "EVENT"}
    assert one(no_name)["data"]["provider_event_type"] == ""
    assert one(record(7))["data"]["provider_event_type"] == "7"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bounce_type", "severity"),
    [
        ("HARDBOUNCE", "hard"),
        ("SOFTBOUNCE", "soft"),
        ("hard bounce", "hard"),
        ("Soft_Bounce", "soft"),
        ("BLOCKED", "undetermined"),
        (None, "undetermined"),
        (3, "undetermined"),
    ],
)
def test_bounce_type_gives_severity(bounce_type: Any, severity: str) -> None:
    fields = {} if bounce_type is None else {"BOUNCE_TYPE": bounce_type}
    data = one(record("bounced", **fields))["data"]
    assert data["bounce"]["severity"] == severity
    assert data["reject_reason"] == "bounced"


def test_bounce_diagnosis() -> None:
    data = one(
        record(
            "bounced",
            RESPONSE="550 5.1.1 The email account that you tried to reach does not exist",
            BOUNCE_TYPE="HARDBOUNCE",
            BOUNCE_REASON="550 5.1.1 The email account does not exist",
            BOUNCE_REASONID=342,
        )
    )["data"]
    assert data["bounce"] == {
        "severity": "hard",
        "class_code": "342",
        "smtp_status": "550",
        "enhanced_status": "5.1.1",
        "reason": "550 5.1.1 The email account does not exist",
    }


def test_bounce_reason_falls_back_to_response_and_na_is_absent() -> None:
    bounce = one(record("bounced", RESPONSE="452 4.2.2 over quota", BOUNCE_REASON="NA"))["data"]["bounce"]
    assert bounce["reason"] == "452 4.2.2 over quota"
    assert (bounce["smtp_status"], bounce["enhanced_status"]) == ("452", "4.2.2")


@pytest.mark.parametrize(
    ("event", "response", "reason"),
    [
        ("dropped", "Blacklisted user / Already unsubscribed", "blocked"),
        ("dropped", "Already unsubscribed", "unsubscribed"),
        ("dropped", "User unsubscribed", "unsubscribed"),
        ("dropped", "Blacklisted user", "blocked"),
        ("dropped", "Blacklisted after hard bounce", "blocked"),
        ("dropped", None, "blocked"),
        ("invalid", "Invalid Email Address", "invalid"),
        ("invalid", None, "invalid"),
    ],
)
def test_rejection_reasons(event: str, response: str | None, reason: str) -> None:
    fields = {} if response is None else {"RESPONSE": response}
    data = one(record(event, **fields))["data"]
    assert data["reject_reason"] == reason
    assert data.get("bounce", {}).get("reason") == response


def test_other_events_have_no_reject_reason_or_bounce() -> None:
    for name in ("sent", "opened", "abuse", "deferred"):
        data = one(record(name, RESPONSE="smtp;250 2.0.0 OK"))["data"]
        assert "reject_reason" not in data and "bounce" not in data


def test_message_recipient_client_link_tags_and_metadata() -> None:
    event = one(
        record(
            "clicked",
            SUBJECT="Your order has shipped",
            FROMADDRESS="info@shop.example.com",
            USERAGENT="Mozilla/5.0 (Macintosh)",
            IPADDRESS="192.0.2.177",
            URL="https://shop.example.com/track/16",
            TAGS="TAG2026-Nov-20, vip,,",
            RCPTID="1",
        )
    )
    data = event["data"]
    assert event["subject"] == "kofi@example.org"
    assert data["recipient"] == {"email": "kofi@example.org"}
    assert data["message"] == {
        "message_id": "32708057162422418",
        "subject": "Your order has shipped",
        "from": "info@shop.example.com",
    }
    assert data["client"] == {"user_agent": "Mozilla/5.0 (Macintosh)", "ip": "192.0.2.177"}
    assert data["link"] == {"url": "https://shop.example.com/track/16"}
    assert data["tags"] == ["TAG2026-Nov-20", "vip"]
    assert data["metadata"] == {"X-APIHEADER": "ACC00070"}
    assert data["occurred_at"] == "2026-11-20T08:01:40Z"


def test_not_applicable_values_are_absent() -> None:
    data = one(record("sent", USERAGENT="NA", IPADDRESS="NA", URL="NA"))["data"]
    assert "client" not in data and "link" not in data


def test_lower_case_field_names_are_read_and_kept_as_sent_in_raw() -> None:
    obj = {"transid": 5, "email": "a@example.com", "event": "opened", "timestamp": 1795161700}
    data = one(obj)["data"]
    assert data["message"]["message_id"] == "5"
    assert data["raw"] == {**obj, "transid": "5"}
    assert data["occurred_at"] == "2026-11-20T08:01:40Z"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('{"order":"A-1009","src":"checkout"}', '{"order":"A-1009","src":"checkout"}'),
        (" 0012 ", " 0012 "),
        (1234, "1234"),
        ({"order": "A-1"}, {"order": "A-1"}),
    ],
)
def test_api_header_passes_through_as_sent(header: Any, expected: Any) -> None:
    data = one(record("sent", **{"X-APIHEADER": header}))["data"]
    assert data["metadata"] == {"X-APIHEADER": expected}
    # In raw too a bare number becomes its text: the fixtures' `preserved` rule wants X-APIHEADER as a string.
    assert data["raw"]["X-APIHEADER"] == (expected if isinstance(header, int) else header)


@pytest.mark.parametrize(
    ("literal", "digits"),
    [
        ('"9007199254740993"', "9007199254740993"),
        ("9007199254740995", "9007199254740995"),
        ("123456789012345678901", "123456789012345678901"),
        ("42", "42"),
        ("0042", "0042"),  # leading zeros: the lenient parser keeps the digits
    ],
)
def test_transid_is_kept_as_its_exact_decimal_string(literal: str, digits: str) -> None:
    result = adapt_body('[{"TRANSID":' + literal + ',"EMAIL":"a@example.com","EVENT":"sent"}]')
    (event,) = result.events
    assert event["data"]["message"]["message_id"] == digits
    assert event["data"]["raw"]["TRANSID"] == digits


def test_same_record_with_quoted_or_bare_transid_gets_the_same_id() -> None:
    quoted = adapt_body('[{"TRANSID":"42","EVENT":"sent"}]').events[0]
    bare = adapt_body('[{"TRANSID":42,"EVENT":"sent"}]').events[0]
    assert quoted["id"] == bare["id"]
    assert quoted["id"] != adapt_body('[{"TRANSID":"43","EVENT":"sent"}]').events[0]["id"]


@pytest.mark.parametrize(
    ("timestamp", "occurred_at"),
    [
        ("1795161700", "2026-11-20T08:01:40Z"),
        (1795161700, "2026-11-20T08:01:40Z"),
        (" 1795161700 ", "2026-11-20T08:01:40Z"),
        ("2026-11-20T08:01:40Z", None),  # not epoch seconds: not a Falconide time
        ("2026-11-20 08:01:40", None),
        ("1795161700250", None),  # milliseconds: not epoch seconds either
        (1795161700250, None),
        ("NA", None),
        ("", None),
        (None, None),
        (True, None),
    ],
)
def test_timestamp_is_epoch_seconds_or_nothing(timestamp: Any, occurred_at: str | None) -> None:
    data = one(record("sent", TIMESTAMP=timestamp))["data"]
    assert data["occurred_at"] == occurred_at
    assert data["time_source"] == ("provider" if occurred_at else "received")


# --- never raises ---------------------------------------------------------------------------------------


def test_a_bug_in_one_item_is_a_failure_for_that_item(monkeypatch: pytest.MonkeyPatch) -> None:
    real = build_event

    def flaky(envelope: Envelope, **kwargs: Any) -> CanonicalEvent:
        if kwargs["provider_event_type"] == "opened":
            raise RuntimeError("boom")
        return real(envelope, **kwargs)

    monkeypatch.setattr(falconide, "build_event", flaky)
    result = adapt_body(json.dumps([record("sent"), record("opened"), record("clicked")]))
    assert [e["type"] for e in result.events] == ["email.delivered", "email.clicked"]
    assert [(f.reason, f.index) for f in result.failures] == [("adapter_error", 1)]


def test_a_bug_anywhere_is_one_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(body: bytes, content_type: str = "") -> list[Any]:
        raise RecursionError

    monkeypatch.setattr(falconide, "event_objects", broken)
    result = adapt_body(json.dumps([record("sent")]))
    assert result.events == []
    assert [(f.reason, f.index) for f in result.failures] == [("adapter_error", None)]


def test_unpaired_surrogate_fails_only_its_record() -> None:
    result = adapt_body('[{"EVENT":"sent","TRANSID":"1"},{"EVENT":"opened","SUBJECT":"\\udc00"}]')
    assert [e["type"] for e in result.events] == ["email.delivered"]
    assert [(f.reason, f.index) for f in result.failures] == [("unencodable_event", 1)]


def test_record_too_deep_to_fingerprint_is_a_failure_with_its_index() -> None:
    deep: Any = "x"
    for _ in range(300):  # the parser allows 512 levels, orjson writes 254
        deep = [deep]
    result = adapt_body(json.dumps([record("sent"), record("opened", EXTRA=deep), record("clicked")]))
    assert [e["type"] for e in result.events] == ["email.delivered", "email.clicked"]
    assert [(f.reason, f.index) for f in result.failures] == [("unencodable_event", 1)]


JSON_VALUES = SMALL_JSON_VALUES
FIELD_NAMES = [
    "TRANSID",
    "RCPTID",
    "EMAIL",
    "EVENT",
    "TIMESTAMP",
    "X-APIHEADER",
    "SUBJECT",
    "FROMADDRESS",
    "TAGS",
    "RESPONSE",
    "USERAGENT",
    "IPADDRESS",
    "URL",
    "BOUNCE_TYPE",
    "BOUNCE_REASON",
    "BOUNCE_REASONID",
]
FIELD_VALUES = st.sampled_from([*TYPE_MAP, "HARDBOUNCE", "SOFTBOUNCE", "NA", "1795161700"]) | JSON_VALUES
RECORDS = st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), FIELD_VALUES, max_size=16)


@settings(max_examples=300, deadline=None)
@given(st.lists(RECORDS, max_size=6))
def test_every_record_comes_out_whatever_its_field_values(records: list[dict[str, Any]]) -> None:
    body = json.dumps(records)
    result = adapt_body(body)
    assert result.failures == []
    assert len(result.events) == len(records)
    # The adapter sees what the parser gives (integers beyond 2^53 as digit strings), so the oracle does too.
    for obj, event in zip(parse_json(body), result.events, strict=True):
        transid = obj.get("TRANSID")
        if isinstance(transid, int) and not isinstance(transid, bool):
            assert event["data"]["message"]["message_id"] == str(transid)
            assert event["data"]["raw"]["TRANSID"] == str(transid)
        elif isinstance(transid, str) and transid:
            assert event["data"]["message"]["message_id"] == transid


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), st.text(max_size=30), max_size=12))
def test_random_forms_never_raise(fields: dict[str, str]) -> None:
    adapt_body(urlencode(fields), FORM)
    adapt_body("data=" + quote(json.dumps([fields])), FORM)


@settings(max_examples=200, deadline=None)
@given(JSON_VALUES)
def test_random_json_never_raises(value: Any) -> None:
    adapt_body(json.dumps(value))
    adapt_body(json.dumps([value, record("sent")]))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_never_raise(body: bytes) -> None:
    adapt_body(body, FORM)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FIXTURE_BODIES), MUTATIONS, st.sampled_from(["application/json", FORM, ""]))
def test_mutated_fixture_bodies_never_raise(body: bytes, mutations: list[Mutation], label: str) -> None:
    adapt(body_envelope(mutate(body, mutations), label))


@pytest.mark.parametrize("name", ["data", "events", "payload"])
def test_a_batch_under_one_key_of_a_json_object_is_that_batch(name: str) -> None:
    batch = [record("sent"), record("opened")]
    wrapped, plain = adapt_body(json.dumps({name: batch})), adapt_body(json.dumps(batch))
    assert wrapped.failures == []
    assert [e["id"] for e in wrapped.events] == [e["id"] for e in plain.events] and len(plain.events) == 2
    assert adapt_body(json.dumps({name: []})) == AdaptResult()  # the verification POST's empty array


@pytest.mark.parametrize("body", [{"EVENT": ["x"]}, {"data": [{"EVENT": "sent"}, 1]}, {"data": "x"}])
def test_an_object_that_is_no_wrapper_stays_one_event(body: dict[str, Any]) -> None:
    assert len(adapt_body(json.dumps(body)).events) == 1
