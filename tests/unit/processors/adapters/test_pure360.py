"""Pure360Adapter against the recorded notifications, the mapping rules, and hostile or mutated bodies."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from espwire.envelope import Envelope
from espwire.event import EVENT_ADAPTER, CanonicalEvent
from processors.adapters.base import AdaptResult
from processors.adapters.php_form import MAX_FIELDS
from processors.adapters.pure360 import Pure360Adapter
from tests.fixture_cases import Case, load_cases, sequence_mismatches
from tests.support.adapter_properties import assert_well_formed, mutated

ADAPTER = Pure360Adapter()
CASES = load_cases("pure360")
RECEIVED = "2026-11-24T00:00:00Z"


def case_envelope(case: Case) -> Envelope:
    return case.envelope()


def envelope(body: bytes | str) -> Envelope:
    return Envelope(
        source_id="pure360-main",
        provider="pure360",
        request_id="r1",
        received_at=RECEIVED,
        method="POST",
        content_type="application/x-www-form-urlencoded",
        body=body.encode() if isinstance(body, str) else body,
        remote_addr="127.0.0.1",
    )


def adapt(body: bytes | str) -> AdaptResult:
    result = ADAPTER.adapt(envelope(body))
    for event in result.events:
        EVENT_ADAPTER.validate_python(event)
    return result


def one(body: bytes | str) -> CanonicalEvent:
    result = adapt(body)
    assert result.failures == []
    assert len(result.events) == 1
    return result.events[0]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_fixture_case(case: Case) -> None:
    result = ADAPTER.adapt(case_envelope(case))
    assert result.failures == []
    assert_well_formed(result)
    assert sequence_mismatches(case.expect_events, list(result.events)) == []  # type: ignore[arg-type]


def test_fixtures_cover_all_eleven_triggers() -> None:
    seen = {e["provider_event_type"] for c in CASES for e in c.expect_events}
    assert {"DELIVERYSTART", "DELIVERY", "OPEN", "CLICK", "BOUNCE", "SOFTBOUNCE", "BLOCKED"} <= seen
    assert {"OPTIN", "OPTOUT", "SMSOPTOUT", "SMSFAILED"} <= seen


@pytest.mark.parametrize(
    ("kind", "canonical", "severity"),
    [
        ("OPEN", "email.opened", None),
        ("CLICK", "email.clicked", None),
        ("BOUNCE", "email.bounced", "hard"),
        ("SOFTBOUNCE", "email.bounced", "soft"),
        ("BLOCKED", "email.bounced", "block"),
        ("OPTIN", "email.subscribed", None),
        ("OPTOUT", "email.unsubscribed", None),
        ("FORWARD", "unknown", None),
        ("open", "email.opened", None),
    ],
)
def test_type_mapping(kind: str, canonical: str, severity: str | None) -> None:
    event = one(f"type={kind}&email=a@example.com&Event_date=1795161994")
    assert event["type"] == canonical
    assert event["data"]["provider_event_type"] == kind
    assert event["data"].get("bounce", {}).get("severity") == severity


@pytest.mark.parametrize("email_key", ["email", "EMAIL", "Email", "eMail"])
@pytest.mark.parametrize("date_key", ["Event_date", "EVENT_DATE", "event_date", "eventDate"])
@pytest.mark.parametrize("type_key", ["type", "TYPE", "Type"])
def test_standard_keys_in_any_case(email_key: str, date_key: str, type_key: str) -> None:
    event = one(f"{type_key}=OPEN&{date_key}=1795161994&{email_key}=a@example.com")
    assert event["subject"] == "a@example.com"
    assert event["data"]["occurred_at"] == "2026-11-20T08:06:34Z"
    assert "metadata" not in event["data"]


def test_campaign_events_use_their_own_dates_and_name_nobody() -> None:
    start = one("type=DELIVERYSTART&Delivery_Start_Date=1795161800&Delivery_Complete_Date=&Event_date=1")
    assert start["data"]["occurred_at"] == "2026-11-20T08:03:20Z"
    assert "subject" not in start and start["data"]["recipient"] == {}
    done = one("type=DELIVERY&delivery_start_date=1795161297&DELIVERY_COMPLETE_DATE=1795161897&email=x@y.z")
    assert done["data"]["occurred_at"] == "2026-11-20T08:04:57Z"
    assert "subject" not in done
    assert done["data"]["metadata"]["email"] == "x@y.z"  # not a recipient, but not lost
    fallback = one("type=DELIVERY&Event_date=1795161897")
    assert fallback["data"]["occurred_at"] == "2026-11-20T08:04:57Z"


@pytest.mark.parametrize("date", ["", "soon", "2026-11-20 08:00:00", "12"])
def test_unreadable_dates_fall_back_to_received(date: str) -> None:
    event = one(f"type=OPEN&email=a@example.com&Event_date={quote(date)}")
    assert event["data"]["occurred_at"] is None
    assert event["data"]["time_source"] == "received"
    assert event["time"] == RECEIVED


def test_sms_events_name_the_mobile_number() -> None:
    event = one("type=SMSFAILED&event_date=1795162770&mobile=447700900555&failureReason=Absent%20subscriber")
    assert event["type"] == "sms.failed"
    assert event["subject"] == "447700900555"
    assert event["data"]["recipient"] == {"phone": "447700900555"}
    assert event["data"]["metadata"] == {"failureReason": "Absent subscriber"}
    # An email event without an email address names nobody, even with a mobile number.
    email_event = one("type=OPEN&mobile=447700900555")
    assert "subject" not in email_event
    assert email_event["data"]["recipient"] == {"phone": "447700900555"}


def test_fields_map_to_canonical_sections_and_the_rest_is_metadata() -> None:
    event = one(
        "type=CLICK&Event_date=1795162091&email=ivan@example.net&mobile=447700900296&messageName=NOV"
        "&deliveryDate=1795158491&Delivery_ID=980104&device_type=mobileBrowser&device_OS=Windows"
        "&device_Browser=Chrome&Click_Url=https://shop.example.com/p/8%3Fsrc%3Dp%26x%3D1&Click_Name=Main"
        "&firstName=Ivan&List_Names[]=a&List_Names[]=b&Loyalty_Tier=gold%20%26%20silver"
    )
    data = event["data"]
    assert data["recipient"] == {"email": "ivan@example.net", "phone": "447700900296"}
    assert data["message"] == {"mailing_id": "980104"}
    assert data["campaign"] == {"name": "NOV"}
    assert data["link"] == {"url": "https://shop.example.com/p/8?src=p&x=1", "name": "Main"}
    assert data["client"] == {"device": "mobileBrowser", "os": "Windows", "browser": "Chrome"}
    assert data["metadata"] == {
        "deliveryDate": "1795158491",
        "firstName": "Ivan",
        "List_Names": ["a", "b"],
        "Loyalty_Tier": "gold & silver",
    }
    assert data["raw"]["Click_Url"] == "https://shop.example.com/p/8?src=p&x=1"
    assert data["raw"]["List_Names"] == ["a", "b"]


def test_bounce_details() -> None:
    event = one("type=BLOCKED&Email=k@example.org&Bounce_Reason=554%205.7.1%20blocked%20by%20policy")
    assert event["data"]["bounce"] == {
        "severity": "block",
        "reason": "554 5.7.1 blocked by policy",
        "smtp_status": "554",
        "enhanced_status": "5.7.1",
    }
    assert event["data"]["reject_reason"] == "blocked"
    bare = one("type=SOFTBOUNCE&Email=k@example.org")
    assert bare["data"]["bounce"] == {"severity": "soft"}
    assert bare["data"]["reject_reason"] == "bounced"


def test_several_notifications_come_out_in_numeric_index_order() -> None:
    body = "&".join(
        f"event[{i}][type]=OPEN&event[{i}][email]=u{i}%40example.com&event[{i}][Event_date]={1795161000 + i}"
        for i in (10, 2, 0, 1)
    )
    body += "&event[x][type]=CLICK&event[x][email]=ux%40example.com"
    result = adapt(body)
    assert result.failures == []
    assert [e["subject"] for e in result.events] == [f"u{i}@example.com" for i in (0, 1, 2, 10)] + ["ux@example.com"]
    assert result.events[0]["data"]["raw"] == {"type": "OPEN", "email": "u0@example.com", "Event_date": "1795161000"}


def test_a_bad_notification_fails_alone() -> None:
    result = adapt(
        "event[0][type]=OPEN&event[0][email]=a%40b.c&event[1]=oops&event[2][email]=d%40e.f&event[3][type]=CLICK"
    )
    assert [e["type"] for e in result.events] == ["email.opened", "email.clicked"]
    assert [(f.reason, f.index) for f in result.failures] == [("invalid_event", 1), ("invalid_event", 2)]


def test_a_form_with_a_type_is_one_notification_even_with_an_event_field() -> None:
    event = one("type=OPEN&email=a@example.com&event[0]=custom")
    assert event["data"]["metadata"] == {"event": {"0": "custom"}}


def test_appended_event_list_is_a_batch() -> None:
    result = adapt("event[][type]=OPEN&event[][type]=CLICK")
    assert [e["type"] for e in result.events] == ["email.opened", "email.clicked"]


def test_notification_without_type_is_a_failure() -> None:
    result = adapt("email=a@example.com&Event_date=1795161994")
    assert result.events == []
    assert [(f.reason, f.index) for f in result.failures] == [("invalid_event", 0)]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty_body"),
        (b" \r\n", "empty_body"),
        (b"type=OPEN&email=\xc3\x28@example.com", "invalid_utf8"),
        (b"type=OPEN&email=%C3%28", "invalid_utf8"),
        ("&".join(f"f{i}=1" for i in range(MAX_FIELDS + 1)).encode(), "too_many_fields"),
        (b"type=OPEN&x" + b"[a]" * 40 + b"=1", "too_deep"),
    ],
)
def test_unreadable_bodies_give_one_failure(body: bytes, reason: str) -> None:
    result = adapt(body)
    assert result.events == []
    assert [f.reason for f in result.failures] == [reason]
    assert result.failures[0].index is None


def test_redelivery_gives_the_same_ids() -> None:
    case = next(c for c in CASES if c.name == "multi_event_php_array")
    first = ADAPTER.adapt(case_envelope(case)).events
    again = ADAPTER.adapt(case_envelope(case)).events
    assert [e["id"] for e in first] == [e["id"] for e in again]
    assert len({e["id"] for e in first}) == 3


def test_a_bug_becomes_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    import processors.adapters.pure360 as module

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(module, "build_event", broken)
    result = adapt("type=OPEN&email=a@example.com")
    assert result.events == []
    assert result.failures[0].reason == "adapter_error"
    assert "boom" in result.failures[0].detail


# --- properties: nothing a sender can put in a body makes adapt raise ---------------------------------

_BODIES = [c.body for c in CASES]


def mutated_bodies() -> st.SearchStrategy[bytes]:
    return mutated(_BODIES, [b"[", b"]", b"&", b"=", b"%", b"[]"])


_FORM_TEXT = st.text(alphabet="abtyeEvn[]0123456789=&%+_ CEFLOPSTY", max_size=200)


def check(result: AdaptResult) -> None:
    assert_well_formed(result)
    # A form body always yields at least one notification, an event or a failure: nothing is silent.
    assert result.events or result.failures


@settings(max_examples=400, deadline=None)
@given(mutated_bodies())
def test_mutated_fixture_bodies_never_raise(body: bytes) -> None:
    check(ADAPTER.adapt(envelope(body)))


@settings(max_examples=400, deadline=None)
@given(st.one_of(_FORM_TEXT.map(str.encode), st.binary(max_size=200)))
def test_random_bodies_never_raise(body: bytes) -> None:
    check(ADAPTER.adapt(envelope(body)))


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["type", "TYPE", "email", "Email", "mobile", "Event_date", "Delivery_ID", "x", "event[0][type]"]
        ),
        st.text(max_size=20),
        min_size=1,
    )
)
def test_random_fields_never_raise(fields: dict[str, str]) -> None:
    body = "&".join(
        f"{quote(k, safe='[]')}={quote(v.encode('utf-8', 'surrogatepass'), safe='')}" for k, v in fields.items()
    )
    check(ADAPTER.adapt(envelope(body)))
