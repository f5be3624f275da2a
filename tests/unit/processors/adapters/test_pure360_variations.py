"""Pure360Adapter against variations a real HTTP notification sender can produce beyond the recorded fixtures.

Each case states the concrete outcome: canonical type, subject, occurred_at, provider_event_type, bounce
severity, fields passed through as sent, or the failure reason.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from espwire.event import CanonicalEvent
from processors.adapters.base import AdaptResult
from processors.adapters.php_form import MAX_FIELDS
from processors.adapters.pure360 import Pure360Adapter
from tests.support.adapter_requests import BOUNDARY, MULTIPART, adapted, multipart, only, request, summary

ADAPTER = Pure360Adapter()
FORM = "application/x-www-form-urlencoded"


def adapt(body: str | bytes, content_type: str = FORM) -> AdaptResult:
    envelope = request("pure360", body, source_id="pure360-main", content_type=content_type, remote_addr="127.0.0.1")
    return adapted(ADAPTER, envelope)


def one(body: str | bytes, content_type: str = FORM) -> CanonicalEvent:
    return only(adapt(body, content_type))


@pytest.mark.parametrize(
    ("type_key", "email_key", "date_key", "id_key", "name_key", "reason_key"),
    [
        ("type", "email", "Event_date", "Delivery_ID", "messageName", "Bounce_Reason"),
        ("TYPE", "EMAIL", "EVENT_DATE", "DELIVERY_ID", "MESSAGENAME", "BOUNCE_REASON"),
        ("Type", "Email", "Event_Date", "delivery_id", "Message_Name", "bounce_reason"),
        ("type", "E_Mail", "eventDate", "DeliveryId", "message_name", "BounceReason"),
        ("type", "e-mail", "event date", "Delivery ID", "Message Name", "Bounce Reason"),
    ],
)
def test_standard_field_names_in_any_casing(
    type_key: str, email_key: str, date_key: str, id_key: str, name_key: str, reason_key: str
) -> None:
    body = (
        f"{type_key}=BOUNCE&{email_key}=june.kim%40example.com&{date_key}=1795162188&{id_key}=980117"
        f"&{name_key}=NOV-2026-Deals&{reason_key}=550%205.1.1%20user%20unknown&firstName=June"
    )
    event = one(body)
    data = event["data"]
    assert summary(event) == ("email.bounced", "june.kim@example.com", "2026-11-20T08:09:48Z", "BOUNCE")
    assert data["recipient"] == {"email": "june.kim@example.com"}
    assert data["message"] == {"mailing_id": "980117"}
    assert data["campaign"] == {"name": "NOV-2026-Deals"}
    assert data["bounce"] == {
        "severity": "hard",
        "reason": "550 5.1.1 user unknown",
        "smtp_status": "550",
        "enhanced_status": "5.1.1",
    }
    assert data["metadata"] == {"firstName": "June"}


def test_click_and_device_fields_in_other_casings() -> None:
    body = (
        "TYPE=CLICK&EMAIL=ivan%40example.net&EVENT_DATE=1795162091&DEVICE_TYPE=mobileBrowser&DeviceOS=Windows"
        "&device_browser=Chrome&CLICK_URL=https://shop.example.com/p/8%3Fsrc%3Dpure360%26x%3D1&clickName=Main%20CTA"
    )
    data = one(body)["data"]
    assert data["link"] == {"url": "https://shop.example.com/p/8?src=pure360&x=1", "name": "Main CTA"}
    assert data["client"] == {"device": "mobileBrowser", "os": "Windows", "browser": "Chrome"}


@pytest.mark.parametrize(
    ("kind", "date_fields", "expected"),
    [
        ("DELIVERYSTART", "Delivery_Start_Date=1795161800&Delivery_Complete_Date=", "2026-11-20T08:03:20Z"),
        ("DELIVERYSTART", "DELIVERY_START_DATE=1795161800&Event_date=1795160000", "2026-11-20T08:03:20Z"),
        ("DELIVERYSTART", "delivery_start_date=1795161800", "2026-11-20T08:03:20Z"),
        ("DELIVERYSTART", "DeliveryStartDate=1795161800250", "2026-11-20T08:03:20.250Z"),
        ("DELIVERYSTART", "Delivery_Start_Date=&Event_date=1795161800", "2026-11-20T08:03:20Z"),
        ("DELIVERY", "Delivery_Start_Date=1795161297&Delivery_Complete_Date=1795161897", "2026-11-20T08:04:57Z"),
        ("DELIVERY", "DELIVERY_COMPLETE_DATE=1795161897", "2026-11-20T08:04:57Z"),
        ("DELIVERY", "delivery_complete_date=1795161897", "2026-11-20T08:04:57Z"),
        ("DELIVERY", "Delivery_Start_Date=1795161297", None),
        ("DELIVERY", "Delivery_Complete_Date=not-yet", None),
    ],
)
def test_campaign_dates(kind: str, date_fields: str, expected: str | None) -> None:
    body = f"type={kind}&Message_Name=NOV-2026-Deals&Delivery_ID=980078&List_Names[]=web%20signup&{date_fields}"
    event = one(body)
    data = event["data"]
    expected_type = "campaign.started" if kind == "DELIVERYSTART" else "campaign.sending"
    assert summary(event) == (expected_type, None, expected, kind)
    assert data["recipient"] == {}
    assert data["metadata"]["List_Names"] == ["web signup"]


@pytest.mark.parametrize(
    ("date_field", "expected"),
    [
        ("Event_date=1795161994", "2026-11-20T08:06:34Z"),
        ("event_date=1795161994", "2026-11-20T08:06:34Z"),
        ("EVENT_DATE=1795161994", "2026-11-20T08:06:34Z"),
        ("Event_Date=%201795161994%20", "2026-11-20T08:06:34Z"),
        ("Event_date=1795161994123", "2026-11-20T08:06:34.123Z"),
        ("Event_date=", None),
        ("Event_date=2026-11-20%2008:06:34", None),
        ("Event_date=yesterday", None),
        ("Event_date=42", None),
        ("deliveryDate=1795158394", None),  # the campaign's delivery date is not the open's time
    ],
)
def test_event_date(date_field: str, expected: str | None) -> None:
    event = one(f"type=OPEN&Email=hana.sato%40mail.example.org&{date_field}")
    assert summary(event) == ("email.opened", "hana.sato@mail.example.org", expected, "OPEN")
    assert event["data"]["time_source"] == ("provider" if expected else "received")


@pytest.mark.parametrize(
    ("raw_type", "canonical", "severity"),
    [
        ("DELIVERYSTART", "campaign.started", None),
        ("DELIVERY", "campaign.sending", None),
        ("OPEN", "email.opened", None),
        ("CLICK", "email.clicked", None),
        ("BOUNCE", "email.bounced", "hard"),
        ("SOFTBOUNCE", "email.bounced", "soft"),
        ("BLOCKED", "email.bounced", "block"),
        ("OPTIN", "email.subscribed", None),
        ("OPTOUT", "email.unsubscribed", None),
        ("SMSOPTOUT", "sms.unsubscribed", None),
        ("SMSFAILED", "sms.failed", None),
        ("open", "email.opened", None),
        ("SoftBounce", "email.bounced", "soft"),
        (" Blocked ", "email.bounced", "block"),
        ("FORWARD", "unknown", None),
        ("SMSDELIVERED", "unknown", None),
    ],
)
def test_every_type(raw_type: str, canonical: str, severity: str | None) -> None:
    body = f"type={raw_type.replace(' ', '+')}&Event_date=1795162000&email=a%40example.com&mobile=447700900555"
    event = one(body)
    campaign_level = raw_type.strip().upper() in {"DELIVERYSTART", "DELIVERY"}
    expected_subject = None if campaign_level else "a@example.com"
    assert summary(event) == (canonical, expected_subject, "2026-11-20T08:06:40Z", raw_type)
    assert (event["data"].get("bounce") or {}).get("severity") == severity


@pytest.mark.parametrize("kind", ["SMSOPTOUT", "SMSFAILED"])
@pytest.mark.parametrize("email_field", ["", "&email=", "&Email=%20"])
def test_sms_without_email_names_the_mobile(kind: str, email_field: str) -> None:
    event = one(f"type={kind}&Event_date=1795162673&MOBILE=447700900518{email_field}")
    assert summary(event) == (
        "sms.unsubscribed" if kind == "SMSOPTOUT" else "sms.failed",
        "447700900518",
        "2026-11-20T08:17:53Z",
        kind,
    )
    assert event["data"]["recipient"] == {"phone": "447700900518"}


def test_empty_values_name_nobody_and_give_no_time() -> None:
    event = one("type=OPEN&email=&mobile=&Event_date=&messageName=&firstName=")
    assert summary(event) == ("email.opened", None, None, "OPEN")
    assert event["data"]["recipient"] == {}
    # Empty values are no metadata (build_event drops them) but stay in raw as sent.
    assert "metadata" not in event["data"]
    assert event["data"]["raw"]["firstName"] == ""
    assert event["data"]["raw"]["messageName"] == ""


@pytest.mark.parametrize("body", ["type=&email=a%40example.com", "email=a%40example.com", "type=%20%20"])
def test_a_notification_without_a_type_is_a_failure(body: str) -> None:
    result = adapt(body)
    assert result.events == []
    assert [(f.reason, f.index) for f in result.failures] == [("invalid_event", 0)]


def test_custom_fields_and_list_names_are_passed_through() -> None:
    body = (
        "type=OPEN&EVENT_DATE=1795161994&Email=hana.sato%40mail.example.org&List_Names[]=web%20signup"
        "&List_Names[]=fb%20signup&First_Name=Zo%C3%AB&Loyalty_Tier=gold%20%26%20silver&Custom.Field=x"
        "&prefs[colour]=blue&prefs[size]=M"
    )
    event = one(body)
    assert summary(event) == ("email.opened", "hana.sato@mail.example.org", "2026-11-20T08:06:34Z", "OPEN")
    assert event["data"]["metadata"] == {
        "List_Names": ["web signup", "fb signup"],
        "First_Name": "Zoë",
        "Loyalty_Tier": "gold & silver",
        "Custom.Field": "x",
        "prefs": {"colour": "blue", "size": "M"},
    }
    assert event["data"]["raw"]["Email"] == "hana.sato@mail.example.org"
    assert event["data"]["raw"]["List_Names"] == ["web signup", "fb signup"]


def multi(*notifications: tuple[str, str, str, int]) -> str:
    """``event[<index>][...]`` fields for (index, type, email, time) in the given (body) order."""
    return "&".join(
        f"event[{index}][type]={kind}&event[{index}][Event_date]={at}&event[{index}][EMAIL]={email}"
        f"&event[{index}][List_Names][]=web%20signup&event[{index}][Custom_{index}]=v{index}"
        for index, kind, email, at in notifications
    )


def test_multi_notifications_come_out_in_numeric_index_order() -> None:
    body = multi(
        ("10", "OPTOUT", "d%40example.com", 1795163400),
        ("2", "CLICK", "b%40example.com", 1795163100),
        ("11", "OPTIN", "e%40example.com", 1795163500),
        ("0", "OPEN", "a%40example.com", 1795163000),
        ("5", "SOFTBOUNCE", "c%40example.com", 1795163200),
    )
    result = adapt(body)
    assert result.failures == []
    assert [summary(e) for e in result.events] == [
        ("email.opened", "a@example.com", "2026-11-20T08:23:20Z", "OPEN"),
        ("email.clicked", "b@example.com", "2026-11-20T08:25:00Z", "CLICK"),
        ("email.bounced", "c@example.com", "2026-11-20T08:26:40Z", "SOFTBOUNCE"),
        ("email.unsubscribed", "d@example.com", "2026-11-20T08:30:00Z", "OPTOUT"),
        ("email.subscribed", "e@example.com", "2026-11-20T08:31:40Z", "OPTIN"),
    ]
    assert [e["data"]["metadata"] for e in result.events] == [
        {"List_Names": ["web signup"], f"Custom_{index}": f"v{index}"} for index in ("0", "2", "5", "10", "11")
    ]


@pytest.mark.parametrize("wrapper", ["event", "Event", "EVENT"])
def test_multi_notification_wrapper_in_any_casing(wrapper: str) -> None:
    body = multi(("1", "CLICK", "b%40example.com", 1795163100), ("0", "OPEN", "a%40example.com", 1795163000))
    result = adapt(body.replace("event[", f"{wrapper}["))
    assert result.failures == []
    assert [summary(e) for e in result.events] == [
        ("email.opened", "a@example.com", "2026-11-20T08:23:20Z", "OPEN"),
        ("email.clicked", "b@example.com", "2026-11-20T08:25:00Z", "CLICK"),
    ]


def test_multi_notification_without_a_type_fails_alone() -> None:
    body = multi(("0", "OPEN", "a%40example.com", 1795163000), ("7", "CLICK", "c%40example.com", 1795163100))
    body += "&event[3][EMAIL]=b%40example.com&event[3][Event_date]=1795163050"
    result = adapt(body)
    assert [summary(e) for e in result.events] == [
        ("email.opened", "a@example.com", "2026-11-20T08:23:20Z", "OPEN"),
        ("email.clicked", "c@example.com", "2026-11-20T08:25:00Z", "CLICK"),
    ]
    assert [(f.reason, f.index) for f in result.failures] == [("invalid_event", 1)]


def test_single_notification_with_a_custom_field_named_event_is_one_notification() -> None:
    event = one("type=OPEN&email=a%40example.com&Event_date=1795163000&event=webinar&Event[x]=1")
    assert summary(event) == ("email.opened", "a@example.com", "2026-11-20T08:23:20Z", "OPEN")
    assert event["data"]["metadata"] == {"event": "webinar", "Event": {"x": "1"}}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"type=OPEN&Email=zoe%40example.com&Event_date=1795161994&First_Name=Zo%EB", f"{FORM}; charset=ISO-8859-1"),
        (b"type=OPEN&Email=zoe%40example.com&Event_date=1795161994&First_Name=Zo\xeb", f"{FORM}; charset=iso-8859-1"),
        (b"type=OPEN&Email=zoe%40example.com&Event_date=1795161994&First_Name=Zo%EB", f'{FORM}; charset="latin1"'),
        (b"type=OPEN&Email=zoe%40example.com&Event_date=1795161994&First_Name=Zo%EB", f"{FORM};charset=windows-1252"),
        (b"type=OPEN&Email=zoe%40example.com&Event_date=1795161994&First_Name=Zo%C3%AB", f"{FORM}; charset=UTF-8"),
        (b"type=OPEN&Email=zoe%40example.com&Event_date=1795161994&First_Name=Zo%C3%AB", f"{FORM}; charset=latin1"),
        (b"type=OPEN&Email=zoe%40example.com&Event_date=1795161994&First_Name=Zo\xc3\xab", FORM),
    ],
)
def test_charsets(body: bytes, content_type: str) -> None:
    event = one(body, content_type)
    assert summary(event) == ("email.opened", "zoe@example.com", "2026-11-20T08:06:34Z", "OPEN")
    assert event["data"]["metadata"] == {"First_Name": "Zoë"}


def test_charset_applies_to_names_and_multi_notifications() -> None:
    body = b"event[1][type]=OPEN&event[1][email]=b%40example.com&event[1][Pr%E9nom]=L%E9a"
    body += b"&event[0][type]=CLICK&event[0][email]=a%40example.com"
    result = adapt(body, f"{FORM}; charset=ISO-8859-1")
    assert result.failures == []
    assert [summary(e) for e in result.events] == [
        ("email.clicked", "a@example.com", None, "CLICK"),
        ("email.opened", "b@example.com", None, "OPEN"),
    ]
    assert result.events[1]["data"]["metadata"] == {"Prénom": "Léa"}


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"type=OPEN&First_Name=Zo%EB", FORM, "invalid_utf8"),
        (b"type=OPEN&First_Name=Zo%EB", f"{FORM}; charset=UTF-8", "invalid_utf8"),
        (b"type=OPEN&First_Name=Zo%EB", f"{FORM}; charset=x-no-such-charset", "invalid_utf8"),
        (b"type=OPEN&First_Name=Zo%EB", f"{FORM}; charset=us-ascii", "invalid_utf8"),
        (b"type=OPEN&First_Name=%81", f"{FORM}; charset=windows-1252", "invalid_utf8"),
        (b"type=OPEN&First_Name=Zo%EB", f"{FORM}; charset=utf-16", "invalid_utf8"),
        (b"type=OPEN&First_Name=Zo%EB", f"{FORM}; charset=base64", "invalid_utf8"),
        (b"&".join([b"f%E9=1"] * (MAX_FIELDS + 1)), f"{FORM}; charset=ISO-8859-1", "too_many_fields"),
        (b"", FORM, "empty_body"),
        (b" \r\n", f"{FORM}; charset=ISO-8859-1", "empty_body"),
    ],
)
def test_unreadable_forms_fail_with_the_reason(body: bytes, content_type: str, reason: str) -> None:
    result = adapt(body, content_type)
    assert result.events == []
    assert [(f.reason, f.index) for f in result.failures] == [(reason, None)]


def test_adapted_events_are_identical_for_a_redelivered_latin1_body() -> None:
    body = b"type=OPEN&Email=zoe%40example.com&Event_date=1795161994&First_Name=Zo%EB"
    first = one(body, f"{FORM}; charset=ISO-8859-1")
    again = one(body, f"{FORM}; charset=ISO-8859-1")
    utf8 = one(body.replace(b"%EB", b"%C3%AB"))
    assert first["id"] == again["id"] == utf8["id"]


OPEN_FIELDS = [
    ("type", "OPEN"),
    ("Email", "hana.sato@mail.example.org"),
    ("EVENT_DATE", "1795161994"),
    ("List_Names[]", "web signup"),
    ("List_Names[]", "fb signup"),
    ("First_Name", "Zoë"),
    ("Loyalty_Tier", "gold & silver=1"),
]
OPEN_METADATA = {"List_Names": ["web signup", "fb signup"], "First_Name": "Zoë", "Loyalty_Tier": "gold & silver=1"}


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (multipart(OPEN_FIELDS), MULTIPART),
        (multipart(OPEN_FIELDS, b"\n"), MULTIPART),
        (multipart(OPEN_FIELDS), f'multipart/form-data; boundary="{BOUNDARY}"'),
        (multipart(OPEN_FIELDS), f"Multipart/Form-Data; charset=UTF-8; BOUNDARY={BOUNDARY}"),
        (
            multipart(
                OPEN_FIELDS,
                extra=f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="upload"; filename="a.txt"\r\n'
                "Content-Type: text/plain\r\n\r\nfile body\r\n".encode(),
            ),
            MULTIPART,
        ),
    ],
    ids=["crlf", "lf", "quoted-boundary", "header-casing", "file-part-skipped"],
)
def test_multipart_form_data(body: bytes, content_type: str) -> None:
    event = one(body, content_type)
    assert summary(event) == ("email.opened", "hana.sato@mail.example.org", "2026-11-20T08:06:34Z", "OPEN")
    assert event["data"]["metadata"] == OPEN_METADATA
    # The same notification posted as a urlencoded form is the same event.
    assert one(urlencode(OPEN_FIELDS))["id"] == event["id"]


def test_multipart_multi_notifications_in_index_order() -> None:
    fields = [("event[1][type]", "CLICK"), ("event[1][email]", "b@example.com"), ("event[1][Event_date]", "1795163100")]
    fields += [("event[0][type]", "OPEN"), ("event[0][email]", "a@example.com"), ("event[0][Event_date]", "1795163000")]
    result = adapt(multipart(fields), MULTIPART)
    assert result.failures == []
    assert [summary(e) for e in result.events] == [
        ("email.opened", "a@example.com", "2026-11-20T08:23:20Z", "OPEN"),
        ("email.clicked", "b@example.com", "2026-11-20T08:25:00Z", "CLICK"),
    ]


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (multipart([]), MULTIPART, "empty_body"),
        (multipart([("email", "a@example.com")]), MULTIPART, "invalid_event"),
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="type"\r\nOPEN\r\n--{BOUNDARY}--'.encode(),
            MULTIPART,
            "invalid_multipart",
        ),
        (multipart([("type", "OPEN"), ("n", "Zo")]).replace(b"Zo", b"Zo\xe9"), MULTIPART, "invalid_utf8"),
        (
            b"\r\n".join(
                [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="f"\r\n\r\nx'.encode()] * (MAX_FIELDS + 2)
            ),
            MULTIPART,
            "too_many_fields",
        ),
        # Without a boundary (or labelled as a form) the body cannot be split into its parts.
        (multipart(OPEN_FIELDS), "multipart/form-data", "invalid_event"),
        (multipart(OPEN_FIELDS), FORM, "invalid_event"),
    ],
)
def test_unreadable_multipart_bodies_fail_with_the_reason(body: bytes, content_type: str, reason: str) -> None:
    result = adapt(body, content_type)
    assert result.events == []
    assert [f.reason for f in result.failures] == [reason]


def test_wrappers_of_different_casing_in_one_post_all_come_out_in_index_order() -> None:
    body = b"event[0][type]=OPEN&event[0][email]=a%40x.com&Event[1][type]=CLICK&Event[1][email]=b%40x.com"
    body += b"&EVENT[2][type]=OPEN&EVENT[2][email]=c%40x.com"
    result = adapt(body, FORM)
    assert result.failures == []
    assert [e["data"]["recipient"]["email"] for e in result.events] == ["a@x.com", "b@x.com", "c@x.com"]
    assert [e["type"] for e in result.events] == ["email.opened", "email.clicked", "email.opened"]


def test_a_batch_of_thousands_of_notifications_is_read_whole() -> None:
    # 700 notifications of 15 fields were refused whole as too_many_fields under the old 10,000-field cap.
    fields = [("type", "OPEN"), ("email", "{i}@x.com")] + [(f"custom_{n}", "v") for n in range(13)]
    body = "&".join(f"event[{i}][{name}]={value.format(i=i)}" for i in range(3000) for name, value in fields).encode()
    result = adapt(body, FORM)
    assert result.failures == []
    assert len(result.events) == 3000
    assert result.events[-1]["data"]["recipient"]["email"] == "2999@x.com"


# Pure360's documentation lays the POST body out one field a line (and once forgets the "&").
DOC_LAYOUT_START = (
    "type=DELIVERYSTART&\nprofile=TestProfile&\nmessage_Type=EMAIL&\nMessageName=NOV-2026-Deals&\n"
    "Delivery_ID=980065&\nList_Names[]=web%20signup&\nList_Names[]=fb%20signup&\n"
    "Delivery_Scheduled_Date=1795161740&\nDelivery_Start_Date=1795161800&\nDelivery_Complete_Date=\n"
)
DOC_LAYOUT_OPEN = (
    "type=OPEN&\nEvent_date=1795161994&\nemail=hana.sato%40mail.example.org&\nmobile=447700900259&\n"
    "messageName=NOV-2026-Deals&\ndeliveryDate=1795158394&\nDelivery_ID=980091\nfirstName=Hana&\n"
    "notificationSubject=Do%20Not%20Miss%20Out\n"
)


@pytest.mark.parametrize(
    ("body", "expected", "mailing_id"),
    [
        (DOC_LAYOUT_START, ("campaign.started", None, "2026-11-20T08:03:20Z", "DELIVERYSTART"), "980065"),
        (
            DOC_LAYOUT_START.replace("\n", "\r\n"),
            ("campaign.started", None, "2026-11-20T08:03:20Z", "DELIVERYSTART"),
            "980065",
        ),
        (DOC_LAYOUT_OPEN, ("email.opened", "hana.sato@mail.example.org", "2026-11-20T08:06:34Z", "OPEN"), "980091"),
        (
            DOC_LAYOUT_OPEN.replace("\n", "\r\n"),
            ("email.opened", "hana.sato@mail.example.org", "2026-11-20T08:06:34Z", "OPEN"),
            "980091",
        ),
    ],
    ids=["deliverystart-lf", "deliverystart-crlf", "open-lf-missing-amp", "open-crlf-missing-amp"],
)
def test_one_field_a_line_as_documented(body: str, expected: tuple[str, str | None, str, str], mailing_id: str) -> None:
    # Before: the line break became part of the next name ("\nEvent_date"), so the time and recipient were lost.
    event = one(body)
    assert summary(event) == expected
    assert event["data"]["message"] == {"mailing_id": mailing_id}
    assert "\nfirstName" not in event["data"]["raw"] and "Delivery_ID" in event["data"]["raw"]


@pytest.mark.parametrize("separator", ["&\n", "&\r\n", "\n", "\r\n"])
def test_multi_notifications_one_field_a_line(separator: str) -> None:
    # Before: "\nevent[1][...]" was no wrapper, so notification 1 was dropped without a failure.
    body = multi(("1", "CLICK", "b%40example.com", 1795163100), ("0", "OPEN", "a%40example.com", 1795163000))
    result = adapt(body.replace("&", separator))
    assert result.failures == []
    assert [summary(e) for e in result.events] == [
        ("email.opened", "a@example.com", "2026-11-20T08:23:20Z", "OPEN"),
        ("email.clicked", "b@example.com", "2026-11-20T08:25:00Z", "CLICK"),
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "type=OPEN&email=&Email=a%40x.com&Event_date=1795161994",
            ("email.opened", "a@x.com", "2026-11-20T08:06:34Z", "OPEN"),
        ),
        (
            "type=OPEN&email=a%40x.com&Event_date=&EVENT_DATE=1795161994",
            ("email.opened", "a@x.com", "2026-11-20T08:06:34Z", "OPEN"),
        ),
        (
            "type=SMSOPTOUT&Event_date=1795162673&mobile=&Mobile=447700900518",
            ("sms.unsubscribed", "447700900518", "2026-11-20T08:17:53Z", "SMSOPTOUT"),
        ),
        # Both with a value: the first spelling still wins.
        (
            "type=OPEN&email=a%40x.com&EMAIL=b%40x.com&Event_date=1795161994",
            ("email.opened", "a@x.com", "2026-11-20T08:06:34Z", "OPEN"),
        ),
    ],
)
def test_a_blank_spelling_gives_way_to_one_with_a_value(body: str, expected: tuple[str, str, str, str]) -> None:
    # Before: the first spelling won even when empty, so the recipient or the time was lost.
    assert summary(one(body)) == expected


@pytest.mark.parametrize("wrapper", ["event", "Event"])
def test_one_notification_in_the_wrapper_without_an_index_is_that_notification(wrapper: str) -> None:
    # A single notification in PHP's array syntax: event[type]=OPEN, not a list of notifications.
    body = f"{wrapper}[type]=OPEN&{wrapper}[email]=a%40example.com&{wrapper}[Event_date]=1795163000"
    assert summary(one(body)) == ("email.opened", "a@example.com", "2026-11-20T08:23:20Z", "OPEN")
    result = adapt(body + "&EVENT[0][type]=CLICK&EVENT[0][email]=b%40example.com")  # beside an indexed one
    assert result.failures == []
    assert [e["subject"] for e in result.events] == ["b@example.com", "a@example.com"]


@pytest.mark.parametrize(
    ("fields", "recipient", "subject"),
    [
        # Pure360 writes values as they are (email=test@test.com) and spaces as %20: a raw + is a plus.
        ("type=OPEN&email=kofi+news@example.org&mobile=+447700900555",
         {"email": "kofi+news@example.org", "phone": "+447700900555"}, "kofi+news@example.org"),
        ("type=SMSOPTOUT&mobile=+447700900518", {"phone": "+447700900518"}, "+447700900518"),
        ("type=OPEN&email=kofi%2Bnews%40example.org&mobile=%2B447700900555",
         {"email": "kofi+news@example.org", "phone": "+447700900555"}, "kofi+news@example.org"),
        ("type=OPEN&email=+a%40example.com+&mobile=447700900555",
         {"email": "a@example.com", "phone": "447700900555"}, "a@example.com"),
    ],
)  # fmt: skip
def test_a_raw_plus_in_an_address_stays_a_plus(fields: str, recipient: dict[str, str], subject: str) -> None:
    event = one(fields + "&Event_date=1795163000&firstName=Ann+Lee")
    assert event["data"]["recipient"] == recipient
    assert event["subject"] == subject
    assert event["data"]["metadata"] == {"firstName": "Ann Lee"}  # other values: + is a space, as in any form
