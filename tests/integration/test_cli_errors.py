"""What an operator can fix gets one line and exit status 2, not a traceback; a second `espwire dev` does not
join the first one's broker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from espwire.broker import free_port


def _espwire(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESPWIRE_")}
    return subprocess.run(
        [sys.executable, "-m", "espwire.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_a_second_dev_refuses_a_taken_broker_port(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = _espwire(
            "dev", "--kafka-port", str(port), "--port", str(free_port()), "--data-dir", str(tmp_path), cwd=tmp_path
        )
    assert done.returncode == 2
    assert f"port {port} is taken" in done.stderr
    assert "espwire dev is running" not in done.stderr


def test_operational_errors_are_one_line(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    done = _espwire("db", "migrate", "--dsn", f"postgresql://postgres@{dead}/test", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("espwire db: ") and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
