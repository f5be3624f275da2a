"""enrich_all: timing per enricher, failures become notes, no event is ever lost."""

from __future__ import annotations

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
