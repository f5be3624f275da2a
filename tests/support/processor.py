"""Test helpers for `espwire process` as a child process with Redis dedupe, and the raw batches it reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

from espwire.envelope import Envelope
from tests.support.kafka import produce


def sparkpost_batch(batch: int, size: int) -> bytes:
    """A SparkPost webhook body of ``size`` deliveries with event ids unique to (batch, position)."""
    events = [
        {
            "msys": {
                "message_event": {
                    "type": "delivery",
                    "event_id": f"{batch:06d}{n:06d}",
                    "rcpt_to": f"user{n}@example.com",
                    "timestamp": "1795163700",
                }
            }
        }
        for n in range(size)
    ]
    return orjson.dumps(events)


def sparkpost_request(batch: int, size: int, request_id: str | None = None) -> Envelope:
    """The envelope the gateway makes of ``sparkpost_batch(batch, size)`` posted to source "sparkpost"."""
    body = sparkpost_batch(batch, size)
    return Envelope(
        "sparkpost", "sparkpost", request_id or f"req-{batch}", "2026-11-24T00:00:00Z", "POST", "application/json", body
    )


async def post_raw(bootstrap: str, topic: str, envelopes: list[Envelope]) -> None:
    """Puts envelopes on the raw topic as the gateway does (value = body, the envelope as a header)."""
    await produce(bootstrap, topic, [(e.key, e.body, e.kafka_headers()) for e in envelopes])


def start_processor(
    bootstrap: str,
    prefix: str,
    datadir: Path,
    redis_url: str,
    *,
    failpoint: str | None = None,
    metrics_port: int = 0,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """`espwire process` on topics ``<prefix>.*`` with Redis dedupe under keys ``test:<prefix>:``; its
    output goes to ``datadir/processor.log``."""
    env = {
        **os.environ,
        "ESPWIRE_KAFKA_BOOTSTRAP": bootstrap,
        "ESPWIRE_KAFKA_TOPIC_PREFIX": prefix,
        "ESPWIRE_DATADIR": str(datadir),
        "ESPWIRE_DEDUPE_STORE": "redis",
        "ESPWIRE_DEDUPE_REDIS_URL": redis_url,
        "ESPWIRE_DEDUPE_KEY_PREFIX": f"test:{prefix}:",
        "ESPWIRE_DEDUPE_LEASE_SECONDS": "2",
        "ESPWIRE_PROCESSOR_GROUP_ID": f"{prefix}-processors",
        **(extra_env or {}),
    }
    env.pop("ESPWIRE_FAILPOINT", None)
    if failpoint:
        env["ESPWIRE_FAILPOINT"] = failpoint
    argv = [sys.executable, "-m", "espwire.cli", "process", "--metrics-host", "127.0.0.1"]
    with open(datadir / "processor.log", "ab") as log:
        return subprocess.Popen([*argv, "--metrics-port", str(metrics_port)], env=env, stdout=log, stderr=log)


async def metric_value(url: str, name: str, **labels: str) -> float | None:
    """One sample of a processor's /metrics (``url`` without the path), or None when it is absent."""
    import aiohttp
    from prometheus_client.parser import text_string_to_metric_families

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        async with session.get(f"{url}/metrics") as response:
            text = await response.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None
