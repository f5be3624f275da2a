"""Assembles the pipeline's optional stages (dedupe store, enrichers) from the configuration."""

from __future__ import annotations

from espwire.config import Settings
from espwire.topics import Topics
from processors.pipeline import Pipeline


async def build_stages(settings: Settings) -> tuple[Pipeline, list[object]]:
    return Pipeline(Topics(settings.kafka.topic_prefix)), []
