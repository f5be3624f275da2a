"""FalconideAdapter against the variations a real sender (or a PHP relay in front of it) can produce within the
integration guide and the fixture rules: every body shape with odd spacing and commas, raw and encoded form
fields, TIMESTAMP/TRANSID/BOUNCE_TYPE/EVENT forms, and the bodies that must be dead-lettered with a reason."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from processors.adapters.base import AdaptResult
from processors.adapters.falconide import FalconideAdapter
from tests.support.adapter_requests import MULTIPART, adapted, multipart, only, request
from tests.support.adapter_requests import email_summaries as summary

ADAPTER = FalconideAdapter()
FORM = "application/x-www-form-urlencoded"


def adapt(body: bytes | str, content_type: str = "application/json", method: str = "POST") -> AdaptResult:
    return adapted(ADAPTER, request("falconide", body, content_type=content_type, method=method))


def record(event: str = "sent", email: str = "a@example.com", **fields: Any) -> dict[str, Any]:
    return {"TRANSID": "14507226013384557", "EMAIL": email, "EVENT": event, "TIMESTAMP": "1795161700", **fields}


SENT = json.dumps(record("sent", "a@example.com"))
OPENED = json.dumps(record("opened", "b@example.com"))
TWO = [
    ("email.delivered", "a@example.com", "2026-11-20T08:01:40Z", "sent"),
    ("email.opened", "b@example.com", "2026-11-20T08:01:40Z", "opened"),
]


# --- body shapes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        f"[{SENT},{OPENED}]",
        f"[\n  {SENT},\n  {OPENED}\n]\n",
        # The guide's push shape and its spacing variants: no brackets, commas, blank lines, trailing comma.
        f"{SENT},{OPENED}",
        f"{SENT},\n\n{OPENED},\n",
        f"{SENT},\r\n\r\n{OPENED},\r\n",
        f"  {SENT} ,\t{OPENED} , \n ",
        f"{SENT},{OPENED},,",
        f"{SENT},,{OPENED}",
        f"\ufeff{SENT},\n{OPENED},",
        # One object a line, or back to back, without commas.
        f"{SENT}\n{OPENED}\n",
        f"{SENT}{OPENED}",
        # The bracket-less shape wrapped in brackets by a relay: a comma before the closing bracket.
        f"[{SENT},\n{OPENED},\n]",
        f"[{SENT},{OPENED},]",
    ],
)
@pytest.mark.parametrize("content_type", ["application/json", FORM, "text/plain", ""])
def test_json_body_shapes_give_the_same_events(body: str, content_type: str) -> None:
    result = adapt(body, content_type)
    assert result.failures == []
    assert summary(result) == TWO
    assert [e["data"]["raw"] for e in result.events] == [json.loads(SENT), json.loads(OPENED)]


@pytest.mark.parametrize("body", [SENT, f"{SENT},", f" {SENT} ,\n", f"\ufeff{SENT}"])
def test_single_object_is_a_batch_of_one(body: str) -> None:
    assert summary(adapt(body)) == TWO[:1]


@pytest.mark.parametrize(
    "body",
    [
        "data=" + quote(f"[{SENT},{OPENED}]"),
        "payload=" + quote(f"{SENT},\n\n{OPENED},\n"),  # any name; the bracket-less shape inside
        "events=" + quote(f"[{SENT},{OPENED}]") + "&submit=Send",
        "data=" + quote(f"[{SENT},{OPENED}]", safe="") + "\r\n",
        f"data=[{SENT},{OPENED}]",  # not URL-encoded at all
        f"data={SENT},{OPENED},",
    ],
)
def test_form_field_holding_the_json(body: str) -> None:
    result = adapt(body, FORM)
    assert result.failures == []
    assert summary(result) == TWO


def test_raw_json_form_value_keeps_ampersands_and_pluses() -> None:
    click = record("clicked", URL="https://shop.example.com/t?a=1&b=2", USERAGENT="Mozilla/5.0+(X11)")
    event = only(adapt("data=" + json.dumps([click]), FORM))
    assert event["type"] == "email.clicked"
    assert event["data"]["link"] == {"url": "https://shop.example.com/t?a=1&b=2"}
    assert event["data"]["client"]["user_agent"] == "Mozilla/5.0+(X11)"
    assert event["data"]["raw"] == click


def test_raw_json_form_value_followed_by_other_fields_is_read_as_a_form() -> None:
    assert summary(adapt(f"data=[{SENT}]&submit=Send", FORM)) == TWO[:1]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('data=[{"EVENT":"sent","EVENT":"opened"}]', "duplicate_keys"),
        ('data=[{"EVENT":"sent","X":NaN}]', "nan_infinity"),
        ("data=[{broken", "invalid_json"),
        ("data=" + quote('[{"EVENT":"sent","EVENT":"opened"}]'), "duplicate_keys"),
    ],
)
def test_unreadable_json_in_a_form_field_keeps_its_reason(body: str, reason: str) -> None:
    result = adapt(body, FORM)
    assert result.events == []
    assert [(f.reason, f.index) for f in result.failures] == [(reason, None)]


@pytest.mark.parametrize(
    "fields",
    [
        record("bounced", BOUNCE_TYPE="SOFTBOUNCE"),
        {name.lower(): value for name, value in record("bounced", BOUNCE_TYPE="SOFTBOUNCE").items()},
        {"X-APIHEADER": '{"order":"A-1"}', **record("bounced", BOUNCE_TYPE="soft")},
    ],
)
def test_flat_form_fields_are_one_event(fields: dict[str, str]) -> None:
    event = only(adapt(urlencode(fields), FORM))
    assert (event["type"], event["data"]["bounce"]["severity"]) == ("email.bounced", "soft")
    assert event["data"]["recipient"] == {"email": "a@example.com"}
    assert event["data"]["occurred_at"] == "2026-11-20T08:01:40Z"
    assert event["data"]["message"]["message_id"] == "14507226013384557"


@pytest.mark.parametrize("body", ["[]", " [ ] \n", "data=[]", "data=%5B%5D"])
def test_verification_post_gives_nothing(body: str) -> None:
    assert adapt(body, FORM) == AdaptResult()


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_url_check_gives_nothing(method: str) -> None:
    assert adapt(b"", "", method) == AdaptResult()


def test_non_object_items_fail_alone_with_their_index() -> None:
    for body in (f'[{SENT}, 1, "x", null, [], {OPENED}]', f'{SENT}, 1, "x", null, [], {OPENED},'):
        result = adapt(body)
        assert summary(result) == TWO
        assert [(f.reason, f.index) for f in result.failures] == [("invalid_event", i) for i in (1, 2, 3, 4)]


# --- field forms ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "occurred_at"),
    [
        ("1795161700", "2026-11-20T08:01:40Z"),
        (1795161700, "2026-11-20T08:01:40Z"),
        (" 1795161700 ", "2026-11-20T08:01:40Z"),
        (1795161700.0, "2026-11-20T08:01:40Z"),
        ("1795161700.0", "2026-11-20T08:01:40Z"),
        (1795161700.25, "2026-11-20T08:01:40.250Z"),
        ("1358402419", "2013-01-17T06:00:19Z"),  # the guide's sample value
        (1299446702, "2011-03-06T21:25:02Z"),
        ("2026-11-20T08:01:40Z", None),  # not epoch seconds
        ("2026-11-20 08:01:40", None),
        ("\u0661\u0667\u0669\u0665\u0661\u0666\u0661\u0667\u0660\u0660", None),  # non-ASCII digits
        ("\uff11\uff17\uff19\uff15\uff11\uff16\uff11\uff17\uff10\uff10", None),  # full-width digits
        ("1e9", None),
        ("NA", None),
        ("garbage", None),
        ("", None),
        ("0", None),
        (-1, None),
        (None, None),
        (True, None),
        ([1795161700], None),
    ],
)
def test_timestamp_forms(timestamp: Any, occurred_at: str | None) -> None:
    data = only(adapt(json.dumps([record(TIMESTAMP=timestamp)])))["data"]
    assert data["occurred_at"] == occurred_at
    assert data["time_source"] == ("provider" if occurred_at else "received")


@pytest.mark.parametrize(
    ("literal", "digits"),
    [
        ("14507226013384557", "14507226013384557"),
        ('"14507226013384557"', "14507226013384557"),
        ("9007199254740993", "9007199254740993"),
        ("18446744073709551617", "18446744073709551617"),  # above 2^64
        ("198987967526", "198987967526"),
        ("000123", "000123"),  # leading zeros: kept
    ],
)
@pytest.mark.parametrize("shape", ["[{}]", "{},", "{}\n{}"])
def test_transid_keeps_its_exact_digits_in_every_shape(literal: str, digits: str, shape: str) -> None:
    obj = '{"TRANSID":' + literal + ',"EMAIL":"a@example.com","EVENT":"sent","TIMESTAMP":1795161700}'
    result = adapt(shape.replace("{}", obj))
    assert result.failures == []
    for event in result.events:
        assert event["data"]["message"]["message_id"] == digits
        assert event["data"]["raw"]["TRANSID"] == digits
        assert event["data"]["occurred_at"] == "2026-11-20T08:01:40Z"


@pytest.mark.parametrize(
    ("bounce_type", "severity"),
    [
        ("HARDBOUNCE", "hard"),
        ("hardbounce", "hard"),
        ("HardBounce", "hard"),
        ("Hard Bounce", "hard"),
        ("HARD_BOUNCE", "hard"),
        ("HARD-BOUNCE", "hard"),
        ("HARD", "hard"),
        ("hard", "hard"),
        (" SOFTBOUNCE ", "soft"),
        ("SoftBounce", "soft"),
        ("soft", "soft"),
        ("SOFT", "soft"),
        ("NA", "undetermined"),
        ("", "undetermined"),
        ("BLOCKED", "undetermined"),
        (None, "undetermined"),
    ],
)
def test_bounce_type_forms(bounce_type: str | None, severity: str) -> None:
    event = only(adapt(json.dumps([record("bounced", BOUNCE_TYPE=bounce_type)])))
    assert event["type"] == "email.bounced"
    assert event["data"]["bounce"]["severity"] == severity
    assert event["data"]["reject_reason"] == "bounced"


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("abuse", "email.complained"),
        ("Abuse", "email.complained"),
        ("spam", "email.complained"),  # Netcore's older name
        ("SPAM", "email.complained"),
        ("unsub", "email.unsubscribed"),
        ("UNSUBSCRIBED", "email.unsubscribed"),
        ("delivered", "email.delivered"),  # Netcore's support article's name for sent
        ("Delivered", "email.delivered"),
        ("deferred", "unknown"),
        ("forwarded", "unknown"),
        ("", "unknown"),
    ],
)
def test_event_names(name: str, canonical: str) -> None:
    event = only(adapt(json.dumps([record(name)])))
    assert (event["type"], event["data"]["provider_event_type"]) == (canonical, name)
    assert event["data"]["recipient"] == {"email": "a@example.com"}


def test_event_name_of_odd_type_is_unknown_and_kept_as_text() -> None:
    result = adapt(json.dumps([record(7), record(None), {"EMAIL": "c@example.com"}]))  # type: ignore[arg-type]
    assert [(e["type"], e["data"]["provider_event_type"]) for e in result.events] == [
        ("unknown", "7"),
        ("unknown", ""),
        ("unknown", ""),
    ]
    assert result.failures == []


# --- bodies that must be dead-lettered, with a reason ----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty_body"),
        (b" \r\n ", "empty_body"),
        (b"\xef\xbb\xbf", "empty_body"),
        (b'[{"EVENT":"sent","EVENT":"opened"}]', "duplicate_keys"),
        (b'{"EVENT":"sent"},{"EVENT":"sent","EVENT":"opened"},', "duplicate_keys"),
        (b'{"EVENT":"sent"}\n{"EVENT":"sent","X":NaN}', "nan_infinity"),
        (b'[{"EVENT":"sent","X":Infinity}]', "nan_infinity"),
        (b'{"EVENT":"sent"},{"X":' + b"9" * 5000 + b"},", "number_too_long"),
        (b'{"EVENT":"sent"},{"X":' + b"[" * 600 + b"]" * 600 + b"},", "too_deep"),
        (b"[" * 100_000 + b"]" * 100_000, "too_deep"),
        (b'{"EVENT":"sent"},{"X":' + b"[" * 100_000 + b"]" * 100_000 + b"},", "too_deep"),
        (b'[{"EVENT":"sent","EMAIL":"\xc3\x28@example.com"}]', "invalid_utf8"),
        (b'{"EVENT":"sent"},{"EMAIL":"\xc3\x28@example.com"},', "invalid_utf8"),
        (b"EVENT=sent&EMAIL=%C3%28%40example.com", "invalid_utf8"),
        (b'[{"EVENT":"sent","EMAIL":"a\x00b@example.com"}]', "invalid_json"),
        (b'{"EVENT":"sent"},{"EVENT":"sent","EMAIL":"a\x00b@example.com"},', "invalid_json"),
        (b'{"EVENT":"sent","RESPONSE":"250\nOK"},', "invalid_json"),
        (b'{"EVENT":"sent"} garbage', "invalid_json"),
        (b'[{"EVENT":"sent"},,]', "invalid_json"),
        (b"Hello, not JSON", "unrecognised_body"),
    ],
)
def test_unreadable_body_is_one_failure_with_its_reason_and_no_events(body: bytes, reason: str) -> None:
    for content_type in ("application/json", FORM):
        result = adapt(body, content_type)
        assert result.events == []
        assert [(f.reason, f.index) for f in result.failures] == [(reason, None)]


def test_error_in_a_later_object_is_located_in_it() -> None:
    (failure,) = adapt(b'{"EVENT":"sent"},\n{"EVENT":"sent","EMAIL":"a\x00b"},').failures
    assert failure.reason == "invalid_json"
    assert "line 2" in failure.detail


@pytest.mark.parametrize(
    ("literal", "text"), [("1234", "1234"), ("9007199254740995", "9007199254740995"), ('"1234"', "1234")]
)
@pytest.mark.parametrize("name", ["X-APIHEADER", "XAPI-HEADER", "x-apiheader"])
def test_a_bare_number_api_header_reaches_raw_and_metadata_as_its_text(literal: str, text: str, name: str) -> None:
    # The fixtures' `preserved` rule names X-APIHEADER: the published raw event must hold it as that string.
    body = (
        '[{"TRANSID":"1","EMAIL":"a@example.com","EVENT":"sent","TIMESTAMP":1795161700,"' + name + '":' + literal + "}]"
    )
    data = only(adapt(body))["data"]
    assert data["raw"][name] == text
    assert data["metadata"] == {"X-APIHEADER": text}
    assert list(data["raw"]) == ["TRANSID", "EMAIL", "EVENT", "TIMESTAMP", name]  # the sender's order kept


def test_multipart_form_data_is_read_like_a_urlencoded_form() -> None:
    # A PHP relay's $_POST reads multipart/form-data as it reads a urlencoded form: both shapes must come out.
    flat = multipart([("TRANSID", "14507226013384557"), ("EMAIL", "a@example.com"), ("EVENT", "opened")])
    batch = json.dumps([record("sent"), record("clicked", URL="https://x.example/?a=1&b=2")])
    for body, types in [(flat, ["email.opened"]), (multipart([("data", batch)]), ["email.delivered", "email.clicked"])]:
        result = adapt(body, MULTIPART)
        assert result.failures == []
        assert [e["type"] for e in result.events] == types
    assert [f.reason for f in adapt(multipart([("a", "1"), ("b", "2")]), MULTIPART).failures] == ["unrecognised_body"]


def test_a_flat_form_with_only_some_of_the_guides_parameters_is_one_event() -> None:
    # A custom webhook may send only the parameters chosen for it; its JSON-looking X-APIHEADER is no batch.
    body = "RCPTID=1&TIMESTAMP=1795161700&RESPONSE=250+OK&X-APIHEADER=" + quote('{"order":"A-1"}')
    event = only(adapt(body, "application/x-www-form-urlencoded"))
    assert event["data"]["metadata"] == {"X-APIHEADER": '{"order":"A-1"}'}
    assert event["data"]["occurred_at"] == "2026-11-20T08:01:40Z"
    assert event["type"] == "unknown"  # no EVENT was sent


def test_a_raw_json_api_header_as_the_first_field_is_not_taken_for_the_batch() -> None:
    body = 'X-APIHEADER={"order":"A-1"}&EVENT=opened&EMAIL=a%40example.com&TIMESTAMP=1795161700'
    event = only(adapt(body, "application/x-www-form-urlencoded"))
    assert (event["type"], event["subject"]) == ("email.opened", "a@example.com")
    assert only(adapt('X-APIHEADER={"order":"A-1"}', "application/x-www-form-urlencoded"))["type"] == "unknown"


@pytest.mark.parametrize("encode", [True, False])
def test_a_batch_field_beside_parameters_is_the_batch_and_each_event_takes_them(encode: bool) -> None:
    # The guide: "params: Parameters which you want to receive in all API calls", X-APIHEADER among them.
    opened = {**record("opened", "b@example.com"), "X-APIHEADER": "OWN"}
    batch = json.dumps([record("sent", "a@example.com"), opened])
    body = f"data={quote(batch) if encode else batch}&X-APIHEADER=ACC1&TAGS=winter"
    result = adapt(body, FORM)
    assert summary(result) == TWO
    sent, opened_event = result.events
    assert sent["data"]["raw"]["X-APIHEADER"] == "ACC1" and sent["data"]["raw"]["TAGS"] == "winter"
    assert opened_event["data"]["raw"]["X-APIHEADER"] == "OWN", "an event's own value wins"
    # Not a batch: objects without EVENT, or a form that names its own EVENT, stay one event's fields.
    assert only(adapt("data=" + quote('[{"x":1}]') + "&X-APIHEADER=ACC1", FORM))["type"] == "unknown"
    flat = only(adapt(f"EVENT=opened&EMAIL=a%40example.com&TIMESTAMP=1795161700&note={quote(batch)}", FORM))
    assert flat["type"] == "email.opened"


# --- field-name spellings, form whitespace, a batch under a parameter's name ----------------------------


@pytest.mark.parametrize(
    "names",
    [
        ("BOUNCE_TYPE", "BOUNCE_REASON", "BOUNCE_REASONID", "FROMADDRESS", "USERAGENT", "IPADDRESS"),
        # The guide's table writes the column names with spaces; PHP's $_POST turns spaces and dots into "_".
        ("BOUNCE TYPE", "BOUNCE REASON", "BOUNCE REASONID", "FROM ADDRESS", "USER AGENT", "IP ADDRESS"),
        ("bounce_type", "bounce_reason", "bounce_reasonid", "from_address", "user_agent", "ip_address"),
        ("Bounce-Type", "Bounce-Reason", "Bounce-Reason-Id", "From-Address", "User-Agent", "IP-Address"),
        ("BOUNCETYPE", "BOUNCE.REASON", "BOUNCEREASONID", "FROMADDRESS", "USERAGENT", "IPADDRESS"),
    ],
)
@pytest.mark.parametrize("as_form", [False, True])
def test_field_names_with_spaces_underscores_or_hyphens_are_read(names: tuple[str, ...], as_form: bool) -> None:
    values = ("SOFTBOUNCE", "452 4.2.2 Mailbox full", "11", "info@shop.example.com", "Mozilla/5.0", "192.0.2.1")
    fields = record("bounced", **dict(zip(names, values, strict=True)))
    result = adapt(urlencode(fields), FORM) if as_form else adapt(json.dumps([fields]))
    data = only(result)["data"]
    assert data["bounce"] == {
        "severity": "soft",
        "class_code": "11",
        "smtp_status": "452",
        "enhanced_status": "4.2.2",
        "reason": "452 4.2.2 Mailbox full",
    }
    assert data["message"]["from"] == "info@shop.example.com"
    assert data["client"] == {"user_agent": "Mozilla/5.0", "ip": "192.0.2.1"}
    assert data["raw"] == fields  # names kept as sent


@pytest.mark.parametrize("name", ["X-APIHEADER", "XAPI-HEADER", "X_APIHEADER", "x-api-header", "X APIHEADER"])
def test_api_header_spellings_reach_metadata(name: str) -> None:
    fields: dict[str, Any] = {name: 9007199254740993}
    data = only(adapt(json.dumps([record(**fields)])))["data"]
    assert data["metadata"] == {"X-APIHEADER": "9007199254740993"}
    assert data["raw"][name] == "9007199254740993"


@pytest.mark.parametrize("newline", ["\n", "\r\n", " \r\n\r\n", "\t"])
def test_unencoded_whitespace_after_a_flat_form_is_not_part_of_its_last_value(newline: str) -> None:
    fields = {"TRANSID": "1", "EMAIL": "a@example.com", "TIMESTAMP": "1795161700"}
    for last in (
        {"URL": "https://x.example/t", "EVENT": "clicked"},
        {"EVENT": "clicked", "URL": "https://x.example/t"},
    ):
        data = only(adapt(urlencode({**fields, **last}) + newline, FORM))["data"]
        assert (data["provider_event_type"], data["link"]) == ("clicked", {"url": "https://x.example/t"})
        assert data["raw"] == {**fields, **last}


@pytest.mark.parametrize(
    "body",
    [
        "event=" + quote(f"[{SENT},{OPENED}]"),
        "EVENT=" + quote(f"{SENT},\n{OPENED},"),
        f"Event=[{SENT},{OPENED}]",  # raw
        f"event={SENT},{OPENED},\n",
    ],
)
def test_one_field_named_like_a_parameter_holding_the_batch_is_the_batch(body: str) -> None:
    # The README: a form with one field, any name, whose value is the JSON.
    result = adapt(body, FORM)
    assert result.failures == []
    assert summary(result) == TWO


@pytest.mark.parametrize(
    ("body", "field", "value"),
    [
        ("SUBJECT=%5BNews%5D+Offers", "SUBJECT", "[News] Offers"),
        ("SUBJECT=[News] Offers", "SUBJECT", "[News] Offers"),
        ("EVENT=%5B1%2C2%5D", "EVENT", "[1,2]"),
        ("SUBJECT=[NaN]", "SUBJECT", "[NaN]"),
        ("X-APIHEADER=" + quote('[{"order":"A-1"}]'), "X-APIHEADER", '[{"order":"A-1"}]'),
    ],
)
def test_one_parameter_whose_value_is_no_batch_stays_one_events_field(body: str, field: str, value: str) -> None:
    assert only(adapt(body, FORM))["data"]["raw"] == {field: value}


def test_not_applicable_bounce_reason_id_is_no_class_code() -> None:
    data = only(adapt(json.dumps([record("bounced", BOUNCE_TYPE="HARDBOUNCE", BOUNCE_REASONID="NA")])))["data"]
    assert data["bounce"] == {"severity": "hard"}


# --- PHP's array syntax in a form, a wrapped single object ----------------------------------------------


def php_fields(prefix: str, item: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f"{prefix}[{name}]", value) for name, value in item.items()]


@pytest.mark.parametrize("encode_brackets", [True, False])
@pytest.mark.parametrize(
    "fields",
    [
        # The batch as PHP's http_build_query writes an array of events: the form is the batch itself ...
        php_fields("1", record("opened", "b@example.com")) + php_fields("0", record("sent", "a@example.com")),
        # ... or one field holding it, in index order (numeric, not text: 10 after 2), or its JSON values.
        php_fields("data[1]", record("opened", "b@example.com")) + php_fields("data[0]", record("sent")),
        [("data[]", SENT), ("data[]", OPENED)],
        [("data[]", f"[{SENT},{OPENED}]")],
        [("payload[0]", SENT), ("payload[1]", OPENED), ("submit", "Send")],
    ],
)
def test_a_batch_in_php_array_syntax_is_the_batch(fields: list[tuple[str, str]], encode_brackets: bool) -> None:
    body = urlencode(fields)
    if not encode_brackets:
        body = body.replace("%5B", "[").replace("%5D", "]")
    result = adapt(body, FORM)
    assert result.failures == []
    assert summary(result) == TWO
    assert summary(adapt(multipart(fields), MULTIPART)) == TWO


def test_events_in_php_array_syntax_come_out_in_numeric_index_order() -> None:
    fields = [
        field for index in (10, 2, 0) for field in php_fields(f"data[{index}]", record("sent", f"u{index}@example.com"))
    ]
    result = adapt(urlencode(fields), FORM)
    assert [e["subject"] for e in result.events] == ["u0@example.com", "u2@example.com", "u10@example.com"]


def test_one_event_in_php_array_syntax_is_that_event() -> None:
    for body in (
        urlencode(php_fields("data", record("clicked", URL="https://x.example/?a=1&b=2"))),
        urlencode(php_fields("0", record("clicked", URL="https://x.example/?a=1&b=2"))),
    ):
        event = only(adapt(body, FORM))
        assert (event["type"], event["subject"]) == ("email.clicked", "a@example.com")
        assert event["data"]["link"] == {"url": "https://x.example/?a=1&b=2"}
        assert event["data"]["message"]["message_id"] == "14507226013384557"


def test_a_batch_in_php_array_syntax_beside_parameters_takes_them() -> None:
    body = urlencode([*php_fields("data[0]", record("sent")), ("X-APIHEADER", "ACC1")])
    event = only(adapt(body, FORM))
    assert event["type"] == "email.delivered"
    assert event["data"]["metadata"] == {"X-APIHEADER": "ACC1"}


def test_tags_in_php_array_syntax_are_the_events_tags() -> None:
    # TAGS[]=a&TAGS[]=b is how PHP posts a list: not the same field given twice.
    fields = [*record("opened").items(), ("TAGS[]", "winter"), ("TAGS[]", "sale")]
    for body in (urlencode(fields), urlencode(fields).replace("%5B%5D", "[]")):
        event = only(adapt(body, FORM))
        assert event["type"] == "email.opened"
        assert event["data"]["tags"] == ["winter", "sale"]
    assert [f.reason for f in adapt("EVENT=sent&EVENT=opened", FORM).failures] == ["duplicate_keys"]


def test_a_single_object_in_a_wrapper_is_that_event() -> None:
    # {"data": [...]} is the batch; {"data": {...}} its single object, as data={...} is in a form.
    event = only(adapt(json.dumps({"data": record("opened", "b@example.com")})))
    assert summary(AdaptResult(events=[event])) == TWO[1:]
    assert event["data"]["raw"] == record("opened", "b@example.com")
    assert only(adapt('{"data": {"x": 1}}'))["data"]["raw"] == {"data": {"x": 1}}  # no parameter: not an event


@pytest.mark.parametrize("before", ["X-APIHEADER=ACC1&", "submit=Send&", "X-APIHEADER=ACC1&TAGS=winter&"])
def test_a_raw_json_field_after_other_fields_keeps_its_ampersands_and_pluses(before: str) -> None:
    # The same form in another field order: the raw (not URL-encoded) JSON field last instead of first.
    click = record("clicked", URL="https://shop.example.com/t?a=1&b=2", USERAGENT="Mozilla/5.0+(X11)")
    event = only(adapt(f"{before}data={json.dumps([click])}\n", FORM))
    assert (event["type"], event["subject"]) == ("email.clicked", "a@example.com")
    assert event["data"]["link"] == {"url": "https://shop.example.com/t?a=1&b=2"}
    assert event["data"]["client"]["user_agent"] == "Mozilla/5.0+(X11)"
    assert event["data"]["raw"]["URL"] == "https://shop.example.com/t?a=1&b=2"
    if "ACC1" in before:
        assert event["data"]["metadata"] == {"X-APIHEADER": "ACC1"}


def test_a_raw_json_field_after_other_fields_keeps_its_json_refusals() -> None:
    result = adapt('X-APIHEADER=ACC1&data=[{"EVENT":"sent","EVENT":"opened"}]', FORM)
    assert (result.events, [f.reason for f in result.failures]) == ([], ["duplicate_keys"])


def test_many_raw_json_looking_fields_are_read_in_linear_time() -> None:
    # Each raw JSON field tried reads the rest of the body: a hostile form of 100,000 of them must not.
    started = time.perf_counter()
    result = adapt("x=1&" + "a=[1]x&" * 100_000, FORM)
    assert time.perf_counter() - started < 2
    assert result.events == [] and [f.reason for f in result.failures] == ["too_many_fields"]


def test_a_json_field_beside_an_unrelated_php_array_is_still_the_batch() -> None:
    body = "options[lang]=en&data=" + quote(f"[{SENT},{OPENED}]")
    assert summary(adapt(body, FORM)) == TWO
    assert summary(adapt(body + "&X-APIHEADER=ACC1", FORM)) == TWO
