"""results.json, results.md and chart.png of one run; ratios to the baselines and the targets."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

GATEWAY_ORDER = ["espwire", "aiohttp-uvloop", "aiohttp-asyncio", "nginx", "aiohttp+aiokafka", "fastapi+aiokafka"]
GATEWAY_LABEL = {
    "espwire": "espwire gateway (acks=all, embedded broker)",
    "aiohttp-uvloop": "bare aiohttp, uvloop",
    "aiohttp-asyncio": "bare aiohttp, asyncio",
    "nginx": "nginx `return 200`",
    "aiohttp+aiokafka": "aiohttp + aiokafka send_and_wait",
    "fastapi+aiokafka": "naive FastAPI + pydantic + send_and_wait",
}
# Where a py-spy frame's time belongs, by file path (first match wins).
PROFILE_BUCKETS = [
    ("aiokafka", "aiokafka (producer, protocol, record batches)"),
    ("prometheus_client", "prometheus metrics"),
    ("ingest_gateway/routes", "espwire handler (routes.py)"),
    ("ingest_gateway/publisher", "espwire publisher"),
    ("ingest_gateway/limits", "espwire limits/body read"),
    ("ingest_gateway/auth", "espwire auth"),
    ("espwire/envelope", "envelope + header JSON"),
    ("processors/timestamps", "utc_now()"),
    ("uuid", "uuid4"),
    ("aiohttp/web_protocol", "aiohttp server protocol"),
    ("aiohttp/web_request", "aiohttp request"),
    ("aiohttp/web_response", "aiohttp response"),
    ("aiohttp", "aiohttp (other)"),
    ("asyncio/runners", "event loop (uvloop C code: epoll, socket I/O, callbacks)"),
    ("asyncio", "asyncio machinery"),
    ("logging", "logging"),
]


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    if not a or not b or math.isnan(a) or math.isnan(b):
        return "-"
    return f"{a / b:.2f}x"


# -- profiles ---------------------------------------------------------------------------------------
def summarise_collapsed(text: str) -> dict[str, Any]:
    """py-spy raw output (collapsed stacks 'f (file:line);g (file:line) N') -> self/inclusive shares."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        self_time[_short(frames[-1])] += count
        for frame in {_short(f) for f in frames}:
            inclusive[frame] += count
        # Bucket: the innermost frame that belongs to a known bucket (espwire beats its libraries).
        bucket = "other"
        for frame in reversed(frames):
            found = next((label for key, label in PROFILE_BUCKETS if key in frame), None)
            if found:
                bucket = found
                break
        buckets[bucket] += count
    if not total:
        return {"samples": 0}

    def share(counter: Counter[str], n: int) -> list[tuple[str, float]]:
        return [(name, round(100 * c / total, 1)) for name, c in counter.most_common(n)]

    return {
        "samples": total,
        "buckets_pct": share(buckets, 20),
        "self_pct": share(self_time, 25),
        "inclusive_pct": share(inclusive, 40),
    }


def _short(frame: str) -> str:
    # "handle (ingest_gateway/routes.py:55)" -> keep function and a short path, drop the line number
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


def format_profile(summary: dict[str, Any]) -> str:
    lines = [f"py-spy samples: {summary.get('samples', 0)} (idle samples excluded)", "", "By component:"]
    lines += [f"  {pct:5.1f}%  {name}" for name, pct in summary.get("buckets_pct", [])]
    lines += ["", "Self time (top functions):"]
    lines += [f"  {pct:5.1f}%  {name}" for name, pct in summary.get("self_pct", [])]
    lines += ["", "Inclusive time:"]
    lines += [f"  {pct:5.1f}%  {name}" for name, pct in summary.get("inclusive_pct", [])]
    return "\n".join(lines) + "\n"


