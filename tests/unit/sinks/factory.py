"""Canonical events for sink tests, valid per espwire.event.EVENT_ADAPTER, and their Kafka records."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from espwire.event import EVENT_ADAPTER

NAMESPACE = uuid.UUID("6f1c1f5e-4f0a-4f57-9d55-1d1f0c7e2a10")
BASE_TIME = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def make_event(
    i: int,
    *,
    type: str = "email.delivered",
    provider: str = "sparkpost",
    source_id: str = "sparkpost",
    email: str | None = None,
    time: datetime | None = None,
    salt: str = "",
    **data: Any,
) -> dict[str, Any]:
    """Event number ``i``: a distinct id, recipient and time for each ``i`` (and ``salt``)."""
    email = email if email is not None else f"user{i}@example.com"
    moment = time or BASE_TIME + timedelta(seconds=i)
    payload = {"event_id": f"{salt}{i}", "rcpt_to": email, "type": type, "ip_address": "203.0.113.7"}
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(uuid.uuid5(NAMESPACE, f"{salt}{provider}-{type}-{i}")),
        "source": f"/hooks/{source_id}",
        "type": type,
        "time": iso(moment),
        "datacontenttype": "application/json",
        "subject": email,
        "data": {
            "provider": provider,
            "source_id": source_id,
            "request_id": f"req-{i}",
            "provider_event_type": type.split(".")[-1],
            "provider_event_id": f"{salt}{i}",
            "occurred_at": iso(moment),
            "received_at": iso(moment + timedelta(seconds=2)),
            "time_source": "provider",
            "recipient": {"email": email},
            "client": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"},
            "message": {"message_id": f"msg-{i}", "subject": "Your November newsletter", "from": "news@shop.example"},
            "campaign": {"id": "cmp-42", "name": "November newsletter"},
            "tags": ["newsletter"],
            **data,
            "raw": payload,
        },
    }
    EVENT_ADAPTER.validate_python(event)
    return event


def event_record(event: dict[str, Any]) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    """The record the processor puts on espwire.events for ``event``."""
    subject = event.get("subject")
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", event["id"].encode()),
        ("ce_source", event["source"].encode()),
        ("ce_type", event["type"].encode()),
        ("ce_time", event["time"].encode()),
        ("content-type", b"application/cloudevents+json"),
    ]
    return (subject.encode() if subject else None, orjson.dumps(event), headers)
