"""The explicit registry of sink kinds: ``type`` in a ``[[sinks]]`` entry names one of these."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

from espwire.config import ConfigError, Settings, SinkConfig
from sinks.base import Sink


def _kafka_router(config: SinkConfig, settings: Settings) -> Sink:
    from sinks.kafka_router import KafkaRouterOptions, KafkaRouterSink

    return KafkaRouterSink(KafkaRouterOptions.from_config(config), settings)


def _postgres(config: SinkConfig, settings: Settings) -> Sink:
    from sinks.postgres import PostgresOptions, PostgresSink

    return PostgresSink(PostgresOptions.from_config(config))


def _files(config: SinkConfig, settings: Settings) -> Sink:
    from sinks.files import FilesOptions, FilesSink

    return FilesSink(FilesOptions.from_config(config), settings)


def _http_forward(config: SinkConfig, settings: Settings) -> Sink:
    from sinks.http_forward import HttpForwardOptions, HttpForwardSink

    return HttpForwardSink(HttpForwardOptions.from_config(config), settings)


def _suppression(config: SinkConfig, settings: Settings) -> Sink:
    from sinks.suppression import SuppressionOptions, SuppressionSink

    return SuppressionSink(SuppressionOptions.from_config(config))


def _stdout(config: SinkConfig, settings: Settings) -> Sink:
    from sinks.stdout import StdoutOptions, StdoutSink

    return StdoutSink(StdoutOptions.from_config(config))


# Imports stay inside the builders: a process running one sink does not load the others' libraries.
SINK_BUILDERS: dict[str, Callable[[SinkConfig, Settings], Sink]] = {
    "kafka_router": _kafka_router,
    "postgres": _postgres,
    "files": _files,
    "http_forward": _http_forward,
    "suppression": _suppression,
    "stdout": _stdout,
}


def build_sink(sink_config: SinkConfig, settings: Settings) -> Sink:
    """The sink for one ``[[sinks]]`` entry; a bad option is a ConfigError naming ``sinks.<name>.<key>``."""
    try:
        return SINK_BUILDERS[sink_config.type](sink_config, settings)
    except ValidationError as exc:
        lines = [f"sinks.{sink_config.name} ({sink_config.type}): {exc.error_count()} problem(s)"]
        for item in exc.errors():
            path = ".".join(str(p) for p in item["loc"]) or "(top level)"
            lines.append(f"  sinks.{sink_config.name}.{path}: {item['msg']}")
        raise ConfigError("\n".join(lines)) from None


def sink_config(settings: Settings, name: str) -> SinkConfig:
    """The ``[[sinks]]`` entry called ``name``."""
    for config in settings.sinks:
        if config.name == name:
            return config
    raise ConfigError(f"no [[sinks]] entry is named {name!r} (have: {', '.join(s.name for s in settings.sinks)})")
