from __future__ import annotations

import copy

import pytest
from pydantic import ValidationError

from sinks.privacy import PrivacyConfig, Redactor, normalise_email
from tests.unit.sinks.factory import make_event


def test_keep_everything_returns_the_events_untouched() -> None:
    events = [make_event(1)]
    assert Redactor(PrivacyConfig()).apply(events) is events


def test_hash_is_keyed_stable_and_normalised_and_raw_goes() -> None:
    redactor = Redactor(PrivacyConfig(email="hash", ip="drop", hash_key="k1"))  # type: ignore[arg-type]
    event = make_event(1, email="User1@Example.com")
    before = copy.deepcopy(event)
    out = redactor.apply_one(event)
    assert event == before, "the input is not changed"
    hashed = out["data"]["recipient"]["email"]
    assert hashed == redactor.digest("user1@example.com") and "@" not in hashed
    assert out["subject"] == hashed, "the subject follows the email policy"
    assert "ip" not in out["data"]["client"] and out["data"]["client"]["user_agent"]
    assert out["data"]["raw"] is None, "raw holds the address in provider form: dropped"
    other_key = Redactor(PrivacyConfig(email="hash", hash_key="k2"))  # type: ignore[arg-type]
    assert other_key.apply_one(event)["data"]["recipient"]["email"] != hashed
    assert redactor.email(" USER1@example.com") == hashed


def test_hashing_needs_a_key_and_unknown_keys_are_refused() -> None:
    with pytest.raises(ValidationError):
        PrivacyConfig(phone="hash")
    with pytest.raises(ValidationError):
        PrivacyConfig(emial="drop")  # type: ignore[call-arg]


def test_drop_phone_subject() -> None:
    event = make_event(1, email="")
    event["data"]["recipient"] = {"phone": "+44 7700 900123"}
    event["subject"] = "+44 7700 900123"
    out = Redactor(PrivacyConfig(phone="drop")).apply_one(event)
    assert "subject" not in out and out["data"]["recipient"] == {}


def test_an_address_in_display_form_is_the_address() -> None:
    assert normalise_email(' "Doe, Jane" <Jane.Doe@Example.com> ') == "jane.doe@example.com"
    assert normalise_email("Jane+News@Example.com") == "jane+news@example.com"
    assert normalise_email("<not an address>") == "<not an address>"
    redactor = Redactor(PrivacyConfig(email="hash", hash_key="k1"))  # type: ignore[arg-type]
    assert redactor.email("Jane <jane@example.com>") == redactor.email("JANE@example.com")