# -- targets ---------------------------------------------------------------------------------------
def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cases = results.get("gateway", {}).get("cases", {})
    esp = cases.get("espwire", {})
    top = max(esp, key=lambda c: int(c)) if esp else None

    def rps(case: str) -> float | None:
        entry = cases.get(case, {}).get(top) if top else None
        return entry["rps"] if entry else None

    def add(name: str, value: float | None, goal: float, higher: bool, unit: str) -> None:
        if value is None or math.isnan(value):
            out.append({"target": name, "value": None, "goal": goal, "met": None, "unit": unit})
            return
        met = value >= goal if higher else value <= goal
        out.append({"target": name, "value": round(value, 3), "goal": goal, "met": met, "unit": unit})

    e, bare, fast = rps("espwire"), rps("aiohttp-uvloop"), rps("fastapi+aiokafka")
    add(f"gateway / bare aiohttp (uvloop), {top} conns", e / bare if e and bare else None, 0.8, True, "x")
    add(f"gateway / naive FastAPI, {top} conns", e / fast if e and fast else None, 5.0, True, "x")
    p99 = esp.get("64", {}).get("p99_ms") if esp else None
    add("gateway p99 at 64 connections", p99, 10.0, False, "ms")
    proc = results.get("processor", {})
    loop = proc.get("consumer_loop", {}).get("events_per_s")
    ceiling = proc.get("ceiling_aiokafka", {}).get("records_per_s")
    add("processor / aiokafka batched ceiling", loop / ceiling if loop and ceiling else None, 0.4, True, "x")
    add("processor events/s per process (adapt + publish)", loop, 30_000, True, "events/s")
    redis_loop = proc.get("consumer_loop_redis", {}).get("events_per_s")
    add("processor events/s, Redis dedupe + every enricher", redis_loop, 25_000, True, "events/s")
    steady = results.get("end_to_end_steady", {})
    if steady:
        add(f"end-to-end p99 at {_fmt(steady['target_rate'])} req/s", steady["e2e_ms"]["p99"], 500.0, False, "ms")
    e2e = results.get("end_to_end", {}).get("e2e_ms", {}).get("p99")
    add("end-to-end p99 at 50% load", e2e, 500.0, False, "ms")
    return out


