"""Sinks: each reads espwire.events in its own consumer group and writes one destination, idempotent by event id."""
