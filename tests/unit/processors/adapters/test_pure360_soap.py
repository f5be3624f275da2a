"""Pure360 SOAP getBatch import: the recorded response, the envelope and CSV variations, and bad bodies."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings

from espwire.envelope import Envelope
from processors.adapters.base import AdaptResult, Failure
from processors.adapters.pure360 import Pure360Adapter
from processors.adapters.pure360_soap import adapt_batch, row_notification
from tests.fixture_cases import PROVIDERS_DIR, sequence_mismatches
from tests.support.adapter_properties import assert_well_formed, mutated

SOAP_DIR = PROVIDERS_DIR / "pure360" / "soap"
ARTIFACTS = sorted(SOAP_DIR.glob("*.expect.json"))
FIXTURE = (SOAP_DIR / "getBatch-response-1.xml").read_bytes()
RECEIVED = "2026-11-24T00:00:00Z"
CLICK_META = "type,email,Message Name,Delivery Date,Click Url,Click Date"
OPEN_META = "type, email, messageName, deliveryDate"
META = {"CLICK": CLICK_META, "OPEN": OPEN_META}


def envelope(body: bytes) -> Envelope:
    return Envelope(
        source_id="pure360-soap",
        provider="pure360",
        request_id="getBatch-1",
        received_at=RECEIVED,
        method="SOAP",
        content_type="text/xml; charset=utf-8",
        body=body,
    )


def adapt(body: bytes) -> AdaptResult:
    result = adapt_batch(envelope(body))
    assert_well_formed(result)
    return result


def item(key: str, value: str, value_type: str = "xsd:string") -> str:
    return f'<item><key xsi:type="xsd:string">{key}</key><value xsi:type="{value_type}">{value}</value></item>'


def soap(result_items: str, env: str = "SOAP-ENV", ns1: str = "ns1", ns2: str = "ns2") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<{env}:Envelope xmlns:{env}="http://schemas.xmlsoap.org/soap/envelope/" xmlns:{ns1}="urn:localhost-paint"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
        f' xmlns:{ns2}="http://xml.apache.org/xml-soap">\n'
        f"<{env}:Body><{ns1}:handleRequestResponse>\n"
        f'<Result xsi:type="{ns2}:Map">{result_items}</Result>\n'
        f"</{ns1}:handleRequestResponse></{env}:Body></{env}:Envelope>\n"
    ).encode()


def batch(
    data: bytes | None,
    meta: dict[str, str] = META,
    count: int | None = None,
    **prefixes: str,
) -> bytes:
    """A successful getBatch response; ``count`` defaults to the number of non-blank rows in ``data``."""
    ns2 = prefixes.get("ns2", "ns2")
    if count is None:
        count = sum(1 for line in (data or b"").splitlines() if line.strip())
    fields = item("eventCount", str(count), "xsd:int")
    fields += item("eventMeta", "".join(item(k, v) for k, v in meta.items()), f"{ns2}:Map")
    if data is not None:
        fields += item("eventData", base64.b64encode(data).decode())
    inner = item("bus_entity_eventNotificationBatch", fields, f"{ns2}:Map")
    return soap(item("result", "success") + item("resultData", inner, f"{ns2}:Map"), **prefixes)


def summary(result: AdaptResult) -> list[tuple[str, str | None, str | None, str]]:
    return [
        (e["type"], e.get("subject"), e["data"]["occurred_at"], e["data"]["provider_event_type"]) for e in result.events
    ]


@pytest.mark.parametrize("expect_path", ARTIFACTS, ids=lambda p: p.name)
def test_artifact(expect_path: Path) -> None:
    expect = json.loads(expect_path.read_text())
    result = adapt((SOAP_DIR / expect["artifact"]).read_bytes())
    assert result.failures == []
    assert sequence_mismatches(expect["expect_events"], list(result.events)) == []  # type: ignore[arg-type]


def test_fixture_rows_in_order_with_the_full_row_in_raw() -> None:
    result = adapt(FIXTURE)
    assert summary(result) == [
        ("email.clicked", "gita.rao6@example.com", "2026-11-20T10:03:20Z", "CLICK"),
        ("email.opened", "hana.sato6@mail.example.org", None, "OPEN"),
        ("email.clicked", "ivan.petrov6@example.net", "2026-11-20T09:43:20Z", "CLICK"),
        ("email.opened", "june.kim6@example.com", None, "OPEN"),
    ]
    click, opened = result.events[0]["data"], result.events[1]["data"]
    assert [e["data"]["provider_event_id"] for e in result.events] == [None] * 4
    assert click["raw"] == {
        "type": "CLICK",
        "email": "gita.rao6@example.com",
        "Message Name": "NOV-2026-Deals",
        "Delivery Date": "1795165400",
        "Click Url": "https://shop.example.com/c/0?q=a,b",  # quoted in the CSV: the comma stays
        "Click Date": "1795169000",
        "Event_date": "1795169000",  # the row's own date, where the shared mapping reads the time
    }
    assert click["link"] == {"url": "https://shop.example.com/c/0?q=a,b"}
    assert click["campaign"] == {"name": "NOV-2026-Deals"}
    # The OPEN meta's spaces after commas are trimmed; deliveryDate is not the open's time.
    assert opened["raw"] == {
        "type": "OPEN",
        "email": "hana.sato6@mail.example.org",
        "messageName": "NOV-2026-Deals",
        "deliveryDate": "1795164800",
    }
    assert opened["time_source"] == "received"
    assert opened["metadata"] == {"deliveryDate": "1795164800"}


def test_other_namespace_prefixes_give_the_same_events() -> None:
    renamed = (
        FIXTURE.replace(b"SOAP-ENV:", b"soapenv:")
        .replace(b"xmlns:SOAP-ENV=", b"xmlns:soapenv=")
        .replace(b"ns1:", b"paint:")
        .replace(b"xmlns:ns1=", b"xmlns:paint=")
    )
    assert b"SOAP-ENV" not in renamed and b"ns1:" not in renamed
    assert [e["id"] for e in adapt(renamed).events] == [e["id"] for e in adapt(FIXTURE).events]
    # And with a default namespace (no prefix at all) and other prefixes for the Map type.
    rows = b"OPEN,a@example.com,M1,1795164800\n"
    plain = batch(rows, env="s", ns1="p", ns2="apache").replace(b"<s:", b"<").replace(b"</s:", b"</")
    plain = plain.replace(b"xmlns:s=", b"xmlns=")
    assert summary(adapt(plain)) == [("email.opened", "a@example.com", None, "OPEN")]


def test_extra_types_in_meta_use_their_own_date_column() -> None:
    meta = {
        **META,
        "BOUNCE": "type, email, messageName, Bounce Date, Bounce Reason",
        "SOFTBOUNCE": "type, email, messageName, Soft_Bounce_Date, Bounce Reason",
        "DELIVERYSTART": "type, messageName, Delivery Start Date",
        "OPTOUT": "type, email, messageName, Event Date, Opt Out Date",
        "SMSFAILED": "type, mobile, messageName, SMS Failed Date",
    }
    rows = (
        b"BOUNCE,b@example.com,M1,1795165500,550 5.1.1 user unknown\n"
        b"SOFTBOUNCE,s@example.com,M1,1795165400,452 4.2.2 mailbox full\n"
        b"DELIVERYSTART,M1,1795165300\n"
        b"OPTOUT,o@example.com,M1,1795165200,1795165100\n"
        b"SMSFAILED,447700900123,M1,1795165000\n"
    )
    result = adapt(batch(rows, meta))
    assert result.failures == []
    assert summary(result) == [
        ("email.bounced", "b@example.com", "2026-11-20T09:05:00Z", "BOUNCE"),
        ("email.bounced", "s@example.com", "2026-11-20T09:03:20Z", "SOFTBOUNCE"),
        ("campaign.started", None, "2026-11-20T09:01:40Z", "DELIVERYSTART"),
        # A column named Event Date is the event time; Opt Out Date is then only kept.
        ("email.unsubscribed", "o@example.com", "2026-11-20T09:00:00Z", "OPTOUT"),
        ("sms.failed", "447700900123", "2026-11-20T08:56:40Z", "SMSFAILED"),
    ]
    bounce, soft = result.events[0]["data"]["bounce"], result.events[1]["data"]["bounce"]
    assert bounce == {
        "severity": "hard",
        "reason": "550 5.1.1 user unknown",
        "smtp_status": "550",
        "enhanced_status": "5.1.1",
    }
    assert soft is not None and soft["severity"] == "soft"
    assert "Event_date" not in result.events[3]["data"]["raw"]


def test_row_without_meta_fails_alone() -> None:
    rows = (
        b"CLICK,a@example.com,M1,1795165400,https://x.example/1,1795169000\n"
        b"FORWARD,f@example.com,M1,1795165400\n"
        b"OPEN,b@example.com,M1,1795164800\n"
        b",c@example.com\n"
    )
    result = adapt(batch(rows))
    assert summary(result) == [
        ("email.clicked", "a@example.com", "2026-11-20T10:03:20Z", "CLICK"),
        ("email.opened", "b@example.com", None, "OPEN"),
    ]
    assert result.failures == [
        Failure("missing_event_meta", "no eventMeta for type 'FORWARD'", 1),
        Failure("invalid_row", "row has no type in its first column", 3),
    ]


def test_unlisted_type_with_meta_is_unknown() -> None:
    result = adapt(batch(b"forward,f@example.com,M1\n", {"FORWARD": "type,email,messageName"}))
    assert summary(result) == [("unknown", "f@example.com", None, "forward")]


def test_crlf_and_trailing_blank_line() -> None:
    rows = (
        b"CLICK,a@example.com,M1,1795165400,https://x.example/1,1795169000\r\nOPEN,b@example.com,M1,1795164800\r\n\r\n"
    )
    result = adapt(batch(rows))
    assert result.failures == []
    assert summary(result) == [
        ("email.clicked", "a@example.com", "2026-11-20T10:03:20Z", "CLICK"),
        ("email.opened", "b@example.com", None, "OPEN"),
    ]
    assert result.events[0]["data"]["raw"]["Click Date"] == "1795169000"  # no \r left on the last value


def test_quoted_values_with_commas_and_doubled_quotes() -> None:
    rows = (
        b'CLICK,a@example.com,"Deals, ""Black"" Friday",1795165400,'
        b'"https://x.example/c?q=a,b&t=""x""", "1795169000"\n'
        b'OPEN,b@example.com,"multi\nline, name",1795164800\n'
    )
    result = adapt(batch(rows, count=2))
    assert result.failures == []
    click, opened = result.events[0]["data"], result.events[1]["data"]
    assert click["campaign"] == {"name": 'Deals, "Black" Friday'}
    assert click["link"] == {"url": 'https://x.example/c?q=a,b&t="x"'}
    assert click["occurred_at"] == "2026-11-20T10:03:20Z"  # quoted after ", ": still one value
    assert opened["raw"]["messageName"] == "multi\nline, name"


