"""Processors: espwire.raw -> adapt -> normalize -> dedupe -> enrich -> espwire.events (or espwire.dlq)."""
