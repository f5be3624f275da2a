"""The `espwire` command: one entry point for every stage, and `dev` for all of them on one machine."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from espwire.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:  # the commands import what they need when they run: `espwire --help` stays quick
    from processors.dead_letter import Selection

log = logging.getLogger("espwire")


def _settings(args: argparse.Namespace) -> Settings:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"espwire: configuration error\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None
    updates: dict[str, object] = {}
    gateway_updates = {}
    if getattr(args, "port", None):
        gateway_updates["port"] = args.port
    if getattr(args, "host", None):
        gateway_updates["host"] = args.host
    if gateway_updates:
        updates["gateway"] = settings.gateway.model_copy(update=gateway_updates)
    if getattr(args, "data_dir", None):
        updates["datadir"] = Path(args.data_dir)
    return settings.model_copy(update=updates) if updates else settings


def _bootstrap(settings: Settings) -> str:
    if not settings.kafka.bootstrap:
        print(
            "espwire: no Kafka to talk to: set kafka.bootstrap or ESPWIRE_KAFKA_BOOTSTRAP (or use `espwire dev`)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return settings.kafka.bootstrap


async def _until_signalled(start: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await start(stop)


# -- commands ------------------------------------------------------------------------------------
def cmd_dev(args: argparse.Namespace) -> int:
    from espwire.dev import run_dev

    settings = _settings(args)
    return run_dev(settings, kafka_port=args.kafka_port)


def cmd_gateway(args: argparse.Namespace) -> int:
    from espwire.runtime import run
    from espwire.topics import Topics, ensure_topics
    from ingest_gateway.app import run_workers

    settings = _settings(args)
    bootstrap = _bootstrap(settings)
    with contextlib.suppress(Exception):  # the gateway spools while Kafka is away; topics come later
        run(
            ensure_topics(
                bootstrap,
                Topics(settings.kafka.topic_prefix).core(),
                settings.kafka.partitions,
                settings.kafka.replication,
            )
        )
    run_workers(settings, bootstrap, args.workers)
    return 0


async def _with_metrics(args: argparse.Namespace, start: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Runs a service with its /metrics listener beside it (port 0: none)."""
    from espwire.metrics_server import start_metrics_server

    ready = getattr(args, "ready", None)
    runner = await start_metrics_server(args.metrics_host, args.metrics_port, ready) if args.metrics_port else None
    try:
        await _until_signalled(start)
    finally:
        if runner is not None:
            await runner.cleanup()


def cmd_process(args: argparse.Namespace) -> int:
    from espwire.runtime import run
    from processors.consumer import ProcessorStatus, run_processor

    settings = _settings(args)
    bootstrap = _bootstrap(settings)
    status = ProcessorStatus()
    args.ready = lambda: status.ready
    run(_with_metrics(args, lambda stop: run_processor(settings, bootstrap, stop, status=status)))
    return 0


def cmd_sink(args: argparse.Namespace) -> int:
    from espwire.runtime import run
    from sinks.registry import sink_config
    from sinks.runner import SinkStatus, run_sink

    settings = _settings(args)
    bootstrap = _bootstrap(settings)
    try:
        config = sink_config(settings, args.name)
    except (KeyError, ValueError, ConfigError) as exc:
        names = ", ".join(s.name for s in settings.sinks) or "none configured"
        print(f"espwire: no sink named {args.name!r} ({names}): {exc}", file=sys.stderr)
        return 2
    status = SinkStatus()
    args.ready = lambda: status.ready
    run(_with_metrics(args, lambda stop: run_sink(settings, config, bootstrap, stop, status=status)))
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    """A throwaway consumer group on espwire.events (new events, or all with --from-beginning), printed
    through the stdout sink."""
    import uuid

    from espwire.config import SinkConfig
    from espwire.runtime import run
    from sinks.runner import run_sink

    settings = _settings(args)
    bootstrap = _bootstrap(settings)
    extra = {
        "types": args.type or [],
        "format": args.format,
        "start_from": "earliest" if args.from_beginning else "latest",
    }
    config = SinkConfig(name=f"tail-{uuid.uuid4().hex[:8]}", type="stdout", **extra)
    run(_until_signalled(lambda stop: run_sink(settings, config, bootstrap, stop)), log_level="WARNING")
    return 0


