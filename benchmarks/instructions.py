"""Instructions per request, counted by callgrind: a gateway figure that a busy machine does not move.

    python -m benchmarks.instructions [--seconds 20] [--connections 64] [--cases espwire,aiohttp-uvloop]
                                      [--keep-dumps DIR]

Each server runs under ``valgrind --tool=callgrind`` (about 50 times slower, so the absolute rate
means nothing); after a warm-up its counters are zeroed, wrk loads it for a fixed time, the counters
are dumped, and the count is divided by the requests wrk completed. Counting instructions is
repeatable whatever else the machine runs (req/s and CPU time on this shared 2-core VM move ±30%),
so the ratio to the bare aiohttp handler measured the same way is the figure to watch while
changing the hot path. It is not a throughput: cache misses, system calls and the broker's own
work are not in it. The broker runs natively; only the server is under valgrind.

``aiohttp-server`` is the bare handler on aiohttp's low-level ``web.Server``: what is left of the bare
figure without the Application, its router, middlewares and signals.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks.loadgen import LoadGen
from benchmarks.procs import Managed, free_port, stop_all, wait_for_port
from benchmarks.run import ESPWIRE, PY, REPO, SP_HEADERS, log
from benchmarks.wrk import run_wrk, write_script
from espwire.broker import EmbeddedBroker
from espwire.topics import Topics, ensure_topics

CASES = ("espwire", "aiohttp-uvloop", "aiohttp-server", "aiohttp+aiokafka")
_TOTAL = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def _argv(case: str, port: int, bootstrap: str) -> tuple[list[str], dict[str, str]]:
    if case == "espwire":
        env = {
            "ESPWIRE_KAFKA_BOOTSTRAP": bootstrap,
            "ESPWIRE_GATEWAY_PORT": str(port),
            "ESPWIRE_KAFKA_TOPIC_PREFIX": "instr-gw",
        }
        return [PY, ESPWIRE, "gateway"], env
    if case == "aiohttp-uvloop":
        return [PY, "-m", "benchmarks.baselines", "bare", "--loop", "uvloop", "--port", str(port)], {}
    if case == "aiohttp-server":
        return [PY, "-m", "benchmarks.baselines", "server", "--port", str(port)], {}
    if case == "aiohttp+aiokafka":
        argv = [PY, "-m", "benchmarks.baselines", "aiokafka", "--port", str(port)]
        return [*argv, "--bootstrap", bootstrap, "--topic", "instr-aiokafka.raw"], {}
    raise ValueError(case)


def count(
    case: str, bootstrap: str, script: Path, tmp: Path, seconds: float, connections: int, keep: Path | None = None
) -> dict[str, Any]:
    port = free_port()
    argv, env = _argv(case, port, bootstrap)
    env["ESPWIRE_DATADIR"] = str(tmp / f"data-{port}")
    out = tmp / f"callgrind-{case}.out"
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no"]
    server = Managed(f"callgrind-{case}", valgrind + argv, tmp / "logs", env=env, cwd=REPO)
    try:
        wait_for_port(port, 300, server.process)
        run_wrk(port, script, connections, 10)  # warm-up: imports done, caches and metadata filled
        pid = str(server.process.pid)
        subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True, timeout=60)
        load = run_wrk(port, script, connections, seconds)
        subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True, timeout=120)
        time.sleep(1)
        # The dump asked for above is the first numbered one; the final dump at exit is not counted.
        dumps = sorted(tmp.glob(f"callgrind-{case}.out.*"))
        totals = [int(m) for m in _TOTAL.findall(dumps[0].read_text("latin-1"))] if dumps else []
        if keep is not None and dumps:  # for callgrind_annotate
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(dumps[0], keep / f"callgrind-{case}.out")
    finally:
        server.stop()
    instructions = totals[0] if totals else 0
    return {
        "case": case,
        "requests": load.requests,
        "non_2xx": load.non_2xx,
        "instructions": instructions,
        "instructions_per_request": round(instructions / max(1, load.requests)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="wrk load after the warm-up, per server")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--keep-dumps", type=Path, help="copy each case's callgrind dump into this folder")
    args = parser.parse_args()
    if not shutil.which("valgrind") or not shutil.which("wrk"):
        print("needs valgrind and wrk: apt-get install -y valgrind wrk", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="espwire-instr-"))
    script = write_script(
        tmp / "post.lua", "/hooks/sparkpost", [LoadGen(seed=i).sparkpost_single_1kb() for i in range(32)], SP_HEADERS
    )
    results: list[dict[str, Any]] = []
    try:
        with EmbeddedBroker(port=free_port()) as broker:
            names = [n for p in ("instr-gw", "instr-aiokafka") for n in Topics(p).core()]
            asyncio.run(ensure_topics(broker.bootstrap, names, 4))
            for case in args.cases.split(","):
                log(f"callgrind: {case}")
                results.append(
                    count(case, broker.bootstrap, script, tmp, args.seconds, args.connections, args.keep_dumps)
                )
                log(f"  {results[-1]}")
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    bare = next((r for r in results if r["case"] == "aiohttp-uvloop"), None)
    for r in results:
        ratio = r["instructions_per_request"] / bare["instructions_per_request"] if bare else float("nan")
        print(f"{r['case']:20s} {r['instructions_per_request']:>10,} instructions/request  {ratio:.2f}x bare")
    if args.out:
        args.out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
