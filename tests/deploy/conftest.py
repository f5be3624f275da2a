"""Fixtures of the deployment tests: the real tools (promtool, prometheus, haproxy, kubectl).

A missing tool is installed from the Debian packages (``apt-get install -y``, as root, bounded in
time). If it still cannot be had, the test skips naming the tool and the package, or fails when
``ESPWIRE_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading

import pytest

from tests.conftest import REQUIRE_SERVICES

# binary -> Debian package that provides it
DEBIAN_PACKAGES = {
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "haproxy": "haproxy",
    "kubectl": "kubernetes-client",
}
_install_lock = threading.Lock()
_attempted: set[str] = set()


def _apt_install(package: str) -> str:
    """Tries ``apt-get install -y PACKAGE`` once per session; returns what went wrong, or ''."""
    if package in _attempted:
        return f"apt-get install {package} already failed in this session"
    _attempted.add(package)
    if shutil.which("apt-get") is None:
        return "no apt-get on this machine"
    if os.geteuid() != 0:
        return "not root, cannot apt-get install"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
    try:
        result = subprocess.run(command, env=env, capture_output=True, timeout=300, check=False)
        if result.returncode != 0:  # the package lists may be missing on a fresh image
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=300, check=False)
            result = subprocess.run(command, env=env, capture_output=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        return f"apt-get install {package} took more than 300 s"
    if result.returncode != 0:
        return f"apt-get install {package} failed: {result.stderr.decode(errors='replace')[-300:]}"
    return ""


def require_tool(binary: str) -> str:
    """The path of ``binary``, installed from its Debian package if needed; skips (or fails in CI) otherwise."""
    path = shutil.which(binary)
    if path:
        return path
    package = DEBIAN_PACKAGES[binary]
    with _install_lock:
        problem = _apt_install(package)
    path = shutil.which(binary)
    if path:
        return path
    message = f"{binary} is not installed (Debian package {package!r}) and could not be installed: {problem}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; ESPWIRE_REQUIRE_SERVICES=1")
    pytest.skip(message)


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return require_tool("prometheus")


@pytest.fixture(scope="session")
def haproxy_binary() -> str:
    return require_tool("haproxy")


@pytest.fixture(scope="session")
def kubectl() -> str:
    return require_tool("kubectl")
