"""enrich_all: timing per enricher, failures become notes, no event is ever lost."""

from __future__ import annotations

from pathlib import Path

from espwire.event import EVENT_ADAPTER
from processors.enrich import enrich_all
from processors.enrich.metrics import ENRICH_ERRORS, ENRICH_SECONDS
from tests.unit.processors.enrich.conftest import make_event


class Exploding:
    name = "exploding"

    async def enrich_batch(self, events: list[dict[str, object]]) -> None:
        raise RuntimeError("boom")


class Tagging:
    name = "tagging"

    async def enrich_batch(self, events: list[dict[str, object]]) -> None:
        for event in events:
            event["data"]["mailbox_provider"] = "tagged"  # type: ignore[index]


def _sample(name: str, enricher: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, {"enricher": enricher}) or 0.0


async def test_a_failing_enricher_leaves_a_note_and_the_next_one_still_runs() -> None:
    events = [make_event(n=n) for n in range(3)]
    errors_before = _sample("espwire_enrich_errors_total", "exploding")
    timed_before = _sample("espwire_enrich_seconds_count", "tagging")
    await enrich_all([Exploding(), Tagging()], events)
    assert len(events) == 3
    for event in events:
        assert event["data"]["enrichment_errors"] == ["exploding: RuntimeError: boom"]
        assert event["data"]["mailbox_provider"] == "tagged"
        EVENT_ADAPTER.validate_python(event)
    assert _sample("espwire_enrich_errors_total", "exploding") == errors_before + 3
    assert _sample("espwire_enrich_seconds_count", "tagging") == timed_before + 1
    assert ENRICH_ERRORS is not None and ENRICH_SECONDS is not None


async def test_an_empty_batch_is_a_no_op() -> None:
    await enrich_all([Exploding()], [])


def test_each_enricher_is_switched_on_and_off_by_its_own_option(tmp_path: Path) -> None:
    from espwire.config import EnrichConfig
    from processors.dedupe import MemoryDedupeStore
    from processors.enrich import build_enrichers

    flags = ("user_agent", "geoip", "mailbox_provider", "bounce_class", "machine_open", "bot_click")
    every = [e.name for e in build_enrichers(EnrichConfig(), MemoryDedupeStore())]
    assert every == ["user_agent", "geoip", "mailbox_provider", "bounce_class", "machine_open", "bot_click"]
    assert build_enrichers(EnrichConfig(**dict.fromkeys(flags, False)), None) == []
    for flag in flags:
        names = [e.name for e in build_enrichers(EnrichConfig(**{flag: False}), MemoryDedupeStore())]
        assert names == [name for name in every if name != flag]
    table = tmp_path / "campaigns.csv"
    table.write_text("campaign_id,team\nc1,growth\n")
    with_table = build_enrichers(EnrichConfig(**dict.fromkeys(flags, False), campaign_csv=table), None)
    assert [e.name for e in with_table] == ["campaign_context"]
