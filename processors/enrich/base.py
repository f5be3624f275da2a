"""The enricher contract and the loop that applies enrichers to a batch.

Guarantees: an enricher only adds fields; none can drop or stall an event. An exception from one event
is noted on that event (``data.enrichment_errors``: "enricher: error") and the batch goes on; an
exception from a whole batch (a store outage) is noted on every event of it. Each enricher's time per
batch is a histogram sample labelled with its name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from processors.enrich import metrics

log = logging.getLogger("espwire.enrich")

# Events are plain dicts (espwire/event.py says why); enrichers read and write them as such.
Event = dict[str, Any]


class Enricher(Protocol):
    name: str

    async def enrich_batch(self, events: list[Event]) -> None:
        """Adds fields to the events in place; never removes an event."""
        ...


def note_error(event: Event, enricher: str, error: BaseException | str) -> None:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    note = f"{enricher}: {text}"[:300]
    data = event.get("data")
    if isinstance(data, dict):
        data.setdefault("enrichment_errors", []).append(note)


async def enrich_all(enrichers: Sequence[Enricher], events: list[Event]) -> None:
    """Applies each enricher to the whole batch, in order, timed; failures become notes, never losses."""
    if not events:
        return
    for enricher in enrichers:
        started = time.perf_counter()
        try:
            await enricher.enrich_batch(events)
        except Exception as exc:
            log.warning("enricher failed on a batch", extra={"enricher": enricher.name, "error": repr(exc)[:300]})
            metrics.ENRICH_ERRORS.labels(enricher.name).inc(len(events))
            for event in events:
                note_error(event, enricher.name, exc)
        metrics.ENRICH_SECONDS.labels(enricher.name).observe(time.perf_counter() - started)


def per_event_failure(enricher: str, event: Event, exc: Exception) -> None:
    """An enricher's failure on one event: counted and noted; the caller moves on to the next event."""
    metrics.ENRICH_ERRORS.labels(enricher).inc()
    note_error(event, enricher, exc)
