"""serialise_event: the record the pipeline publishes for an event (key, value, CloudEvents headers)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from processors.pipeline import event_headers, serialise_event


def event(subject: str | None) -> dict[str, Any]:
    value: dict[str, Any] = {
        "specversion": "1.0",
        "id": "0b0e2c9e-1f1a-4c1e-9d7b-2f0f5d6a7e8f",
        "source": "/hooks/sp-main",
        "type": "email.delivered",
        "time": "2026-11-20T08:00:00Z",
        "datacontenttype": "application/json",
        "data": {"provider": "sparkpost", "raw": {"b": 1, "a": "é"}},
    }
    if subject is not None:
        value["subject"] = subject
    return value


@pytest.mark.parametrize("subject", ["ann@example.com", "Zoë@example.com", "", None])
def test_record_is_keyed_by_recipient_with_the_cloudevents_headers(subject: str | None) -> None:
    ev = event(subject)
    record = serialise_event("espwire.events", ev)
    assert record.topic == "espwire.events"
    assert record.key == (subject.encode() if subject else ev["id"].encode())
    assert orjson.loads(record.value) == ev
    assert record.headers == event_headers(ev)  # type: ignore[arg-type]
