"""Closed-loop load with wrk: a Lua script for the POST body and headers, percentiles as JSON from done()."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.procs import run_bounded

# wrk prints 50/75/90/99 with --latency; done() adds p99.9 and the error counts as one JSON line.
LUA = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
{headers}
local bodies = {{
{bodies}
}}
local reqs = {{}}
local i = 0
function init(args)
  for k, b in ipairs(bodies) do
    reqs[k] = wrk.format("POST", "{path}", nil, b)
  end
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50": %d, "p90": %d, "p99": %d, "p999": %d, "max": %d, "mean": %f}}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
"""


def write_script(path: Path, url_path: str, bodies: list[bytes], headers: dict[str, str]) -> Path:
    def lua_string(raw: bytes) -> str:
        text = raw.decode()
        level = "=" * 4
        assert f"]{level}]" not in text
        return f"[{level}[{text}]{level}]"

    header_lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    body_lines = ",\n".join(f"  {lua_string(b)}" for b in bodies)
    path.write_text(LUA.format(headers=header_lines, bodies=body_lines, path=url_path))
    return path


@dataclass
class WrkResult:
    connections: int
    requests: int
    duration_s: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "connections": self.connections,
            "requests": self.requests,
            "duration_s": round(self.duration_s, 3),
            "rps": round(self.rps, 1),
            "non_2xx": self.non_2xx,
            "socket_errors": self.socket_errors,
            "latency_ms": {
                "p50": self.p50_ms,
                "p90": self.p90_ms,
                "p99": self.p99_ms,
                "p99.9": self.p999_ms,
                "max": self.max_ms,
                "mean": self.mean_ms,
            },
        }


def run_wrk(port: int, script: Path, connections: int, duration: float, threads: int = 1) -> WrkResult:
    out = run_bounded(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration:g}s",
            "--timeout",
            "5s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/",
        ],
        timeout=duration + 30,
    )
    line = next((x for x in out.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out[-2000:]}")
    d = json.loads(line[len("WRKJSON ") :])
    ms = 1000.0
    return WrkResult(
        connections=connections,
        requests=d["requests"],
        duration_s=d["duration_us"] / 1e6,
        non_2xx=d["status"],
        socket_errors=d["connect"] + d["read"] + d["write"] + d["timeout"],
        p50_ms=d["p50"] / ms,
        p90_ms=d["p90"] / ms,
        p99_ms=d["p99"] / ms,
        p999_ms=d["p999"] / ms,
        max_ms=d["max"] / ms,
        mean_ms=round(d["mean"] / ms, 3),
    )
