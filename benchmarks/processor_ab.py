"""Interleaved A/B runs of ``espwire process`` (Redis dedupe + every enricher) on the realistic mix.

    python -m benchmarks.processor_ab --events 120000 --reps 2 [--tree A] [--tree B] [--py-spy DIR]

Each ``--tree`` is a checkout of this repository (a ``git worktree`` of the commit to compare; default:
this one); the processor runs from it (``python -m espwire.cli process`` with the tree as its working
directory, which ``-m`` puts first on ``sys.path``, ahead of the editable install). Runs alternate
between the trees, ABBA..., each on a freshly filled topic and a fresh Redis key prefix (removed
after), so both see the same broker, Redis and machine load. The figure a
change is judged by: events/s from the first to the last event on the events topic, and the
processor's CPU per event over that span. ``--py-spy DIR`` records each run's samples (collapsed
stacks, for ``py-spy``'s flame graphs or a grep) as DIR/<tree>-<rep>.txt.
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
from pathlib import Path
from typing import Any

from benchmarks.loadgen import LoadGen, describe
from benchmarks.procs import Managed, stop_all
from benchmarks.redis_keys import drop_keys
from benchmarks.run import PY, REPO, _count_events, _fill, redis_env
from espwire.broker import EmbeddedBroker
from espwire.topics import Topics, ensure_topics


def run_once(
    bootstrap: str, tree: Path, events: int, work: Path, spy: Path | None, extra_env: dict[str, str] | None = None
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
    processor = Managed(f"processor-{prefix}", [PY, "-m", "espwire.cli", "process"], work / "logs", env=env, cwd=tree)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=120_000)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--tree", action="append", type=Path, help="a checkout to run (repeatable)")
    parser.add_argument("--py-spy", type=Path, help="directory for each run's py-spy samples")
    args = parser.parse_args()
    trees: list[Path] = args.tree or [REPO]
    if args.py_spy:
        args.py_spy.mkdir(parents=True, exist_ok=True)
    results: dict[Path, list[dict[str, Any]]] = {tree: [] for tree in trees}
    with tempfile.TemporaryDirectory(prefix="espwire-ab-") as tmp:
        work = Path(tmp)
        broker = EmbeddedBroker(log_path=work / "broker.log")
        broker.start()
        try:
            for rep in range(args.reps):
                for tree in trees if rep % 2 == 0 else reversed(trees):
                    spy = args.py_spy / f"{tree.name}-{rep}.txt" if args.py_spy else None
                    result = run_once(broker.bootstrap, tree, args.events, work, spy)
                    results[tree].append(result)
                    print(f"{tree}: {result}", flush=True)
        finally:
            stop_all()
            broker.stop()
    for tree, runs in results.items():
        rate = statistics.median(r["events_per_s"] for r in runs)
        cpu = statistics.median(r["cpu_us_per_event"] for r in runs)
        print(f"{tree}: median {rate:,.0f} events/s, {cpu} us CPU an event over {len(runs)} runs", flush=True)


if __name__ == "__main__":
    # Children inherit it: both arms hash strings (and so order sets) alike.
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
