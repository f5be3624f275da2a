"""The benchmark runner: `python -m benchmarks.run --mode quick|full` (make bench-quick / make bench).

Every case and its baselines run on this machine in the same run, interleaved by repetition, and
every figure is reported with its ratio to the baselines: on a shared 2-core machine absolute
numbers move by +-30%, ratios much less. Results: benchmarks/results/<timestamp>/{results.json,
results.md, chart.png, *.txt profiles}. Only 127.0.0.1 is targeted; every process started is
stopped at the end, also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import orjson

from benchmarks import report
from benchmarks.baselines import NGINX_CONF
from benchmarks.loadgen import LoadGen, describe
from benchmarks.procs import Managed, Meter, free_port, run_bounded, stop_all, wait_for_port
from benchmarks.redis_keys import drop_keys
from benchmarks.wrk import run_wrk, write_script
from espwire.broker import EmbeddedBroker
from espwire.topics import Topics, ensure_topics

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
ESPWIRE = str(Path(PY).with_name("espwire"))
SP_HEADERS = {"X-MessageSystems-Webhook-Token": "sp-test-token"}
# End to end at a rate one processor keeps up with beside the gateway on 2 cores (single-event requests).
E2E_STEADY_RPS = 2_000


ENRICHERS = ("USER_AGENT", "GEOIP", "MAILBOX_PROVIDER", "MACHINE_OPEN", "BOT_CLICK", "BOUNCE_CLASS")


@dataclass(frozen=True)
class Mode:
    name: str
    reps: int
    wrk_seconds: float
    connections: tuple[int, ...]
    open_loop_seconds: float
    profile_seconds: float
    pipeline_seconds: float
    fill_events: int
    ceiling_seconds: float
    e2e_seconds: float
    deadline_seconds: float


MODES = {
    "quick": Mode("quick", 1, 4, (16, 64), 5, 4, 3, 40_000, 4, 6, 170),
    "full": Mode("full", 3, 12, (16, 64), 15, 10, 10, 200_000, 10, 20, 1500),
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- machine --------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    mem_kib = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        mem_kib = next((int(line.split()[1]) for line in f if line.startswith("MemTotal")), 0)
    packages = {}
    for name in ("aiohttp", "aiokafka", "uvloop", "orjson", "fastapi", "uvicorn", "pydantic", "confluent-kafka"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            packages[name] = importlib.metadata.version(name)
    tools = {}
    for argv in (["wrk", "-v"], ["nginx", "-v"]):
        with contextlib.suppress(OSError):
            out = subprocess.run(argv, capture_output=True, text=True, timeout=5)
            tools[argv[0]] = (out.stdout + out.stderr).strip().splitlines()[0]
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO, timeout=5
        ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": packages,
        "tools": tools,
        "git_commit": commit,
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- helpers --------------------------------------------------------------------------------------
def median(values: list[float]) -> float:
    return round(statistics.median(values), 3) if values else float("nan")


def wait_ready(port: int, path: str, timeout: float, managed: Managed) -> None:
    wait_for_port(port, timeout, managed.process)
    deadline = time.monotonic() + timeout
    while True:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer,
        ):
            if answer.status == 200:
                return
        if not managed.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{managed.name} not ready on :{port}{path}\n{managed.tail()}")
        time.sleep(0.1)


GATEWAY_CASES = ("espwire", "aiohttp-uvloop", "aiohttp-asyncio", "nginx", "aiohttp+aiokafka", "fastapi+aiokafka")


class Bench:
    def __init__(self, mode: Mode, out: Path, tmp: Path, gateway_cases: Sequence[str] = GATEWAY_CASES) -> None:
        self.mode = mode
        self.gateway_cases = list(gateway_cases)
        self.out = out
        self.tmp = tmp
        self.logs = tmp / "logs"
        self.broker: EmbeddedBroker | None = None
        self.results: dict[str, Any] = {"errors": []}
        self.started = time.monotonic()
        self.gen = LoadGen()
        self.body_1kb = self.gen.sparkpost_single_1kb()

    @property
    def bootstrap(self) -> str:
        assert self.broker is not None
        return self.broker.bootstrap

    def time_left(self) -> float:
        return self.mode.deadline_seconds - (time.monotonic() - self.started)

    def topics(self, *prefixes: str) -> None:
        names = [n for p in prefixes for n in Topics(p).core()]
        asyncio.run(ensure_topics(self.bootstrap, names, 4))

    def broker_meter(self) -> Meter:
        assert self.broker is not None and self.broker._process is not None
        return Meter(self.broker._process.pid)

    # -- servers ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def server(self, case: str, port: int, prefix: str = "bench-gw") -> Iterator[Managed]:
        if case == "espwire":
            env = {
                "ESPWIRE_KAFKA_BOOTSTRAP": self.bootstrap,
                "ESPWIRE_GATEWAY_PORT": str(port),
                "ESPWIRE_DATADIR": str(self.tmp / f"data-{prefix}-{port}"),
                "ESPWIRE_KAFKA_TOPIC_PREFIX": prefix,
            }
            managed = Managed(f"{case}-{port}", [ESPWIRE, "gateway"], self.logs, env=env, cwd=REPO)
            ready = "/readyz"
        elif case == "nginx":
            conf_dir = self.tmp / f"nginx-{port}"
            conf_dir.mkdir(parents=True, exist_ok=True)
            conf = conf_dir / "nginx.conf"
            conf.write_text(NGINX_CONF.format(tmp=conf_dir, port=port))
            argv = ["nginx", "-c", str(conf), "-p", str(conf_dir), "-e", str(conf_dir / "error.log")]
            managed = Managed(f"{case}-{port}", argv, self.logs)
            ready = ""
        elif case in ("aiohttp-asyncio", "aiohttp-uvloop"):
            loop = case.split("-")[1]
            argv = [PY, "-m", "benchmarks.baselines", "bare", "--loop", loop, "--port", str(port)]
            managed = Managed(f"{case}-{port}", argv, self.logs, cwd=REPO)
            ready = ""
        elif case in ("aiohttp+aiokafka", "fastapi+aiokafka"):
            kind = "aiokafka" if case.startswith("aiohttp") else "fastapi"
            argv = [PY, "-m", "benchmarks.baselines", kind, "--port", str(port)]
            argv += ["--bootstrap", self.bootstrap, "--topic", f"bench-{kind}.raw"]
            managed = Managed(f"{case}-{port}", argv, self.logs, cwd=REPO)
            ready = ""
        else:
            raise ValueError(case)
        try:
            if ready:
                wait_ready(port, ready, 30, managed)
            else:
                wait_for_port(port, 30, managed.process)
            yield managed
        finally:
            managed.stop()

    # -- gateway ----------------------------------------------------------------------------------
    def gateway(self) -> None:
        mode = self.mode
        script = write_script(
            self.tmp / "post.lua",
            "/hooks/sparkpost",
            [LoadGen(seed=i).sparkpost_single_1kb() for i in range(32)],
            SP_HEADERS,
        )
        self.topics("bench-gw", "bench-aiokafka", "bench-fastapi")
        cases = self.gateway_cases
        kafka_cases = {"espwire", "aiohttp+aiokafka", "fastapi+aiokafka"}
        runs: dict[str, dict[int, list[dict[str, Any]]]] = {c: {n: [] for n in mode.connections} for c in cases}
        for rep in range(mode.reps):
            order = cases if rep % 2 == 0 else list(reversed(cases))
            for case in order:
                port = free_port()
                log(f"gateway rep {rep + 1}/{mode.reps}: {case}")
                try:
                    with self.server(case, port) as server:
                        run_wrk(port, script, 16, 1)  # warm-up: connections, JIT-less caches, Kafka metadata
                        for conns in mode.connections:
                            meter = server.meter().start()
                            broker = self.broker_meter().start() if case in kafka_cases else None
                            result = run_wrk(port, script, conns, mode.wrk_seconds)
                            usage = meter.stop()
                            entry = result.as_dict()
                            entry["events_per_s"] = entry["rps"]  # one event per request
                            entry["server"] = usage.as_dict()
                            entry["cpu_ms_per_1000_events"] = round(usage.cpu_s / max(1, result.requests) * 1e6, 3)
                            if broker is not None:
                                b = broker.stop()
                                entry["broker_cpu_ms_per_1000_events"] = round(
                                    b.cpu_s / max(1, result.requests) * 1e6, 3
                                )
                            entry["loadavg"] = loadavg()
                            runs[case][conns].append(entry)
                            log(
                                f"  {conns:>3} conns: {result.rps:9.0f} req/s  p50 {result.p50_ms:.2f} ms  "
                                f"p99 {result.p99_ms:.2f} ms  non-2xx {result.non_2xx}"
                            )
                except Exception as exc:  # one broken case must not lose the others
                    log(f"  {case} failed: {exc!r}")
                    self.results["errors"].append(f"gateway {case}: {exc!r}")
        summary: dict[str, Any] = {}
        for case in cases:
            summary[case] = {}
            for conns in mode.connections:
                entries = runs[case][conns]
                if not entries:
                    continue
                summary[case][str(conns)] = {
                    "rps": median([e["rps"] for e in entries]),
                    "events_per_s": median([e["events_per_s"] for e in entries]),
                    "p50_ms": median([e["latency_ms"]["p50"] for e in entries]),
                    "p99_ms": median([e["latency_ms"]["p99"] for e in entries]),
                    "p999_ms": median([e["latency_ms"]["p99.9"] for e in entries]),
                    "cpu_ms_per_1000_events": median([e["cpu_ms_per_1000_events"] for e in entries]),
                    "broker_cpu_ms_per_1000_events": median(
                        [e["broker_cpu_ms_per_1000_events"] for e in entries if "broker_cpu_ms_per_1000_events" in e]
                    ),
                    "rss_peak_mib": max(e["server"]["rss_peak_mib"] for e in entries),
                    "non_2xx": sum(e["non_2xx"] for e in entries),
                    "socket_errors": sum(e["socket_errors"] for e in entries),
                    "runs": entries,
                }
        self.results["gateway"] = {
            "body_bytes": len(self.body_1kb),
            "load_generator": "wrk -t1 (closed loop), Lua script: POST, 32 distinct 1 KB SparkPost bodies",
            "cases": summary,
        }

    def espwire_max_rps(self) -> float:
        cases = self.results.get("gateway", {}).get("cases", {}).get("espwire", {})
        values = [v["rps"] for v in cases.values()]
        return max(values) if values else 1000.0

    def open_loop(self) -> None:
        peak = self.espwire_max_rps()
        body = self.tmp / "body-1kb.json"
        body.write_bytes(self.body_1kb)
        out: dict[str, Any] = {
            "generator": "benchmarks/openloop.py: Python, raw HTTP/1.1 over asyncio+uvloop, 64 keep-alive "
            "connections, latency from the intended send time (wrk2-style, no coordinated omission)",
            "espwire_max_rps": peak,
            "runs": {},
        }
        port = free_port()
        with self.server("espwire", port) as server:
            run_wrk(port, write_script(self.tmp / "w.lua", "/hooks/sparkpost", [self.body_1kb], SP_HEADERS), 16, 1)
            for share in (0.5, 0.9):
                rate = max(10.0, round(peak * share))
                log(f"open loop at {share:.0%} of {peak:.0f} req/s = {rate:.0f} req/s")
                meter = server.meter().start()
                result = self._openloop(port, rate, self.mode.open_loop_seconds, body, [])
                usage = meter.stop()
                result["server"] = usage.as_dict()
                result["cpu_ms_per_1000_events"] = round(usage.cpu_s / max(1, result["completed"]) * 1e6, 3)
                result["loadavg"] = loadavg()
                out["runs"][f"{int(share * 100)}%"] = result
                lat = result["latency_ms"]
                log(f"  achieved {result['achieved_rate']} req/s  p50 {lat['p50']} ms  p99 {lat['p99']} ms")
        self.results["open_loop"] = out

    def _openloop(self, port: int, rate: float, seconds: float, body: Path, extra: list[str]) -> dict[str, Any]:
        target = self.tmp / f"openloop-{time.monotonic_ns()}.json"
        argv = [PY, "-m", "benchmarks.openloop", "--port", str(port), "--rate", str(rate)]
        argv += ["--duration", str(seconds), "--connections", "64", "--body-file", str(body), "--out", str(target)]
        for key, value in {"Content-Type": "application/json", **SP_HEADERS}.items():
            argv += ["--header", f"{key}: {value}"]
        run_bounded(argv + extra, timeout=seconds + 60)
        result: dict[str, Any] = orjson.loads(target.read_bytes())
        return result

    def gateway_profile(self) -> None:
        """py-spy on the espwire gateway under wrk at 64 connections: where its time goes."""
        port = free_port()
        script = write_script(self.tmp / "p.lua", "/hooks/sparkpost", [self.body_1kb], SP_HEADERS)
        raw = self.tmp / "gateway.pyspy.txt"
        seconds = self.mode.profile_seconds
        with self.server("espwire", port) as server:
            run_wrk(port, script, 16, 1)
            spy = Managed(
                "py-spy",
                [
                    str(Path(PY).with_name("py-spy")),
                    "record",
                    "--nonblocking",
                    "-r",
                    "250",
                    "-d",
                    str(int(seconds)),
                    "-f",
                    "raw",
                    "-o",
                    str(raw),
                    "-p",
                    str(server.pid),
                ],
                self.logs,
            )
            time.sleep(0.5)
            run_wrk(port, script, 64, seconds - 1)
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.process.wait(15)
            spy.stop()
        if not raw.exists():
            self.results["errors"].append(f"py-spy wrote no profile: {spy.tail()}")
            return
        summary = report.summarise_collapsed(raw.read_text())
        (self.out / "gateway_profile.txt").write_text(report.format_profile(summary))
        self.results["gateway_profile"] = summary

    # -- processor --------------------------------------------------------------------------------
    def processor(self) -> None:
        mode = self.mode
        out: dict[str, Any] = {}
        log("processor: pipeline alone (in memory)")
        target = self.tmp / "pipeline.json"
        run_bounded(
            [
                PY,
                "-m",
                "benchmarks.processor_bench",
                "--events",
                str(min(mode.fill_events, 60_000)),
                "--seconds",
                str(mode.pipeline_seconds),
                "--out",
                str(target),
                "--profile",
                str(self.out / "processor_profile.txt"),
            ],
            timeout=mode.pipeline_seconds + 120,
        )
        out["pipeline_alone"] = orjson.loads(target.read_bytes())
        log(f"  {out['pipeline_alone']['events_per_s']:.0f} events/s")

        self.topics("bench-ceiling")
        for client in ("aiokafka", "confluent"):
            log(f"processor baseline: {client} producing 1 KB records")
            target = self.tmp / f"ceiling-{client}.json"
            broker = self.broker_meter().start()
            try:
                run_bounded(
                    [
                        PY,
                        "-m",
                        "benchmarks.kafka_clients",
                        client,
                        "--bootstrap",
                        self.bootstrap,
                        "--topic",
                        "bench-ceiling.raw",
                        "--seconds",
                        str(mode.ceiling_seconds),
                        "--out",
                        str(target),
                    ],
                    timeout=mode.ceiling_seconds + 60,
                )
            except Exception as exc:
                self.results["errors"].append(f"ceiling {client}: {exc!r}")
                log(f"  {client} failed: {exc!r}")
                continue
            result = orjson.loads(target.read_bytes())
            b = broker.stop()
            result["broker_cpu_ms_per_1000"] = round(b.cpu_s / max(1, result["records"]) * 1e6, 2)
            out[f"ceiling_{client}"] = result
            log(f"  {result['records_per_s']:.0f} records/s")

        # What a bare Python consumer-producer does with the same records: the Kafka and JSON work alone.
        for publish in ("send", "batch"):
            out[f"passthrough_{publish}"] = self._consumer_loop(
                {}, f"passthrough baseline ({publish})", ["-m", "benchmarks.passthrough", "--publish", publish]
            )
        # The processor as issue #4 measures it (adapt, normalise, publish), then with the stages of #5.
        stages_off = {"ESPWIRE_DEDUPE_ENABLED": "false"} | {f"ESPWIRE_ENRICH_{name}": "false" for name in ENRICHERS}
        out["consumer_loop"] = self._consumer_loop(stages_off, "adapt + publish")
        key_prefix = f"bench:{time.time_ns()}:"
        try:
            out["consumer_loop_redis"] = self._consumer_loop(redis_env(key_prefix), "Redis dedupe + every enricher")
        finally:
            drop_keys(key_prefix)
        if self.mode.name == "full":
            out["consumer_loop_dev"] = self._consumer_loop({}, "SQLite dedupe + every enricher (espwire dev)")
        self.results["processor"] = out

    def _consumer_loop(self, extra_env: dict[str, str], label: str, command: list[str] | None = None) -> dict[str, Any]:
        prefix = f"bench-proc-{time.time_ns()}"
        self.topics(prefix)
        requests = LoadGen(seed=7).mixed_batch(events=self.mode.fill_events)
        mix = describe(requests)
        log(f"processor: filling {prefix}.raw with {mix['requests']} requests / {mix['events']} events")
        t = time.perf_counter()
        asyncio.run(_fill(self.bootstrap, Topics(prefix).raw, [r.envelope() for r in requests]))
        fill_s = time.perf_counter() - t
        env = {
            "ESPWIRE_KAFKA_BOOTSTRAP": self.bootstrap,
            "ESPWIRE_KAFKA_TOPIC_PREFIX": prefix,
            "ESPWIRE_PROCESSOR_GROUP_ID": f"bench-{time.time_ns()}",
            "ESPWIRE_DATADIR": str(self.tmp / f"data-{prefix}"),
            **extra_env,
        }
        expected = int(mix["events"])  # type: ignore[call-overload]
        argv = [PY, *command] if command else [ESPWIRE, "process"]
        processor = Managed("processor", argv, self.logs, env=env, cwd=REPO)
        try:
            counted = asyncio.run(
                _count_events(self.bootstrap, Topics(prefix).events, expected, processor, timeout=120)
            )
        finally:
            processor.stop()
        n_after_first = counted["events"] - counted["first_batch"]
        span = counted["t_last"] - counted["t_first"]
        result = {
            "label": label,
            "mix": mix,
            "fill_seconds": round(fill_s, 2),
            "events_expected": expected,
            "events_seen": counted["events"],
            "events_per_s": round(n_after_first / span, 1) if span > 0 else float("nan"),
            "wall_from_start_s": round(counted["t_last"] - counted["t_start"], 2),
            "cpu_ms_per_1000_events": round(counted["cpu_s"] / max(1, n_after_first) * 1e6, 2),
            "rss_peak_mib": counted["rss_peak_mib"],
            "note": "rate from the first to the last event seen on <prefix>.events (start-up and group join "
            "excluded); CPU of the processor process over the same span",
        }
        log(f"  consumer loop, {label}: {result['events_per_s']} events/s ({counted['events']}/{expected} events)")
        return result

    # -- end to end -------------------------------------------------------------------------------
    def end_to_end(self) -> None:
        """Gateway + processor (as ``espwire dev`` configures it), open loop, twice: at a steady rate the
        pipeline sustains on these 2 cores, then at 50% of the gateway's max, which single-event requests
        turn into more events than one processor with the dev store (SQLite) handles: there the figure
        shows the backlog growing, not the pipeline's latency."""
        prefix = "bench-e2e"
        self.topics(prefix)
        half = max(10.0, round(self.espwire_max_rps() * 0.5))
        template = self.tmp / "e2e-template.json"
        template.write_bytes(LoadGen(seed=99).sparkpost_single_1kb(event_id="__EVID__"))
        port = free_port()
        env = {
            "ESPWIRE_KAFKA_BOOTSTRAP": self.bootstrap,
            "ESPWIRE_KAFKA_TOPIC_PREFIX": prefix,
            "ESPWIRE_PROCESSOR_GROUP_ID": f"bench-e2e-{time.time_ns()}",
            "ESPWIRE_DATADIR": str(self.tmp / "data-e2e-proc"),
        }
        processor = Managed("processor-e2e", [ESPWIRE, "process"], self.logs, env=env, cwd=REPO)
        runs = [
            ("end_to_end_steady", min(E2E_STEADY_RPS, half), "steady"),
            ("end_to_end", half, "50% of the gateway's max"),
        ]
        try:
            with self.server("espwire", port, prefix=prefix) as gateway:
                events = Topics(prefix).events
                e2e = ["--e2e-bootstrap", self.bootstrap, "--e2e-topic", events, "--e2e-wait", "20"]
                log("end to end: warm-up until the processor has joined its group")
                self._openloop(port, 20, 2, template, [*e2e, "--id-prefix", "8"])
                for id_prefix, (key, rate, label) in enumerate(runs, 1):
                    log(f"end to end at {rate:.0f} req/s ({label})")
                    gw, pr = gateway.meter().start(), processor.meter().start()
                    ids = ["--id-prefix", f"9{id_prefix}"]
                    result = self._openloop(port, rate, self.mode.e2e_seconds, template, [*e2e, *ids])
                    result["gateway"] = gw.stop().as_dict()
                    result["processor"] = pr.stop().as_dict()
                    result["loadavg"] = loadavg()
                    result["label"] = label
                    result["note"] = (
                        "latency from the gateway's 200 (as the client received it) to the event consumed from "
                        "<prefix>.events"
                    )
                    log(f"  e2e p50 {result['e2e_ms']['p50']} ms p99 {result['e2e_ms']['p99']} ms")
                    self.results[key] = result
        finally:
            processor.stop()

    def instructions(self) -> None:
        """callgrind: instructions per request for the gateway and its aiohttp baselines (repeatable)."""
        from benchmarks.instructions import CASES, count

        if not shutil.which("valgrind"):
            raise RuntimeError("valgrind is missing: apt-get install -y valgrind")
        self.topics("instr-gw", "instr-aiokafka")
        script = write_script(
            self.tmp / "post-instr.lua",
            "/hooks/sparkpost",
            [LoadGen(seed=i).sparkpost_single_1kb() for i in range(32)],
            SP_HEADERS,
        )
        out = []
        for case in CASES:
            log(f"instructions (callgrind): {case}")
            out.append(count(case, self.bootstrap, script, self.tmp, max(8.0, self.mode.wrk_seconds), 64))
            log(f"  {out[-1]['instructions_per_request']:,} instructions/request")
        self.results["instructions"] = out

    # -- all --------------------------------------------------------------------------------------
    def run(self, only: set[str]) -> None:
        self.broker = EmbeddedBroker(log_path=self.tmp / "broker.log")
        self.broker.start()
        steps: list[tuple[str, Callable[[], None], float]] = [
            ("gateway", self.gateway, 0),
            ("open_loop", self.open_loop, 20),
            ("processor", self.processor, 20),
            ("end_to_end", self.end_to_end, 15),
            ("gateway_profile", self.gateway_profile, 10),
        ]
        if self.mode.name == "full" or "instructions" in only:  # ~3 minutes under valgrind: not in quick runs
            steps.append(("instructions", self.instructions, 0 if "instructions" in only else 200))
        for name, step, needs in steps:
            if only and name not in only:
                continue
            if self.time_left() < needs:
                self.results["errors"].append(f"{name}: skipped, out of time ({self.time_left():.0f}s left)")
                log(f"skipping {name}: out of time")
                continue
            try:
                step()
            except Exception as exc:
                log(f"{name} failed: {exc!r}")
                self.results["errors"].append(f"{name}: {exc!r}")


