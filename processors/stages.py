"""Assembles the pipeline's optional stages (dedupe, enrichment) from the configuration."""

from __future__ import annotations

import logging
from pathlib import Path

from espwire.config import Settings
from espwire.event import CanonicalEvent
from espwire.topics import Topics
from processors.dedupe import build_store
from processors.deduplicate import Deduplicator, EventsTopicCheck
from processors.enrich import Enricher, build_enrichers, close_enrichers, enrich_all
from processors.pipeline import Pipeline

log = logging.getLogger("espwire.processor")

# aiokafka's delivery timeout (request_timeout_ms, 40 s) and a margin: a claim's lease must outlast any
# batch its owner may still deliver (README, "The exact guarantee").
SAFE_LEASE_SECONDS = 45.0


async def build_stages(settings: Settings, bootstrap: str) -> tuple[Pipeline, list[object]]:
    """The configured pipeline, and what must be closed when the processor stops."""
    topics = Topics(settings.kafka.topic_prefix)
    closeables: list[object] = []
    dedupe = None
    if settings.dedupe.enabled:
        conf = settings.dedupe
        if conf.lease_seconds < SAFE_LEASE_SECONDS:
            log.warning(
                "dedupe.lease_seconds is below the producer's delivery timeout: a processor cut off from Kafka "
                "longer than its lease may deliver after another took its claims over (duplicates)",
                extra={"lease_seconds": conf.lease_seconds, "safe_from": SAFE_LEASE_SECONDS},
            )
        store = build_store(conf, Path(settings.datadir))
        closeables.append(store)
        dedupe = Deduplicator(
            store,
            window_seconds=conf.window_hours * 3600,
            lease_seconds=conf.lease_seconds,
            source_windows={
                s.id: s.dedupe_window_hours * 3600 for s in settings.sources if s.dedupe_window_hours is not None
            },
            on_store_error=conf.on_store_error,
            published_check=EventsTopicCheck(bootstrap, topics.events),
        )
    enrich = None
    enrichers = build_enrichers(settings.enrich, dedupe.store if dedupe is not None else None)
    if enrichers:
        enrich = EnrichmentStage(enrichers)
        closeables.append(enrich)
    return Pipeline(topics, dedupe=dedupe, enrich=enrich), closeables


class EnrichmentStage:
    """The configured enrichers as one pipeline stage (timed, and never dropping an event)."""

    def __init__(self, enrichers: list[Enricher]) -> None:
        self.enrichers = enrichers

    async def __call__(self, events: list[CanonicalEvent]) -> None:
        await enrich_all(self.enrichers, events)  # type: ignore[arg-type]

    async def close(self) -> None:
        close_enrichers(self.enrichers)