def _postgres_sinks(settings: Settings) -> list[tuple[str, str, str]]:
    """(name, dsn, schema) of every sink that keeps its data in PostgreSQL."""
    found = []
    for sink in settings.sinks:
        if sink.type in ("postgres", "suppression"):
            options = sink.model_extra or {}
            found.append((sink.name, str(options.get("dsn", "")), str(options.get("schema", "public"))))
    return found


def cmd_db_migrate(args: argparse.Namespace) -> int:
    from espwire.runtime import run
    from sinks.postgres import migrate

    settings = _settings(args)
    targets = _postgres_sinks(settings)
    if args.dsn:
        targets = [("--dsn", args.dsn, args.schema)]
    if not targets:
        print("espwire: no postgres or suppression sink configured, and no --dsn given", file=sys.stderr)
        return 2
    for name, dsn, schema in targets:
        applied = run(migrate(dsn, schema), log_level="WARNING")
        print(f"{name}: schema {schema}: {', '.join(applied) if applied else 'up to date'}")
    return 0


def cmd_suppressions_export(args: argparse.Namespace) -> int:
    from espwire.runtime import run
    from sinks.suppression import export_csv

    settings = _settings(args)
    sink = next((s for s in settings.sinks if s.type == "suppression"), None)
    if sink is None:
        print("espwire: no suppression sink configured", file=sys.stderr)
        return 2
    text = run(export_csv(sink, since=args.since), log_level="WARNING")
    if args.output and args.output != "-":
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from espwire.clock import parse_utc
    from espwire.runtime import run
    from processors.dead_letter import Selection, replay_dead_letters

    settings = _settings(args)
    selection = Selection(parse_utc(args.since) if args.since else None, args.source, args.reason, args.stale)
    if args.list:
        return _list_dead_letters(settings, selection)
    count = run(replay_dead_letters(settings, _bootstrap(settings), selection))
    print(f"re-submitted {count} dead-letter record(s) to {settings.kafka.topic_prefix}.raw")
    return 0


