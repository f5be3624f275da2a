"""Every enricher on over the real adapters' output for every provider fixture: nothing lost, nothing
invalid, no enricher error, explicit bounce severities untouched."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet  # type: ignore[import-untyped]

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


DOCUMENTATION_NETWORKS = ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"]  # RFC 5737: every fixture IP


@pytest.fixture(scope="module")
def documentation_geo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A City database that places the RFC 5737 networks the fixtures use (one country each)."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City", languages=["en"])
    for network, (country, city) in zip(
        DOCUMENTATION_NETWORKS, [("DE", "Berlin"), ("FR", "Paris"), ("IN", "Mumbai")], strict=True
    ):
        writer.insert_network(IPSet([network]), {"country": {"iso_code": country}, "city": {"names": {"en": city}}})
    path = tmp_path_factory.mktemp("geo") / "documentation.mmdb"
    writer.to_db_file(str(path))
    return path


ENGAGEMENT = [case for case in CASES if any(e["type"] in ("email.opened", "email.clicked") for e in adapted(case))]


@pytest.mark.parametrize("case", ENGAGEMENT, ids=[case.id for case in ENGAGEMENT])
async def test_fixture_opens_and_clicks_carry_user_agent_geo_machine_open_and_bot_click(
    case: Case, documentation_geo_db: Path
) -> None:
    # The fixtures' addresses are documentation ones, which the default skips as reserved; a
    # database that knows them (geoip_lookup_reserved) shows the whole enrichment on them.
    events = adapted(case)
    store = MemoryDedupeStore()
    config = EnrichConfig(geoip_city_db=documentation_geo_db, geoip_lookup_reserved=True)
    enrichers = build_enrichers(config, store)
    try:
        await enrich_all(enrichers, events)
    finally:
        close_enrichers(enrichers)
        await store.close()
    engagement = [e for e in events if e["type"] in ("email.opened", "email.clicked")]
    assert engagement
    for event in engagement:
        data = event["data"]
        client = data.get("client") or {}
        if client.get("user_agent"):
            assert client.get("device"), client
        if client.get("ip"):
            assert data["geo"]["country"] in ("DE", "FR", "IN"), data.get("geo")
        if event["type"] == "email.opened":
            assert isinstance(data["open"]["machine"], bool)
        else:
            assert isinstance(data["click"]["bot"], bool)
