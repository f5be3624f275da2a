"""Assembling the pipeline from the configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from espwire.config import Settings
from processors.stages import SAFE_LEASE_SECONDS, build_stages


@pytest.mark.parametrize(("lease", "warned"), [(10.0, True), (SAFE_LEASE_SECONDS, False), (60.0, False)])
async def test_a_lease_shorter_than_the_producers_delivery_timeout_is_warned_about(
    lease: float, warned: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.model_validate(
        {"datadir": str(tmp_path), "dedupe": {"store": "memory", "lease_seconds": lease}, "enrich": {"geoip": False}}
    )
    _, closeables = await build_stages(settings, "127.0.0.1:9")
    for closeable in closeables:
        await closeable.close()  # type: ignore[attr-defined]
    assert any("lease_seconds" in r.getMessage() for r in caplog.records) is warned
