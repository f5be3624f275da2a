"""Bounce categories: a table of real-looking SMTP replies, provider classes, and the severity rule."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from processors.enrich.bounce_class import CATEGORIES, BounceClassEnricher, classify, parse_codes, severity_for
from tests.unit.processors.enrich.conftest import make_event

TABLE = Path(__file__).parents[4] / "tests" / "data" / "enrich" / "smtp_responses.csv"
with TABLE.open(encoding="utf-8", newline="") as handle:
    ROWS = list(csv.DictReader(handle))


def test_the_table_is_big_enough_and_uses_known_categories() -> None:
    assert len(ROWS) >= 50
    assert {row["category"] for row in ROWS} <= set(CATEGORIES)


def best_severity(bounce: dict[str, Any]) -> str:
    """The provider's severity, else espwire's reading of the reply."""
    return str(bounce.get("inferred_severity") or bounce["severity"])


@pytest.mark.parametrize("row", ROWS, ids=[f"{n}-{r['style']}" for n, r in enumerate(ROWS)])
async def test_smtp_response(row: dict[str, str]) -> None:
    assert parse_codes(row["response"]) == (row["smtp_status"] or None, row["enhanced_status"] or None)
    event = make_event("email.bounced", bounce={"severity": "undetermined", "reason": row["response"]})
    await BounceClassEnricher().enrich_batch([event])
    bounce = event["data"]["bounce"]
    assert bounce["category"] == row["category"]
    assert best_severity(bounce) == row["severity"]
    assert bounce.get("smtp_status") == (row["smtp_status"] or None)
    assert bounce.get("enhanced_status") == (row["enhanced_status"] or None)


async def _enrich(provider: str, bounce: dict[str, Any], **data: Any) -> dict[str, Any]:
    event = make_event("email.bounced", provider=provider, bounce=bounce, **data)
    await BounceClassEnricher().enrich_batch([event])
    result: dict[str, Any] = event["data"]["bounce"]
    return result


async def test_explicit_severity_is_never_overridden() -> None:
    bounce = await _enrich("falconide", {"severity": "soft", "reason": "550 5.1.1 user unknown"})
    assert bounce == {
        "severity": "soft",
        "category": "mailbox_unknown",
        "reason": "550 5.1.1 user unknown",
        "smtp_status": "550",
        "enhanced_status": "5.1.1",
    }


async def test_given_codes_are_kept_and_used() -> None:
    bounce = await _enrich("ipost", {"smtp_status": "452", "enhanced_status": "4.2.2", "reason": "whatever"})
    assert (bounce["category"], best_severity(bounce), bounce["smtp_status"]) == ("mailbox_full", "soft", "452")


async def test_sparkpost_class_wins_over_text() -> None:
    bounce = await _enrich(
        "sparkpost",
        {"severity": "block", "class_code": "51", "reason": "550 5.1.1 user unknown", "category": "spam_block"},
    )
    assert (bounce["category"], best_severity(bounce)) == ("spam_block", "block")
    block = await _enrich(
        "sparkpost", {"severity": "block", "class_code": "50", "reason": "554 5.7.1 blocked using zen.spamhaus.org"}
    )
    assert (block["category"], best_severity(block)) == ("spam_block", "block")
    generic = await _enrich(
        "sparkpost", {"severity": "undetermined", "class_code": "1", "reason": "552 5.2.2 over quota"}
    )
    assert (generic["category"], best_severity(generic)) == ("mailbox_full", "soft")
    # Smart Send suppression (26) is SparkPost's own hold, whatever the 554 beside it says.
    held = await _enrich(
        "sparkpost", {"severity": "admin", "class_code": "26", "reason": "554 5.7.1 recipient suppressed"}
    )
    assert (held["category"], best_severity(held)) == ("admin", "admin")


async def test_falconide_reason_id_and_pure360_trigger() -> None:
    falconide = await _enrich(
        "falconide", {"severity": "undetermined", "class_code": "342", "reason": "The email account does not exist"}
    )
    assert (falconide["category"], best_severity(falconide)) == ("mailbox_unknown", "hard")
    # The id alone decides when the reply says nothing a rule knows.
    by_id = await _enrich("falconide", {"severity": "undetermined", "class_code": "342", "reason": "Delivery failed"})
    assert by_id["category"] == "mailbox_unknown"
    unknown_id = await _enrich(
        "falconide", {"severity": "undetermined", "class_code": "9", "reason": "Delivery failed"}
    )
    assert unknown_id["category"] == "undetermined"
    pure360 = await _enrich("pure360", {"severity": "block"}, provider_event_type="BLOCKED")
    assert (pure360["category"], best_severity(pure360)) == ("policy_block", "block")


async def test_deferral_without_severity_gets_soft() -> None:
    event = make_event("email.deferred", bounce={"reason": "421 4.7.0 Try again later"})
    await BounceClassEnricher().enrich_batch([event])
    assert event["data"]["bounce"]["inferred_severity"] == "soft"


def test_severity_rule() -> None:
    assert severity_for("mailbox_unknown", "4") == "soft"
    assert severity_for("spam_block", "5") == "block"
    assert severity_for("undetermined", None) == "undetermined"
    assert severity_for("undetermined", "5") == "hard"
    assert classify("", None, None) == ("undetermined", None)


async def test_every_sparkpost_class_ends_in_the_one_vocabulary() -> None:
    """The adapter names SparkPost's classes in SparkPost's words (no_rcpt, generic_bounce, ...); with the
    enricher on, every bounce's category is one of CATEGORIES, whatever the class and with no reply text."""
    from espwire.envelope import Envelope
    from processors.adapters import ADAPTERS

    body = (TABLE.parents[1] / "providers" / "sparkpost" / "bounce_classes.body").read_bytes()
    envelope = Envelope("sp", "sparkpost", "r", "2026-11-24T00:00:00Z", "POST", "application/json", body)
    events: list[Any] = ADAPTERS["sparkpost"].adapt(envelope).events
    for event in events:
        for field in ("reason", "smtp_status", "enhanced_status"):  # the class alone
            event["data"]["bounce"].pop(field, None)
    await BounceClassEnricher().enrich_batch(events)
    categories = {e["data"]["bounce"]["class_code"]: e["data"]["bounce"]["category"] for e in events}
    assert len(categories) >= 19
    assert set(categories.values()) <= set(CATEGORIES), categories
    assert categories["10"] == "mailbox_unknown" and categories["30"] == "undetermined"
