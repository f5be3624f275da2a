"""The processor without Kafka: ``Pipeline.run`` on in-memory raw records of the realistic mix.

    python -m benchmarks.processor_bench --events N --seconds S --out F [--profile P] [--stages redis]
        [--breakdown-passes N]

Runs with the service's GC tuning (espwire.runtime.tune_gc), in batches of the consumer's size, and
breaks the time down by stage: envelope (header JSON -> Envelope), adapt (body parse + mapping),
serialise (orjson + CloudEvents headers). A cProfile of one pass goes to ``--profile``.

``--stages redis``: the pipeline as ``espwire process`` builds it with Redis dedupe and every enricher
(``--redis-url``, keys under a fresh ``bench:`` prefix per pass, removed after it), each batch
confirmed after it as the consumer does once the acks are in; the breakdown then also has dedupe
(claim and confirm) and each enricher. ``--breakdown-passes N`` breaks it down N times and keeps
each stage's least CPU: on a shared machine the others' load only ever adds to it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import pstats
import resource
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import orjson
import redis
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from benchmarks.loadgen import LoadGen, describe
from benchmarks.redis_keys import drop_keys
from espwire.config import DedupeConfig, EnrichConfig, KafkaConfig, Settings
from espwire.envelope import Envelope
from espwire.kafka_batches import BatchPublisher
from espwire.runtime import tune_gc
from espwire.topics import Topics
from processors.consumer import make_producer
from processors.pipeline import Pipeline, serialise_event
from processors.stages import build_stages

if TYPE_CHECKING:
    from processors.deduplicate import Deduplicator
    from processors.stages import EnrichmentStage


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


async def build_pipeline(stages: str, redis_url: str) -> tuple[Pipeline, list[Any]]:
    """The pipeline to measure, and what to close after it."""
    if not stages:
        return Pipeline(Topics("bench")), []
    key_prefix = f"bench:{time.time_ns()}:"
    settings = Settings(
        kafka=KafkaConfig(topic_prefix="bench"),
        # A fresh prefix each time, so every id is new; a short window, should a run stop before its cleanup.
        dedupe=DedupeConfig(store="redis", redis_url=SecretStr(redis_url), key_prefix=key_prefix, window_hours=0.1),
        enrich=EnrichConfig(bot_click_state_hours=0.1),
    )
    # The bootstrap is only used to search the events topic for claims in doubt: none here.
    pipeline, closeables = await build_stages(settings, "127.0.0.1:9")
    return pipeline, [*closeables, _KeysDropper(key_prefix, redis_url)]


@dataclass(slots=True)
class _KeysDropper:
    """Closed with the pipeline: the pass's keys leave the shared Redis at once (benchmarks/redis_keys.py)."""

    prefix: str
    url: str

    async def close(self) -> None:
        await asyncio.to_thread(drop_keys, self.prefix, self.url)


async def close_all(closeables: list[Any]) -> None:
    for closeable in closeables:
        await closeable.close()


async def run_pass(pipeline: Pipeline, groups: list[list[Record]]) -> tuple[int, int]:
    """One pass over every batch as the consumer runs it: run, then (the acks being in) confirm."""
    events = dead = 0
    for group in groups:
        result = await pipeline.run(group)
        if pipeline.dedupe is not None:
            await pipeline.dedupe.confirm(result.events)
        events += len(result.events)
        dead += result.dead_letters
    return events, dead


def redis_cpu_seconds(redis_url: str) -> float:
    """The Redis server's own CPU so far (it runs on the same cores as the processor)."""
    info = redis.Redis.from_url(redis_url).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


