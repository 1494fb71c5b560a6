"""monitoring/: the alert rules pass `promtool check rules` and their unit tests (`promtool test
rules`: each alert fires and resolves); the Prometheus config, the Grafana dashboard and
docker-compose.yml are valid and refer only to metrics the app exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gtvision.metrics import exposition

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "monitoring"
RULES = MONITORING / "prometheus" / "alerts.yml"
RULE_TESTS = MONITORING / "prometheus" / "alerts_test.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "gtvision.json"
METRIC_NAME = re.compile(r"\bgtvision_[a-z_]+\b")
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def promtool(*args: str) -> subprocess.CompletedProcess:
    assert shutil.which("promtool"), "promtool is not installed: run scripts/install-test-deps"
    return subprocess.run(
        ["promtool", *args], capture_output=True, text=True, timeout=60, cwd=RULES.parent
    )


def alert_names() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]


def test_rules_are_valid():
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in result.stdout


def test_rule_unit_tests_pass():
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_firing_then_resolving():
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    checks: dict[str, list[tuple[int, bool]]] = {}
    for case in tests:
        for check in case["alert_rule_test"]:
            minutes = int(check["eval_time"].removesuffix("m"))
            checks.setdefault(check["alertname"], []).append((minutes, bool(check["exp_alerts"])))
    required = {
        "GTVisionCameraOffline",
        "GTVisionRecordingStalled",
        "GTVisionDiskUnderFloorSoon",
        "GTVisionSupervisorHeartbeatStale",
        "GTVisionJobWorkerHeartbeatStale",
        "GTVisionClipFailures",
        "GTVisionJobBacklog",
    }
    assert required <= set(alert_names())
    for name in alert_names():
        timeline = sorted(checks.get(name, []))
        fired = [minute for minute, firing in timeline if firing]
        assert fired, f"{name}: no test where it fires"
        assert any(not firing for minute, firing in timeline if minute < fired[0]), name
        assert any(not firing for minute, firing in timeline if minute > fired[-1]), (
            f"{name}: no test where it resolves"
        )


def test_prometheus_config_is_valid(tmp_path):
    config = yaml.safe_load((MONITORING / "prometheus" / "prometheus.yml").read_text())
    # Paths of the container, here in the working tree.
    config["rule_files"] = [str(RULES)]
    token = tmp_path / "token"
    token.write_text("t")
    config["scrape_configs"][0]["authorization"]["credentials_file"] = str(token)
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = promtool("check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_prometheus_and_grafana_provisioned_from_monitoring():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"prometheus", "grafana"} <= services.keys()
    assert services["web"]["environment"]["METRICS_TOKEN"].startswith("${METRICS_TOKEN")
    mounts = services["prometheus"]["volumes"] + services["grafana"]["volumes"]
    for mount in mounts:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (ROOT / source).exists(), source
    for name in ("prometheus", "grafana"):
        assert any(m.startswith("./monitoring/") for m in services[name]["volumes"]), name
    for provisioning in (MONITORING / "grafana" / "provisioning").rglob("*.yml"):
        assert yaml.safe_load(provisioning.read_text())["apiVersion"] == 1


@pytest.mark.django_db
def test_dashboard_and_alerts_use_only_exposed_metrics():
    exposed = {
        line.split()[2]
        for line in exposition().decode().splitlines()
        if line.startswith("# TYPE gtvision_")
    }
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert exprs and dashboard["uid"]
    rules = yaml.safe_load(RULES.read_text())["groups"]
    exprs += [str(rule["expr"]) for group in rules for rule in group["rules"]]
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    for name in sorted(used):
        base = next((name[: -len(s)] for s in SUFFIXES if name.endswith(s)), name)
        assert name in exposed or base in exposed, f"{name} is not exposed by /metrics"
