"""Dedupe metrics: store latency and errors (recorded by the stores), duplicates and conflicts (by the pipeline).

Every event dedupe keeps from the output is counted here, so a drop is never silent.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

STORE_SECONDS = Histogram(
    "espwire_dedupe_store_seconds",
    "Time of one batched dedupe store call",
    ["store", "operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
STORE_UP = Gauge(
    "espwire_dedupe_store_up",
    "1 while the dedupe store answers, 0 while it does not (the processor pauses, or passes events undeduped)",
    ["store"],
    multiprocess_mode="livemin",
)
STORE_ERRORS = Counter("espwire_dedupe_store_errors_total", "Dedupe store calls that failed", ["store", "operation"])
DUPLICATES_DROPPED = Counter(
    "espwire_dedupe_duplicates_dropped_total", "Events dropped as already published", ["provider", "source"]
)
CONFLICTS = Counter(
    "espwire_dedupe_conflicts_total",
    "Events whose id was published before with other content (dead-lettered)",
    ["provider", "source"],
)
