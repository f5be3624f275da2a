"""The sinks' Prometheus metrics, all labelled ``sink``: every write, retry, skip and dead letter is counted."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_WRITTEN = Counter("espwire_sink_events_written_total", "Events written durably by the sink", ["sink"])
WRITE_SECONDS = Histogram(
    "espwire_sink_write_seconds",
    "Time of one successful batch write, retries excluded",
    ["sink"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_SIZE = Histogram(
    "espwire_sink_batch_size",
    "Events in one batch handed to the sink",
    ["sink"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000),
)
RETRIES = Counter(
    "espwire_sink_retries_total", "Batch writes retried because the destination was unavailable", ["sink"]
)
DEAD_LETTERS = Counter(
    "espwire_sink_dead_letters_total", "Events sent to the sink's dead-letter topic", ["sink", "reason"]
)
SKIPPED = Counter(
    "espwire_sink_events_skipped_total",
    "Events not written: filtered out, or already durable from an earlier delivery",
    ["sink", "why"],
)
READY = Gauge("espwire_sink_ready", "1 while the sink's destination accepts writes", ["sink"])
LAG = Gauge("espwire_sink_consumer_lag", "Records behind the end of espwire.events", ["sink", "partition"])
