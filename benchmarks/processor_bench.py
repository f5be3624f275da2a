"""The processor without Kafka: ``Pipeline.run`` on in-memory raw records of the realistic mix.

    python -m benchmarks.processor_bench --events N --seconds S --out F [--profile P]

Runs with the service's GC tuning (espwire.runtime.tune_gc), in batches of the consumer's size, and
breaks the time down by stage: envelope (header JSON -> Envelope), adapt (body parse + mapping),
serialise (orjson + CloudEvents headers). A cProfile of one pass goes to ``--profile``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from benchmarks.loadgen import LoadGen, describe
from espwire.envelope import Envelope
from espwire.runtime import tune_gc
from espwire.topics import Topics
from processors.pipeline import Pipeline, serialise_event


@dataclass(slots=True)
class Record:
    value: bytes | None
    headers: list[tuple[str, bytes]]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def build_records(events: int) -> tuple[list[Record], dict[str, object]]:
    requests = LoadGen().mixed_batch(events=events)
    return [Record(r.body, r.envelope().kafka_headers()) for r in requests], describe(requests)


def batches(records: list[Record], batch_records: int) -> list[list[Record]]:
    return [records[i : i + batch_records] for i in range(0, len(records), batch_records)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch-records", type=int, default=200)
    parser.add_argument("--out", required=True)
    parser.add_argument("--profile", default="")
    args = parser.parse_args()

    records, mix = build_records(args.events)
    pipeline = Pipeline(Topics("bench"))
    tune_gc()
    groups = batches(records, args.batch_records)
    loop = asyncio.new_event_loop()

    # Whole pipeline, repeated passes until the time is up.
    events_out = dead = passes = 0
    cpu0, t0 = _cpu(), time.perf_counter()
    while time.perf_counter() - t0 < args.seconds or passes == 0:
        for group in groups:
            result = loop.run_until_complete(pipeline.run(group))
            events_out += len(result.events)
            dead += result.dead_letters
        passes += 1
    elapsed, cpu = time.perf_counter() - t0, _cpu() - cpu0

    # Stage breakdown on one pass.
    t = time.perf_counter()
    envelopes = [Envelope.from_record(r.value, r.headers) for r in records]
    t_envelope = time.perf_counter() - t
    t = time.perf_counter()
    adapted = []
    for env in envelopes:
        adapted.extend(pipeline.adapters[env.provider].adapt(env).events)
    t_adapt = time.perf_counter() - t
    t = time.perf_counter()
    for event in adapted:
        serialise_event("bench.events", event)
    t_serialise = time.perf_counter() - t
    n = len(adapted)
    stage_us = {
        "envelope": round(t_envelope / n * 1e6, 3),
        "adapt": round(t_adapt / n * 1e6, 3),
        "serialise": round(t_serialise / n * 1e6, 3),
    }

    top = ""
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for group in groups:
            loop.run_until_complete(pipeline.run(group))
        profiler.disable()
        buf = io.StringIO()
        stats = pstats.Stats(profiler, stream=buf)
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(25)
        Path(args.profile).write_text(buf.getvalue())
        top = buf.getvalue()
    loop.close()

    out: dict[str, Any] = {
        "mix": mix,
        "records_per_pass": len(records),
        "events_per_pass": n,
        "passes": passes,
        "events": events_out,
        "dead_letters": dead,
        "elapsed_s": round(elapsed, 3),
        "cpu_s": round(cpu, 3),
        "events_per_s": round(events_out / elapsed, 1),
        "cpu_ms_per_1000": round(cpu / events_out * 1e6, 2),
        "stage_us_per_event": stage_us,
        "profile_file": args.profile or None,
        "profile_chars": len(top),
    }
    Path(args.out).write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