def redis_env(key_prefix: str) -> dict[str, str]:
    """``espwire process`` settings for Redis dedupe (every enricher is on by default), keys under ``key_prefix``."""
    return {
        "ESPWIRE_DEDUPE_STORE": "redis",
        "ESPWIRE_DEDUPE_KEY_PREFIX": key_prefix,
        # The Redis is shared: a short window and bot-click state lifetime, should a run stop before its cleanup.
        "ESPWIRE_DEDUPE_WINDOW_HOURS": "0.5",
        "ESPWIRE_ENRICH_BOT_CLICK_STATE_HOURS": "0.5",
    }


async def _fill(bootstrap: str, topic: str, envelopes: list[Any]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        max_batch_size=1024 * 1024,
        max_request_size=16 * 1024 * 1024,
    )
    await producer.start()
    try:
        for i in range(0, len(envelopes), 500):
            futures = [
                await producer.send(topic, e.body, key=e.key, headers=e.kafka_headers()) for e in envelopes[i : i + 500]
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _count_events(
    bootstrap: str, topic: str, expected: int, processor: Managed, timeout: float
) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_bytes=64 << 20)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic) or {0}
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        t_start = time.perf_counter()
        count = first_batch = 0
        t_first = t_last = 0.0
        meter: Meter | None = None
        while time.perf_counter() - t_start < timeout and count < expected:
            batch = await consumer.getmany(timeout_ms=200, max_records=50_000)
            n = sum(len(records) for records in batch.values())
            now = time.perf_counter()
            if n:
                if count == 0:
                    t_first, first_batch = now, n
                    meter = processor.meter().start()
                count += n
                t_last = now
            elif count and now - t_last > 5:  # nothing more is coming (e.g. a dedupe stage dropped repeats)
                break
            if not processor.alive():
                raise RuntimeError(f"processor exited:\n{processor.tail()}")
        usage = meter.stop() if meter is not None else None
    finally:
        await consumer.stop()
    return {
        "events": count,
        "first_batch": first_batch,
        "t_start": t_start,
        "t_first": t_first,
        "t_last": t_last,
        "cpu_s": usage.cpu_s if usage else 0.0,
        "rss_peak_mib": usage.rss_peak_mib if usage else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=sorted(MODES), default="quick")
    parser.add_argument("--out", help="results directory (default benchmarks/results/<timestamp>)")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated: gateway,open_loop,processor,end_to_end,gateway_profile,instructions",
    )
    parser.add_argument(
        "--gateway-cases",
        default=",".join(GATEWAY_CASES),
        help="the gateway step's servers, comma-separated (default all; e.g. espwire,aiohttp-uvloop to compare two)",
    )
    args = parser.parse_args()
    mode = MODES[args.mode]
    gateway_cases = [c for c in args.gateway_cases.split(",") if c]
    if unknown := set(gateway_cases) - set(GATEWAY_CASES):
        parser.error(f"unknown gateway case(s): {', '.join(sorted(unknown))}")
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            print(f"benchmarks: {tool} is missing: apt-get install -y wrk nginx-light", file=sys.stderr)
            return 2
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out) if args.out else REPO / "benchmarks" / "results" / stamp
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="espwire-bench-"))

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    bench = Bench(mode, out, tmp, gateway_cases)
    bench.results.update(
        {
            "mode": mode.name,
            "repetitions": mode.reps,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "loadavg_start": loadavg(),
        }
    )
    log(f"results in {out}; load average {bench.results['loadavg_start']}")
    try:
        bench.run({s for s in args.only.split(",") if s})
    except KeyboardInterrupt:
        bench.results["errors"].append("interrupted")
    finally:
        stop_all()
        if bench.broker is not None:
            bench.broker.stop()
        bench.results["loadavg_end"] = loadavg()
        bench.results["duration_s"] = round(time.monotonic() - bench.started, 1)
        if bench.results["errors"]:
            for path in sorted(tmp.glob("logs/*.log")):
                shutil.copy(path, out / f"log-{path.name}")
        shutil.rmtree(tmp, ignore_errors=True)
    report.write_all(bench.results, out)
    log(f"done in {bench.results['duration_s']}s: {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
