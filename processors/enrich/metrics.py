"""Enrichment metrics: time per enricher per batch, and enricher failures (each also noted on the event)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ENRICH_SECONDS = Histogram(
    "espwire_enrich_seconds",
    "Time one enricher spent on one batch",
    ["enricher"],
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
ENRICH_ERRORS = Counter(
    "espwire_enrich_errors_total", "Events an enricher could not enrich (noted in data.enrichment_errors)", ["enricher"]
)
