"""promtool on the deployed Prometheus files: configuration, rule syntax, and unit tests of the alerts."""

from __future__ import annotations

import subprocess

import yaml

from espwire.config import REPO_ROOT

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"


def run_promtool(promtool: str, *args: str) -> str:
    result = subprocess.run(
        [promtool, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def test_prometheus_config_is_valid(promtool: str) -> None:
    output = run_promtool(promtool, "check", "config", "prometheus.yml")
    assert "1 rule files found" in output  # alerts.yml is found and checked with it


def test_alert_rules_are_valid(promtool: str) -> None:
    output = run_promtool(promtool, "check", "rules", "alerts.yml")
    assert "SUCCESS" in output


def test_alert_rules_unit_tests_pass(promtool: str) -> None:
    run_promtool(promtool, "test", "rules", "alerts.test.yml")


def test_unit_tests_cover_most_alerts() -> None:
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts.test.yml").read_text())
    tested = {case["alertname"] for test in tests["tests"] for case in test.get("alert_rule_test", [])}
    fired = {
        case["alertname"] for test in tests["tests"] for case in test.get("alert_rule_test", []) if case["exp_alerts"]
    }
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule}
    assert tested <= alerts, f"tests name alerts that do not exist: {tested - alerts}"
    assert len(fired) >= 2
    # Only the plain `up == 0` alert goes without a unit test.
    assert alerts - tested <= {"EspwireGatewayDown"}, alerts - tested
