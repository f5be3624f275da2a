"""Every enricher on over the real adapters' output for every provider fixture: nothing lost, nothing
invalid, no enricher error, explicit bounce severities untouched."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from espwire.config import EnrichConfig
from espwire.event import EVENT_ADAPTER
from processors.adapters import ADAPTERS
from processors.dedupe import MemoryDedupeStore
from processors.enrich import build_enrichers, close_enrichers, enrich_all
from tests.fixture_cases import PROVIDER_NAMES, Case, load_cases

CASES = [case for provider in PROVIDER_NAMES for case in load_cases(provider) if case.meta.get("expect_events")]


def adapted(case: Case) -> list[dict[str, Any]]:
    return [dict(event) for event in ADAPTERS[case.provider].adapt(case.envelope()).events]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_enrichers_on_fixture_events(case: Case) -> None:
    events = adapted(case)
    assert events
    before = copy.deepcopy(events)
    store = MemoryDedupeStore()
    enrichers = build_enrichers(EnrichConfig(), store)
    try:
        await enrich_all(enrichers, events)
    finally:
        close_enrichers(enrichers)
        await store.close()
    assert [e["id"] for e in events] == [e["id"] for e in before]
    for event, original in zip(events, before, strict=True):
        data = event["data"]
        assert "enrichment_errors" not in data, data["enrichment_errors"]
        EVENT_ADAPTER.validate_python(event)
        orjson.dumps(event)
        assert data["raw"] == original["data"]["raw"]
        if event["type"] == "email.opened":
            assert isinstance(data["open"]["machine"], bool)
        if event["type"] == "email.clicked":
            assert isinstance(data["click"]["bot"], bool)
        given = original["data"].get("bounce", {}).get("severity")
        if given not in (None, "undetermined"):
            assert data["bounce"]["severity"] == given
        if "bounce" in data:
            assert data["bounce"]["category"]
