"""A real Prometheus scrapes a real gateway: the deployed scrape job and alert rules work end to end.

The Prometheus configuration is generated from deploy/prometheus/prometheus.yml: its gateway job with
the target replaced by the test's gateway, a 1 s scrape interval, and the real alerts.yml loaded.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from espwire.broker import free_port
from espwire.config import REPO_ROOT
from espwire.topics import Topics, ensure_topics
from tests.deploy.processes import child_process, gateway_process, wait_http_ok

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
BODY = (Path(__file__).parents[1] / "data/providers/sparkpost/auth_token.body").read_bytes()
GOOD = {"X-MessageSystems-Webhook-Token": "sp-test-token", "Content-Type": "application/json"}
BAD = {"X-MessageSystems-Webhook-Token": "wrong", "Content-Type": "application/json"}

pytestmark = pytest.mark.timeout(90)


def scrape_config_for(gateway_target: str, directory: Path) -> Path:
    """deploy/prometheus/prometheus.yml, scraping only ``gateway_target`` (every second)."""
    config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update({"scrape_interval": "1s", "evaluation_interval": "1s"})
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "espwire-gateway"]
    job["static_configs"][0]["targets"] = [gateway_target]
    config["scrape_configs"] = [job]
    shutil.copy(PROMETHEUS_DIR / "alerts.yml", directory / "alerts.yml")
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def query(session: aiohttp.ClientSession, api: str, promql: str) -> list[dict[str, Any]]:
    async with session.get(f"{api}/api/v1/query", params={"query": promql}) as response:
        body = await response.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def test_prometheus_scrapes_the_gateway_with_the_deployed_config(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, prometheus_binary: str
) -> None:
    await ensure_topics(kafka_bootstrap, Topics(topic_prefix).core(), 2)
    prometheus_port = free_port()
    api = f"http://127.0.0.1:{prometheus_port}"
    with gateway_process("gateway", kafka_bootstrap, topic_prefix, tmp_path / "gw", tmp_path) as gateway:
        await wait_http_ok(f"{gateway.url}/readyz", 30, gateway.child)
        config = scrape_config_for(f"127.0.0.1:{gateway.port}", tmp_path)
        argv = [
            prometheus_binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ]
        with child_process("prometheus", argv, tmp_path) as prometheus:
            await wait_http_ok(f"{api}/-/ready", 30, prometheus)
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
                for headers, expected in [(GOOD, 200)] * 5 + [(BAD, 401)] * 2:
                    async with session.post(f"{gateway.url}/hooks/sparkpost", data=BODY, headers=headers) as response:
                        assert response.status == expected

                wanted = {"200": 5.0, "401": 2.0}
                seen: dict[str, float] = {}
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and seen != wanted:
                    series = await query(session, api, "espwire_gateway_requests_total")
                    seen = {}
                    for item in series:
                        labels = item["metric"]
                        assert labels["job"] == "espwire-gateway" and labels["component"] == "gateway", labels
                        assert labels["instance"] == f"127.0.0.1:{gateway.port}", labels
                        assert (labels["source"], labels["provider"]) == ("sparkpost", "sparkpost"), labels
                        seen[labels["status"]] = float(item["value"][1])
                    await asyncio.sleep(0.5)
                assert seen == wanted, f"Prometheus has {seen}; log:\n{prometheus.log_tail()}"

                # The histogram behind the dashboard's latency panel, and the gauges behind two alerts.
                p99 = await query(
                    session, api, "histogram_quantile(0.99, sum by (le, path) (espwire_gateway_ack_seconds_bucket))"
                )
                # Both paths are exported from the start; only Kafka acknowledged anything here.
                acked = await query(session, api, "sum by (path) (espwire_gateway_ack_seconds_count)")
                assert {item["metric"]["path"]: float(item["value"][1]) for item in acked} == {
                    "kafka": 5.0,
                    "spool": 0.0,
                }
                assert "kafka" in {item["metric"]["path"] for item in p99}
                kafka_up = await query(session, api, "espwire_gateway_kafka_up")
                assert [float(item["value"][1]) for item in kafka_up] == [1.0]
                assert await query(session, api, "espwire_gateway_spool_bytes") != []

                # The deployed alert rules load and evaluate (none of them fires on a healthy gateway).
                async with session.get(f"{api}/api/v1/rules") as response:
                    groups = (await response.json())["data"]["groups"]
                rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
                assert {"EspwireGatewayErrors", "EspwireSpoolNotEmpty", "EspwireKafkaDown"} <= rules.keys()
                assert all(rule["health"] != "err" for rule in rules.values()), rules
            assert prometheus.terminate() == 0, prometheus.log_tail()
