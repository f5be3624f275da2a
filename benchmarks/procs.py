"""Child processes of a benchmark run: started in their own session, measured from /proc, always stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
_LIVE: list[Managed] = []  # everything started and not yet stopped, for stop_all()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"process exited with {process.returncode} before listening on {port}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s") from None
            time.sleep(0.05)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    return out


def tree(pid: int) -> list[int]:
    """The process and all its descendants."""
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo += _children(p)
    return pids


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process; OSError when it is gone or not on this machine."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15 of stat)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process tree (live processes only)."""
    total = 0.0
    for p in tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += process_cpu_seconds(p)
    return total


def rss_kib(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) in KiB, summed over the process tree."""
    now = peak = 0
    for p in tree(pid):
        with contextlib.suppress(OSError), open(f"/proc/{p}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    now += int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    peak += int(line.split()[1])
    return now, peak


@dataclass
class Usage:
    cpu_s: float
    wall_s: float
    rss_peak_kib: int

    def as_dict(self) -> dict[str, float]:
        return {"cpu_s": round(self.cpu_s, 3), "wall_s": round(self.wall_s, 3), "rss_peak_mib": self.rss_peak_mib}

    @property
    def rss_peak_mib(self) -> float:
        return round(self.rss_peak_kib / 1024, 1)


class Meter:
    """CPU and wall time of a process tree between start() and stop(); peak RSS at stop()."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._cpu0 = 0.0
        self._t0 = 0.0

    def start(self) -> Meter:
        self._cpu0 = cpu_seconds(self.pid)
        self._t0 = time.perf_counter()
        return self

    def stop(self) -> Usage:
        return Usage(cpu_seconds(self.pid) - self._cpu0, time.perf_counter() - self._t0, rss_kib(self.pid)[1])


class Managed:
    """A child process in its own session (so its whole group can be signalled), logging to a file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_dir: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
        _LIVE.append(self)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def meter(self) -> Meter:
        return Meter(self.pid)

    def stop(self, timeout: float = 8.0) -> None:
        if self in _LIVE:
            _LIVE.remove(self)
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def stop_all() -> None:
    for managed in list(reversed(_LIVE)):
        managed.stop()


def run_bounded(argv: Sequence[str], timeout: float, env: dict[str, str] | None = None) -> str:
    """Runs a command to completion (killed after ``timeout``), returns its stdout; raises on failure."""
    process = subprocess.Popen(
        list(argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise TimeoutError(f"{argv[0]} did not finish in {timeout:.0f}s") from None
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {process.returncode}: {err.decode(errors='replace')[-2000:]}")
    return out.decode(errors="replace")
