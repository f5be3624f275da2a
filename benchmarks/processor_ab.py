"""Interleaved A/B runs of ``espwire process`` (Redis dedupe + every enricher) on the realistic mix.

    python -m benchmarks.processor_ab --events 120000 --reps 2 [--tree A] [--tree B] [--py-spy DIR]
        [--env KEY=VALUE[,KEY=VALUE...]] [--baseline send|batch]

Each ``--tree`` is a checkout of this repository (a ``git worktree`` of the commit to compare; default:
this one); the processor runs from it (``python -m espwire.cli process`` with the tree as its working
directory, which ``-m`` puts first on ``sys.path``, ahead of the editable install). Runs alternate
between the trees, ABBA..., each on a freshly filled topic and a fresh Redis key prefix (removed
after), so both see the same broker, Redis and machine load. The figure a
change is judged by: events/s from the first to the last event on the events topic, and the
processor's CPU per event over that span. ``--py-spy DIR`` records each run's samples (collapsed
stacks, for ``py-spy``'s flame graphs or a grep) as DIR/<tree>-<arm>-<rep>.txt. ``--env`` adds this
checkout run with other settings or environment (e.g. ``ESPWIRE_PROCESSOR_MAX_BATCH_BYTES=131072`` or
``PYTHONMALLOC=malloc``), ``--baseline`` the passthrough baseline (benchmarks/passthrough.py), each as
one more arm of the same interleaving.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.loadgen import LoadGen, describe
from benchmarks.procs import Managed, stop_all
from benchmarks.redis_keys import drop_keys
from benchmarks.run import PY, REPO, _count_events, _fill, redis_env
from espwire.broker import EmbeddedBroker
from espwire.topics import Topics, ensure_topics

PROCESS = ["-m", "espwire.cli", "process"]


def run_once(
    bootstrap: str,
    tree: Path,
    events: int,
    work: Path,
    spy: Path | None,
    extra_env: dict[str, str] | None = None,
    command: list[str] = PROCESS,
) -> dict[str, Any]:
    prefix = f"ab-{time.time_ns()}"
    topics = Topics(prefix)
    asyncio.run(ensure_topics(bootstrap, topics.core(), 4))
    requests = LoadGen(seed=7).mixed_batch(events=events)
    asyncio.run(_fill(bootstrap, topics.raw, [r.envelope() for r in requests]))
    key_prefix = f"bench:{time.time_ns()}:"
    env = {
        "ESPWIRE_KAFKA_BOOTSTRAP": bootstrap,
        "ESPWIRE_KAFKA_TOPIC_PREFIX": prefix,
        "ESPWIRE_PROCESSOR_GROUP_ID": f"ab-{time.time_ns()}",
        "ESPWIRE_DATADIR": str(work / prefix),
        **redis_env(key_prefix),
        **(extra_env or {}),
    }
    processor = Managed(f"processor-{prefix}", [PY, *command], work / "logs", env=env, cwd=tree)
    sampler = None
    if (
        spy is not None
    ):  # attached, so that it can be stopped with SIGINT (it writes its file then) before the processor
        py_spy = str(Path(PY).with_name("py-spy"))
        argv = [py_spy, "record", "--format", "raw", "--nonblocking", "-r", "200", "-o", str(spy), "--pid"]
        sampler = subprocess.Popen([*argv, str(processor.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        expected = int(describe(requests)["events"])  # type: ignore[call-overload]
        counted = asyncio.run(_count_events(bootstrap, topics.events, expected, processor, timeout=180))
    finally:
        if sampler is not None:
            sampler.send_signal(signal.SIGINT)
            sampler.wait(30)
        processor.stop()
        drop_keys(key_prefix)
    after_first = counted["events"] - counted["first_batch"]
    span = counted["t_last"] - counted["t_first"]
    return {
        "events": counted["events"],
        "events_per_s": round(after_first / span) if span > 0 else 0,
        "cpu_us_per_event": round(counted["cpu_s"] / max(1, after_first) * 1e6, 1),
        "rss_peak_mib": counted["rss_peak_mib"],
    }


@dataclass(frozen=True)
class Arm:
    label: str
    tree: Path
    env: dict[str, str]
    command: list[str]


def arms_of(args: argparse.Namespace) -> list[Arm]:
    arms = [Arm(str(tree), tree, {}, PROCESS) for tree in args.tree or [REPO]]
    for spec in args.env:
        pairs = dict(pair.split("=", 1) for pair in spec.split(","))
        arms.append(Arm(f"{REPO.name} with {spec}", REPO, pairs, PROCESS))
    for publish in args.baseline:
        arms.append(Arm(f"passthrough ({publish})", REPO, {}, ["-m", "benchmarks.passthrough", "--publish", publish]))
    return arms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=120_000)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--tree", action="append", type=Path, help="a checkout to run (repeatable)")
    parser.add_argument(
        "--env", action="append", default=[], help="also this checkout with KEY=VALUE[,KEY=VALUE...] (repeatable)"
    )
    parser.add_argument(
        "--baseline", action="append", default=[], choices=["send", "batch"], help="also benchmarks.passthrough"
    )
    parser.add_argument("--py-spy", type=Path, help="directory for each run's py-spy samples")
    args = parser.parse_args()
    arms = arms_of(args)
    if args.py_spy:
        args.py_spy.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict[str, Any]]] = {arm.label: [] for arm in arms}
    with tempfile.TemporaryDirectory(prefix="espwire-ab-") as tmp:
        work = Path(tmp)
        broker = EmbeddedBroker(log_path=work / "broker.log")
        broker.start()
        try:
            for rep in range(args.reps):
                order = list(enumerate(arms))
                for number, arm in order if rep % 2 == 0 else reversed(order):
                    spy = args.py_spy / f"{arm.tree.name}-{number}-{rep}.txt" if args.py_spy else None
                    result = run_once(broker.bootstrap, arm.tree, args.events, work, spy, arm.env, arm.command)
                    results[arm.label].append(result)
                    print(f"{arm.label}: {result}", flush=True)
        finally:
            stop_all()
            broker.stop()
    for label, runs in results.items():
        rate = statistics.median(r["events_per_s"] for r in runs)
        cpu = statistics.median(r["cpu_us_per_event"] for r in runs)
        print(f"{label}: median {rate:,.0f} events/s, {cpu} us CPU an event over {len(runs)} runs", flush=True)


if __name__ == "__main__":
    # Children inherit it: both arms hash strings (and so order sets) alike.
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