# -- markdown --------------------------------------------------------------------------------------
def markdown(results: dict[str, Any]) -> str:
    m = results.get("machine", {})
    pk = ", ".join(f"{k} {v}" for k, v in m.get("packages", {}).items())
    lines = [
        f"# espwire benchmarks - {results.get('started_at', '?')} ({results.get('mode')} mode, "
        f"{results.get('repetitions')} repetition(s), medians)",
        "",
        f"- machine: {m.get('nproc')} CPUs ({m.get('cpu_model')}), {m.get('memory_gib')} GiB, "
        f"Linux {m.get('kernel')}, Python {m.get('python')}",
        f"- packages: {pk}",
        f"- tools: {', '.join(m.get('tools', {}).values())}; espwire commit {m.get('git_commit')}",
        f"- load average at start {results.get('loadavg_start')}, at end {results.get('loadavg_end')}; "
        f"run took {results.get('duration_s')} s. Shared machine: absolute figures move +-30%, read the ratios.",
        "",
        "## Targets",
        "",
        "| target | measured | goal | met |",
        "|---|---|---|---|",
    ]
    for t in targets(results):
        value = "-" if t["value"] is None else f"{t['value']:,.2f} {t['unit']}"
        goal = f"{'>=' if t['unit'] != 'ms' else '<='} {t['goal']:,g} {t['unit']}"
        met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
        lines.append(f"| {t['target']} | {value} | {goal} | {met} |")

    gw = results.get("gateway")
    if gw:
        cases = gw["cases"]
        lines += [
            "",
            "## Gateway (closed loop, wrk)",
            "",
            f"One process per server; {gw['load_generator']}; {gw['body_bytes']} B body, one event per request "
            "(events/s = req/s). CPU = the server's own CPU time (the broker's in brackets) per 1,000 events.",
            "",
            "| server | conns | req/s | x bare uvloop | x FastAPI | x nginx | p50 ms | p99 ms | p99.9 ms "
            "| CPU ms/1k ev | peak RSS MiB | non-2xx |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for case in GATEWAY_ORDER:
            for conns, e in cases.get(case, {}).items():

                def base(name: str, conns: str = conns) -> float | None:
                    entry = cases.get(name, {}).get(conns)
                    return entry["rps"] if entry else None

                cpu = _fmt(e["cpu_ms_per_1000_events"], 1)
                if not math.isnan(e.get("broker_cpu_ms_per_1000_events", float("nan"))):
                    cpu += f" ({_fmt(e['broker_cpu_ms_per_1000_events'], 1)})"
                lines.append(
                    f"| {GATEWAY_LABEL[case]} | {conns} | {_fmt(e['rps'])} | {_ratio(e['rps'], base('aiohttp-uvloop'))}"
                    f" | {_ratio(e['rps'], base('fastapi+aiokafka'))} | {_ratio(e['rps'], base('nginx'))}"
                    f" | {_fmt(e['p50_ms'], 2)} | {_fmt(e['p99_ms'], 2)} | {_fmt(e['p999_ms'], 2)} | {cpu}"
                    f" | {_fmt(e['rss_peak_mib'], 1)} | {e['non_2xx']} |"
                )
    instr = results.get("instructions")
    if instr:
        bare = next((r["instructions_per_request"] for r in instr if r["case"] == "aiohttp-uvloop"), None)
        lines += [
            "",
            "## Gateway, instructions per request (callgrind)",
            "",
            "Each server under `valgrind --tool=callgrind`, counters zeroed after a warm-up, wrk at 64 connections; "
            "instructions counted in the server process only (not the broker, not the kernel). Repeatable whatever "
            "else the machine runs, unlike req/s: `python -m benchmarks.instructions`.",
            "",
            "| server | requests | instructions/request | x bare aiohttp |",
            "|---|---|---|---|",
        ]
        for r in instr:
            lines.append(
                f"| {r['case']} | {r['requests']:,} | {r['instructions_per_request']:,} | "
                f"{_ratio(r['instructions_per_request'], bare)} |"
            )
    ol = results.get("open_loop")
    if ol:
        lines += [
            "",
            "## Gateway, open loop (no coordinated omission)",
            "",
            f"{ol['generator']}. Rates are shares of the espwire gateway's closed-loop max "
            f"({_fmt(ol['espwire_max_rps'])} req/s).",
            "",
            "| load | target req/s | achieved | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | CPU ms/1k ev | errors |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for share, r in ol["runs"].items():
            lat = r["latency_ms"]
            bad = r["errors"] + sum(v for k, v in r["statuses"].items() if k != "200")
            lines.append(
                f"| {share} | {_fmt(r['target_rate'])} | {_fmt(r['achieved_rate'])} | {lat['p50']} | {lat['p90']} "
                f"| {lat['p99']} | {lat['p99.9']} | {lat['max']} | {_fmt(r['cpu_ms_per_1000_events'], 1)} | {bad} |"
            )
    proc = results.get("processor")
    if proc:
        ceiling = proc.get("ceiling_aiokafka", {}).get("records_per_s")
        rdk = proc.get("ceiling_confluent", {}).get("records_per_s")
        lines += [
            "",
            "## Processor",
            "",
            "| case | events (records)/s | x aiokafka ceiling | x librdkafka ceiling | CPU ms/1k | note |",
            "|---|---|---|---|---|---|",
        ]
        pa = proc.get("pipeline_alone")
        if pa:
            lines.append(
                f"| Pipeline.run alone, in memory | {_fmt(pa['events_per_s'])} | {_ratio(pa['events_per_s'], ceiling)}"
                f" | {_ratio(pa['events_per_s'], rdk)} | {_fmt(pa['cpu_ms_per_1000'], 1)} | "
                f"{pa['events_per_pass']} events in {pa['records_per_pass']} requests, no Kafka |"
            )
        for key in (
            "consumer_loop",
            "consumer_loop_redis",
            "consumer_loop_dev",
            "passthrough_send",
            "passthrough_batch",
        ):
            cl = proc.get(key)
            if not cl:
                continue
            what = (
                cl.get("label", "consumer loop")
                if key.startswith("passthrough")
                else f"`espwire process`, {cl.get('label', 'consumer loop')}"
            )
            lines.append(
                f"| {what} | {_fmt(cl['events_per_s'])} | "
                f"{_ratio(cl['events_per_s'], ceiling)} | {_ratio(cl['events_per_s'], rdk)} | "
                f"{_fmt(cl['cpu_ms_per_1000_events'], 1)} | {cl['events_seen']}/{cl['events_expected']} events from "
                f"{cl['mix']['requests']} pre-filled raw records |"
            )
        for key in ("ceiling_aiokafka", "ceiling_confluent"):
            c = proc.get(key)
            if c:
                lines.append(
                    f"| baseline: {c['client']} producing {c['record_bytes']} B records, acks=all | "
                    f"{_fmt(c['records_per_s'])} | {_ratio(c['records_per_s'], ceiling)} | "
                    f"{_ratio(c['records_per_s'], rdk)} | {_fmt(c['cpu_ms_per_1000'], 1)} | "
                    f"broker {_fmt(c.get('broker_cpu_ms_per_1000'), 1)} CPU ms/1k |"
                )
        if pa:
            st = pa["stage_us_per_event"]
            produce = proc.get("ceiling_aiokafka", {}).get("cpu_ms_per_1000")
            lines += [
                "",
                f"Per-stage cost, us per event: envelope {st['envelope']}, parse+adapt {st['adapt']}, "
                f"serialise {st['serialise']}, produce (aiokafka client CPU per record at its ceiling) "
                f"{_fmt(produce, 1)}. cProfile of one pass: processor_profile.txt.",
            ]
            mix = pa["mix"]
            parts = ", ".join(f"{p} {v['requests']} req/{v['events']} ev" for p, v in mix["by_provider"].items())
            lines.append(f"Mix: {parts}; {mix['redeliveries']} redeliveries.")
    runs = [results[key] for key in ("end_to_end_steady", "end_to_end") if results.get(key)]
    if runs:
        lines += ["", "## End to end", ""]
        lines.append(f"Gateway + processor running, open loop for {runs[0]['elapsed_s']} s each; {runs[0]['note']}.")
        lines += ["", "| load | stage | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | matched |"]
        lines.append("|---|---|---|---|---|---|---|---|")
        for e2e in runs:
            lat, ack = e2e["e2e_ms"], e2e["latency_ms"]
            load = f"{_fmt(e2e['target_rate'])} req/s ({e2e.get('label', '50% of the gateway max')})"
            lines += [
                f"| {load} | POST -> 200 | {ack['p50']} | {ack['p90']} | {ack['p99']} | {ack['p99.9']} "
                f"| {ack['max']} | {e2e['completed']} |",
                f"| {load} | 200 -> event on events topic | {lat['p50']} | {lat['p90']} | {lat['p99']} "
                f"| {lat['p99.9']} | {lat['max']} | {e2e['e2e_matched']} (missing {e2e['e2e_missing']}) |",
            ]
    prof = results.get("gateway_profile")
    if prof and prof.get("samples"):
        lines += ["", "## Where the gateway's time goes (py-spy, wrk at 64 connections)", ""]
        lines += ["| component | share of samples |", "|---|---|"]
        lines += [f"| {name} | {pct}% |" for name, pct in prof["buckets_pct"]]
        lines += ["", "Top self time: " + "; ".join(f"{n} {p}%" for n, p in prof["self_pct"][:10]) + "."]
        lines.append("Full profile: gateway_profile.txt.")
    if results.get("errors"):
        lines += ["", "## Errors", ""] + [f"- {e}" for e in results["errors"]]
    return "\n".join(lines) + "\n"


# -- chart -----------------------------------------------------------------------------------------
def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = results.get("gateway", {}).get("cases", {})
    names = [c for c in GATEWAY_ORDER if c in cases]
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.5))
    conns_list = sorted({int(k) for c in names for k in cases[c]})
    width = 0.8 / max(1, len(conns_list))
    for i, conns in enumerate(conns_list):
        xs = [j + i * width for j in range(len(names))]
        rps = [cases[c].get(str(conns), {}).get("rps", 0) for c in names]
        p99 = [cases[c].get(str(conns), {}).get("p99_ms", 0) for c in names]
        axes[0].bar(xs, rps, width, label=f"{conns} conns")
        axes[1].bar(xs, p99, width, label=f"p99, {conns} conns")
    for ax, title in ((axes[0], "Gateway throughput (req/s = events/s)"), (axes[1], "Gateway p99 latency (ms, log)")):
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(names))])
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_title(title)
        ax.legend(fontsize=8)
    axes[1].set_yscale("log")
    axes[1].axhline(10, color="red", linestyle="--", linewidth=0.8)
    proc = results.get("processor", {})
    labels, values = [], []
    for key, label in (
        ("pipeline_alone", "pipeline alone"),
        ("consumer_loop", "consumer loop"),
        ("ceiling_aiokafka", "aiokafka ceiling"),
        ("ceiling_confluent", "librdkafka ceiling"),
    ):
        entry = proc.get(key)
        if entry:
            labels.append(label)
            values.append(entry.get("events_per_s") or entry.get("records_per_s") or 0)
    axes[2].bar(labels, values, color=["tab:blue", "tab:blue", "tab:gray", "tab:gray"][: len(labels)])
    axes[2].axhline(30_000, color="red", linestyle="--", linewidth=0.8)
    axes[2].set_title("Processor events/s per process (ceilings: 1 KB records/s)")
    axes[2].tick_params(axis="x", labelsize=8, rotation=20)
    fig.suptitle(f"espwire benchmarks {results.get('started_at', '')} - {results.get('mode')} mode")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(results: dict[str, Any], out: Path) -> None:
    results["targets"] = targets(results)
    (out / "results.json").write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)
    )
    (out / "results.md").write_text(markdown(results))
    try:
        chart(results, out / "chart.png")
    except Exception as exc:  # a chart is a nice-to-have, the figures are in the JSON and Markdown
        (out / "chart-error.txt").write_text(repr(exc))