def _list_dead_letters(settings: Settings, selection: Selection) -> int:
    import orjson

    from espwire.runtime import run
    from processors.dead_letter import list_dead_letters

    async def show() -> int:
        count = 0
        async for letter in list_dead_letters(settings, _bootstrap(settings), selection):
            sys.stdout.write(orjson.dumps(letter).decode() + "\n")
            count += 1
        return count

    count = run(show(), log_level="WARNING")
    print(f"{count} dead letter(s) on {settings.kafka.topic_prefix}.dlq", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from espwire.runtime import run
    from ingest_gateway.file_import import ImportRefused, import_files, plan_import

    settings = _settings(args)
    paths = [Path(name) for name in args.files]
    try:
        envelopes = plan_import(settings, args.source, args.channel, paths)
    except (ImportRefused, OSError) as exc:
        print(f"espwire import: {exc}", file=sys.stderr)
        return 2
    run(import_files(settings, _bootstrap(settings), envelopes))
    print(f"imported {len(paths)} file(s) as {len(envelopes)} record(s) on {settings.kafka.topic_prefix}.raw")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    from sinks.registry import build_sink

    try:
        settings = load_settings(args.file)
        # A sink's own options are checked when it is built (side-effect free: it connects in start()).
        for sink in settings.sinks:
            build_sink(sink, settings)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(f"{args.file}: OK ({len(settings.sources)} source(s), {len(settings.sinks)} sink(s))")
    for source in settings.sources:
        kinds = ", ".join(rule.type for rule in source.auth)
        print(f"  /hooks/{source.id}  provider={source.provider}  auth={kinds}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    import orjson

    from espwire.event import event_json_schema

    sys.stdout.write(orjson.dumps(event_json_schema(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _metrics_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--metrics-port", type=int, default=9100, help="/metrics, /healthz, /readyz (0: off)")
    command.add_argument("--metrics-host", default="0.0.0.0", help="address of the metrics listener")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="espwire",
        description="Webhooks from email and engagement providers in; one clean CloudEvents stream out.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str, func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--config", help="TOML file (default: $ESPWIRE_CONFIG, else deploy/espwire.example.toml)")
        command.set_defaults(func=func)
        return command

    dev = add("dev", "Run the whole pipeline on this machine with an embedded Kafka-compatible broker.", cmd_dev)
    dev.add_argument("--port", type=int, help="gateway port (default 8080)")
    dev.add_argument("--kafka-port", type=int, default=19092, help="embedded broker port (default 19092)")
    dev.add_argument("--data-dir", help="spool, dedupe store and file sink output (default ./espwire-data)")

    gateway = add("gateway", "Run the ingest gateway (needs kafka.bootstrap).", cmd_gateway)
    gateway.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    gateway.add_argument("--port", type=int, help="listen port (default from the config, 8080)")
    gateway.add_argument("--host", help="listen address (default from the config)")
    gateway.add_argument("--data-dir", help="where the spool lives")

    process = add(
        "process", "Run a processor: espwire.raw -> canonical events on espwire.events (or espwire.dlq).", cmd_process
    )
    _metrics_options(process)

    sink = add(
        "sink", "Run one configured sink: espwire.events -> its destination, exactly once by event id.", cmd_sink
    )
    sink.add_argument("name", help="the sink's name in [[sinks]]")
    _metrics_options(sink)

    tail = add("tail", "Print events as they arrive (pretty on a terminal, JSON lines when piped).", cmd_tail)
    tail.add_argument("--type", action="append", help="only this type or glob (e.g. email.bounced, 'prompt.*')")
    tail.add_argument("--format", choices=["auto", "pretty", "json"], default="auto")
    tail.add_argument("--from-beginning", action="store_true", help="every event still on the topic, not only new ones")

    imports = add(
        "import",
        "Put files fetched from a provider (Pure360 FTP log or SOAP getBatch response, Recurly Engage S3 export) "
        "on espwire.raw, to be processed like webhooks.",
        cmd_import,
    )
    imports.add_argument("--source", required=True, help="the source id the events belong to (its provider decides)")
    imports.add_argument("--channel", required=True, help="ftp or soap (Pure360), s3 (Recurly Engage)")
    imports.add_argument("files", nargs="+", help="files to import, in order")

    db = sub.add_parser("db", help="Database tools.")
    db_sub = db.add_subparsers(dest="what", required=True, metavar="WHAT")
    migrate = db_sub.add_parser("migrate", help="Apply the PostgreSQL migrations of every postgres/suppression sink.")
    migrate.add_argument("--config")
    migrate.add_argument("--dsn", help="migrate this database instead of the configured sinks'")
    migrate.add_argument("--schema", default="public")
    migrate.set_defaults(func=cmd_db_migrate)

    suppressions = sub.add_parser("suppressions", help="The cross-provider suppression list.")
    sup_sub = suppressions.add_subparsers(dest="what", required=True, metavar="WHAT")
    export = sup_sub.add_parser("export", help="Write the suppression list as CSV.")
    export.add_argument("--config")
    export.add_argument("--since", help="only addresses last seen at or after this RFC 3339 time")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    export.set_defaults(func=cmd_suppressions_export)

    replay = sub.add_parser("replay", help="Re-submit records for another try.")
    replay_sub = replay.add_subparsers(dest="what", required=True, metavar="WHAT")
    dlq = replay_sub.add_parser("dlq", help="Re-submit dead-letter records to espwire.raw once the adapter is fixed.")
    dlq.add_argument("--config")
    dlq.add_argument("--since", help="only records dead-lettered at or after this RFC 3339 time")
    dlq.add_argument("--source", help="only records of this source id")
    dlq.add_argument("--reason", help="only records dead-lettered for this reason (e.g. adapter_error)")
    dlq.add_argument(
        "--stale",
        action="store_true",
        help="only records an older version of their provider's adapter refused (what an upgrade may now read)",
    )
    dlq.add_argument(
        "--list",
        action="store_true",
        help="print the matching dead letters (reason, detail, key, size) as JSON lines instead of re-submitting",
    )
    dlq.set_defaults(func=cmd_replay)

    config = sub.add_parser("config", help="Configuration tools.")
    config_sub = config.add_subparsers(dest="what", required=True, metavar="WHAT")
    check = config_sub.add_parser("check", help="Validate a TOML file and list its sources.")
    check.add_argument("file")
    check.set_defaults(func=cmd_config_check)

    schema = sub.add_parser("schema", help="Print the canonical event's JSON Schema.")
    schema.set_defaults(func=cmd_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except Exception as exc:
        # What an operator can fix (a port in use, a server not there, a bad argument): one line, not a
        # traceback. ESPWIRE_DEBUG=1 shows the traceback.
        if not _operational(exc) or os.environ.get("ESPWIRE_DEBUG") == "1":
            raise
        print(f"espwire {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return result


def _operational(exc: Exception) -> bool:
    from aiokafka.errors import KafkaError  # here: `espwire --help` need not import the Kafka client

    return isinstance(exc, OSError | ValueError | KafkaError)


if __name__ == "__main__":
    raise SystemExit(main())
