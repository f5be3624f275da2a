"""The processors' Prometheus metrics: what came in, what went out, and everything dropped or dead-lettered."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECORDS_IN = Counter("espwire_processor_records_total", "Raw records consumed", ["provider"])
EVENTS_OUT = Counter("espwire_processor_events_total", "Canonical events published", ["provider", "type"])
UNKNOWN_TYPES = Counter(
    "espwire_processor_unknown_events_total", "Events of a type the adapter does not map", ["provider"]
)
DEAD_LETTERS = Counter("espwire_processor_dead_letters_total", "Records sent to the dead-letter topic", ["reason"])
BATCH_SECONDS = Histogram(
    "espwire_processor_batch_seconds",
    "Time to process one consumed batch, publish included",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LAG = Gauge("espwire_processor_consumer_lag", "Records behind the end of espwire.raw", ["partition"])