@pytest.mark.parametrize(
    "body",
    [
        batch(None, meta={}, count=0),
        batch(b"", meta={}, count=0),
        batch(b"", count=0).replace(b'<value xsi:type="xsd:string"></value>', b'<value xsi:nil="true"/>'),
        batch(b"\n\n", count=0),
    ],
    ids=["no_eventData", "empty_eventData", "nil_eventData", "blank_lines"],
)
def test_empty_batch_is_no_events_and_no_failures(body: bytes) -> None:
    assert adapt(body) == AdaptResult()


def test_wrapped_and_unpadded_base64() -> None:
    rows = b"OPEN,b@example.com,M1,1795164800\n"  # 34 bytes: base64 ends in "="
    encoded = base64.b64encode(rows).decode()
    wrapped = "\n".join(encoded[i : i + 16] for i in range(0, len(encoded), 16)).rstrip("=")
    body = batch(rows).replace(encoded.encode(), wrapped.encode())
    assert summary(adapt(body)) == [("email.opened", "b@example.com", None, "OPEN")]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "invalid_xml"),
        (b"<SOAP-ENV:Envelope><unclosed>", "invalid_xml"),
        (FIXTURE[: len(FIXTURE) // 2], "invalid_xml"),
        (b'{"eventCount": 4}', "invalid_xml"),
        (
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            b"<Envelope><Body>&b;</Body></Envelope>",
            "invalid_xml",
        ),
        (b'<!DOCTYPE r SYSTEM "file:///etc/passwd"><Envelope/>', "invalid_xml"),
        (b"<html><body>502 Bad Gateway</body></html>", "invalid_soap"),
        (b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"/>', "invalid_soap"),
        (soap(item("result", "success") + item("resultData", "", "ns2:Map")), "invalid_soap"),
        (batch(b"OPEN,b@example.com,M1,1\n").replace(b">1</value>", b">many</value>"), "invalid_soap"),
    ],
    ids=[
        "empty",
        "unclosed",
        "truncated",
        "json",
        "entity_expansion",
        "external_dtd",
        "not_soap",
        "no_body",
        "no_batch",
        "bad_count",
    ],
)
def test_not_a_getbatch_response(body: bytes, reason: str) -> None:
    result = adapt(body)
    assert result.events == []
    assert [f.reason for f in result.failures] == [reason]
    assert result.failures[0].index is None and result.failures[0].detail


def test_bad_base64_fails_the_batch() -> None:
    body = batch(b"OPEN,b@example.com,M1,1795164800\n")
    broken = body.replace(b"T1BFTi", b"T1B%Ti")
    assert broken != body
    result = adapt(broken)
    assert result.events == []
    assert [(f.reason, f.index) for f in result.failures] == [("invalid_event_data", None)]
    assert "base64" in result.failures[0].detail


def test_soap_fault() -> None:
    fault = (
        b'<?xml version="1.0"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">'
        b"<SOAP-ENV:Body><SOAP-ENV:Fault><faultcode>SOAP-ENV:Server</faultcode>"
        b"<faultstring>Invalid context id</faultstring></SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>"
    )
    assert adapt(fault) == AdaptResult(failures=[Failure("soap_fault", "SOAP-ENV:Server: Invalid context id")])


def test_result_other_than_success() -> None:
    body = soap(item("result", "error") + item("resultData", "Session expired"))
    assert adapt(body) == AdaptResult(failures=[Failure("provider_error", "result 'error': Session expired")])


def test_event_count_mismatch_is_reported_and_rows_still_come_out() -> None:
    result = adapt(batch(b"OPEN,b@example.com,M1,1795164800\n", count=3))
    assert summary(result) == [("email.opened", "b@example.com", None, "OPEN")]
    assert result.failures == [Failure("event_count_mismatch", "eventCount 3, eventData has 1 rows")]


def test_bad_rows_fail_alone() -> None:
    rows = (
        b"OPEN,a@example.com,M1,1795164800\n"
        b"OPEN,b@\xc3\x28.example.com,M1,1795164800\n"
        b'OPEN,"c@example.com"x,M1,1795164800\n'
        b"OPEN,d@example.com,M1,1795164800\n"
    )
    result = adapt(batch(rows))
    assert [e["subject"] for e in result.events] == ["a@example.com", "d@example.com"]
    assert [(f.reason, f.index) for f in result.failures] == [("invalid_utf8", 1), ("invalid_row", 2)]


def test_values_beyond_the_named_columns_are_kept() -> None:
    notification = row_notification(["OPEN", "a@example.com", "M1", "1795164800", "extra"], {"OPEN": ["type", "email"]})
    assert notification == {
        "type": "OPEN",
        "email": "a@example.com",
        "column 3": "M1",
        "column 4": "1795164800",
        "column 5": "extra",
    }
    # Fewer values than names: the missing columns are absent.
    assert row_notification(["OPEN", "a@example.com"], {"OPEN": ["type", "email", "messageName"]}) == {
        "type": "OPEN",
        "email": "a@example.com",
    }


def test_same_notification_same_event_as_http() -> None:
    soap_event = adapt(
        batch(
            b"BOUNCE,dev@example.com,M1,1795165500,550 5.1.1 no\n",
            {"BOUNCE": "type,email,Message Name,Bounce Date,Bounce Reason"},
        )
    ).events[0]
    http_event = (
        Pure360Adapter()
        .adapt(
            Envelope(
                source_id="pure360-soap",
                provider="pure360",
                request_id="r1",
                received_at=RECEIVED,
                method="POST",
                content_type="application/x-www-form-urlencoded",
                body=b"type=BOUNCE&Event_date=1795165500&email=dev@example.com&Message_Name=M1"
                b"&Bounce_Reason=550%205.1.1%20no",
            )
        )
        .events[0]
    )
    for section in ("occurred_at", "recipient", "bounce", "reject_reason", "provider_event_type", "campaign"):
        assert soap_event["data"][section] == http_event["data"][section]
    assert soap_event["type"] == http_event["type"] == "email.bounced"


@settings(max_examples=300, deadline=None)
@given(mutated([FIXTURE, batch(b'OPEN,"a,b",M1\r\nCLICK,c@example.com,M,1,"u",2\n')], [b"<", b"&", b'"', b"]]>"]))
def test_mutated_responses_never_raise(body: bytes) -> None:
    assert isinstance(adapt(body), AdaptResult)


def test_a_date_column_not_named_after_its_type_is_the_rows_time_when_it_is_the_only_one() -> None:
    meta = {
        **META,
        "SOFTBOUNCE": "type, email, messageName, Delivery Date, Bounce Date",
        "OPTOUT": "type, email, messageName, Unsubscribe Date",
        "BLOCKED": "type, email, messageName, Date",
        "SMSOPTOUT": "type, mobile, messageName, Delivery Date",  # only the delivery's date: no event time
        "CLICK": "type, email, messageName, First Date, Last Date",  # two candidates: neither is guessed
    }
    rows = (
        b"SOFTBOUNCE,s@example.com,M1,1795158000,1795164000\n"
        b"OPTOUT,o@example.com,M1,1795165200\n"
        b"BLOCKED,k@example.com,M1,1795165300\n"
        b"SMSOPTOUT,447700900123,M1,1795158000\n"
        b"CLICK,c@example.com,M1,1795165500,1795169100\n"
    )
    result = adapt(batch(rows, meta))
    assert result.failures == []
    assert [e["data"]["occurred_at"] for e in result.events] == [
        "2026-11-20T08:40:00Z",
        "2026-11-20T09:00:00Z",
        "2026-11-20T09:01:40Z",
        None,
        None,
    ]


@pytest.mark.parametrize("first", ["Event Type", "", "kind"])
def test_the_first_column_is_the_type_whatever_the_meta_calls_it(first: str) -> None:
    meta = {**META, "CLICK": f"{first}, email, Click Date"}
    result = adapt(batch(b"CLICK,c@example.com,1795162000\n", meta))
    assert result.failures == []
    assert summary(result) == [("email.clicked", "c@example.com", "2026-11-20T08:06:40Z", "CLICK")]