class UnsentProducer:
    """The producer side of BatchPublisher without a broker: real record batches (aiokafka's builder),
    closed as a send would close them, never sent. Measures publishing's own CPU per record."""

    def __init__(self) -> None:
        # The processor's own producer settings (batch size, compression), never started.
        self._producer = make_producer(Settings(), "127.0.0.1:9", "bench")

    async def close(self) -> None:
        await self._producer.stop()

    def create_batch(self) -> Any:
        return self._producer.create_batch()

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2, 3}

    async def send_batch(self, builder: Any, topic: str, *, partition: int) -> asyncio.Future[None]:
        builder._build()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def stage_breakdown(pipeline: Pipeline, groups: list[list[Record]]) -> dict[str, dict[str, float]]:
    """Per adapted event, for each stage of one pass as Pipeline.run orders them: wall and CPU
    microseconds (wall - CPU is mostly the wait for Redis); publish = BatchPublisher.send's own work."""
    unsent = UnsentProducer()
    publisher = BatchPublisher(cast(AIOKafkaProducer, unsent))
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}

    @contextlib.contextmanager
    def timed(stage: str) -> Iterator[None]:
        w, c = time.perf_counter(), time.process_time()
        yield
        wall[stage] = wall.get(stage, 0.0) + time.perf_counter() - w
        cpu[stage] = cpu.get(stage, 0.0) + time.process_time() - c

    adapted = 0
    dedupe = cast("Deduplicator | None", pipeline.dedupe)
    enrich = cast("EnrichmentStage | None", pipeline.enrich)
    for group in groups:
        with timed("adapt"):
            events, _ = pipeline.adapt(group)
        adapted += len(events)
        if dedupe is not None:
            with timed("dedupe_claim"):
                events, _ = await dedupe.filter(events)
        for enricher in enrich.enrichers if enrich is not None else ():
            with timed(f"enrich_{enricher.name}"):
                await enricher.enrich_batch(events)  # type: ignore[arg-type]
        with timed("serialise"):
            outgoing = [serialise_event("bench.events", event) for event in events]
        with timed("publish"):
            await publisher.send(outgoing)
        if dedupe is not None:
            with timed("dedupe_confirm"):
                await dedupe.confirm(events)
    await unsent.close()
    return {
        stage: {"wall_us": round(wall[stage] / adapted * 1e6, 3), "cpu_us": round(cpu[stage] / adapted * 1e6, 3)}
        for stage in wall
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch-records", type=int, default=200)
    parser.add_argument("--out", required=True)
    parser.add_argument("--profile", default="")
    parser.add_argument("--stages", choices=["", "redis"], default="")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--breakdown-passes", type=int, default=1, help="stage breakdown passes; each stage's least CPU is kept"
    )
    args = parser.parse_args()

    records, mix = build_records(args.events)
    loop = asyncio.new_event_loop()
    # Built once before timing: loads the GeoIP database and the tables every later pipeline shares.
    pipeline, closeables = loop.run_until_complete(build_pipeline(args.stages, args.redis_url))
    tune_gc()
    groups = batches(records, args.batch_records)

    # Whole pipeline, repeated passes until the time is up (each pass with new ids for dedupe).
    events_out = dead = passes = 0
    elapsed = cpu = 0.0
    while elapsed < args.seconds or passes == 0:
        if passes:
            loop.run_until_complete(close_all(closeables))
            pipeline, closeables = loop.run_until_complete(build_pipeline(args.stages, args.redis_url))
        cpu0, t0 = _cpu(), time.perf_counter()
        n, d = loop.run_until_complete(run_pass(pipeline, groups))
        elapsed += time.perf_counter() - t0
        cpu += _cpu() - cpu0
        events_out += n
        dead += d
        passes += 1

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
    stage_us: dict[str, Any] = {
        "envelope": round(t_envelope / n * 1e6, 3),
        "adapt": round(t_adapt / n * 1e6, 3),
        "serialise": round(t_serialise / n * 1e6, 3),
    }
    if args.stages:
        # Each stage's least CPU over the passes: on a shared machine the others' load only ever adds.
        breakdowns: list[dict[str, Any]] = []
        for _ in range(args.breakdown_passes):
            loop.run_until_complete(close_all(closeables))
            pipeline, closeables = loop.run_until_complete(build_pipeline(args.stages, args.redis_url))
            redis_before = redis_cpu_seconds(args.redis_url)
            breakdown: dict[str, Any] = loop.run_until_complete(stage_breakdown(pipeline, groups))
            breakdown["redis_server_cpu_us"] = round((redis_cpu_seconds(args.redis_url) - redis_before) / n * 1e6, 3)
            breakdowns.append(breakdown)
        stage_us = {
            stage: min((b[stage] for b in breakdowns), key=lambda v: v["cpu_us"] if isinstance(v, dict) else v)
            for stage in breakdowns[0]
        }

    top = ""
    if args.profile:
        loop.run_until_complete(close_all(closeables))
        pipeline, closeables = loop.run_until_complete(build_pipeline(args.stages, args.redis_url))
        profiler = cProfile.Profile()
        profiler.enable()
        loop.run_until_complete(run_pass(pipeline, groups))
        profiler.disable()
        buf = io.StringIO()
        stats = pstats.Stats(profiler, stream=buf)
        stats.sort_stats("tottime").print_stats(40)
        stats.sort_stats("cumulative").print_stats(40)
        Path(args.profile).write_text(buf.getvalue())
        top = buf.getvalue()
    loop.run_until_complete(close_all(closeables))
    loop.close()

    out: dict[str, Any] = {
        "stages": args.stages or "none",
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
