"""A recipient is who it names, without the whitespace around it: one person is one Kafka key and one
suppression entry, and a blank id is no id (Recurly Engage then falls back to the anonymous one)."""

from __future__ import annotations

import json

import pytest

from processors.adapters import ADAPTERS
from tests.support.adapter_requests import adapted, only, request


@pytest.mark.parametrize(
    ("provider", "body", "content_type"),
    [
        ("sparkpost", [{"msys": {"message_event": {"type": "delivery", "rcpt_to": " a@x.com\t"}}}], "application/json"),
        ("falconide", [{"TRANSID": "1", "EVENT": "sent", "EMAIL": " a@x.com ", "TIMESTAMP": 1795161700}], "x"),
        ("ipost", {"event_name": "open", "contact": {"email": " a@x.com "}}, "application/json"),
    ],
)
def test_whitespace_around_an_address_is_not_part_of_it(provider: str, body: object, content_type: str) -> None:
    event = only(adapted(ADAPTERS[provider], request(provider, json.dumps(body), content_type=content_type)))
    assert event["subject"] == "a@x.com"
    assert event["data"]["recipient"]["email"] == "a@x.com"
    assert " a@x.com" in json.dumps(event["data"]["raw"])  # raw keeps what was sent


@pytest.mark.parametrize(("user_id", "subject"), [(" ", "anon-1"), ("", "anon-1"), (" 42 ", "42"), (42, "42")])
def test_a_blank_recurly_user_id_falls_back_to_the_anonymous_id(user_id: object, subject: str) -> None:
    body = json.dumps(
        [{"type": "prompt", "event": "Impression", "ts": 1795161700, "user_id": user_id, "anonymous_user_id": "anon-1"}]
    )
    event = only(adapted(ADAPTERS["recurly_engage"], request("recurly_engage", body)))
    assert event["subject"] == subject
