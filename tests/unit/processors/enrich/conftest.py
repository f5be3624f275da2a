"""Canonical-event builders for enricher tests (plain dicts, as the pipeline hands them over)."""

from __future__ import annotations

from typing import Any

import pytest


def make_event(type_: str = "email.opened", n: int = 0, **data: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "provider": "sparkpost",
        "source_id": "sp-main",
        "provider_event_type": type_.split(".")[-1],
        "provider_event_id": str(n),
        "occurred_at": "2026-11-20T08:00:00Z",
        "received_at": "2026-11-20T08:00:01Z",
        "time_source": "provider",
        "recipient": {"email": "ann@example.com"},
        "raw": {},
    }
    body.update(data)
    return {
        "specversion": "1.0",
        "id": f"evt-{n}",
        "source": "/hooks/sp-main",
        "type": type_,
        "time": body["occurred_at"] or body["received_at"],
        "datacontenttype": "application/json",
        "data": body,
    }


@pytest.fixture
def event_factory() -> Any:
    return make_event
