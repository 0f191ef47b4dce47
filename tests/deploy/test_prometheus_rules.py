"""deploy/prometheus and deploy/alertmanager: promtool accepts them, the rules' unit tests pass
and cover every alert, and the rules, scrape jobs and Alertmanager routes agree (SPEC §8)."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest

from services.aggregator.indicators import all_indicators

from .conftest import (
    DEPLOY,
    METRIC_NAME,
    PROMETHEUS_CONFIG,
    RECORDING_NAME,
    RULES_FILE,
    RULES_TEST_FILE,
    known_metric_names,
    load_yaml,
)

REQUIRED_ALERTS = {
    "ItsmObjectiveBreached",
    "ItsmObjectiveWarning",
    "ItsmKpiDrift",
    "ItsmCollectorLagHigh",
    "ItsmDeadLettersRising",
    "ItsmFreshnessSlow",
    "ItsmTargetDown",
}
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
MATCHER = re.compile(r'^\s*(\w+)\s*(=~|!~|!=|=)\s*"(.*)"\s*$')


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def test_rules_pass_promtool_check(promtool: str) -> None:
    result = run(promtool, "check", "rules", str(RULES_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rule_unit_tests_pass(promtool: str) -> None:
    result = run(promtool, "test", "rules", str(RULES_TEST_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_prometheus_config_passes_promtool_check_and_finds_the_rules(promtool: str) -> None:
    result = run(promtool, "check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    # The `rules/*.yml` glob, resolved against the config file's directory, found our file.
    assert RULES_FILE.name in result.stdout, result.stdout


def test_every_alert_the_spec_asks_for_is_shipped(alert_rules: list[dict[str, Any]]) -> None:
    names = [rule["alert"] for rule in alert_rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    missing = REQUIRED_ALERTS - set(names)
    assert not missing, f"alerts SPEC §8 asks for are missing: {missing}"


def test_every_alert_is_tested_firing_and_silent(alert_rules: list[dict[str, Any]]) -> None:
    suite = load_yaml(RULES_TEST_FILE)
    rule_files = {(RULES_TEST_FILE.parent / path).resolve() for path in suite["rule_files"]}
    assert rule_files == {RULES_FILE.resolve()}

    firing: set[str] = set()
    silent: set[str] = set()
    for case in suite["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules}
    assert names <= firing, f"no test shows these alerts firing: {names - firing}"
    assert names <= silent, f"no test shows these alerts staying silent: {names - silent}"
    assert (firing | silent) <= names, "tests name alerts that do not exist"


def test_every_alert_has_a_severity_a_duration_and_annotations(
    alert_rules: list[dict[str, Any]],
) -> None:
    for rule in alert_rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert re.fullmatch(r"[1-9]\d*[mh]", str(rule.get("for", ""))), f"{name}: no `for`"
        annotations = rule["annotations"]
        assert annotations.get("summary") and annotations.get("description"), name


def test_rules_use_only_metrics_that_exist(
    rule_groups: list[dict[str, Any]], recording_rule_names: set[str]
) -> None:
    known = known_metric_names()
    for rule in (rule for group in rule_groups for rule in group["rules"]):
        name = rule.get("record") or rule["alert"]
        unknown = set(METRIC_NAME.findall(rule["expr"])) - known
        assert not unknown, f"{name} uses metrics nobody exposes: {unknown}"
        unrecorded = set(RECORDING_NAME.findall(rule["expr"])) - recording_rule_names
        assert not unrecorded, f"{name} uses recording rules that do not exist: {unrecorded}"
    for record in recording_rule_names:
        # Prometheus naming: level:metric:operations.
        assert re.fullmatch(r"itsm:[a-z0-9_]+:[a-z0-9_]+", record), record


def test_the_known_names_are_derived_from_the_code() -> None:
    known = known_metric_names()
    assert {ind.metric_name for ind in all_indicators()} <= known
    assert {
        "itsm_objective_status",
        "itsm_objective_target",
        "itsm_objective_samples",
        "itsm_indicator_drift_score",
        "itsm_indicator_drifting",
        "itsm_improvements",
        "itsm_exposition_stale",
        "itsm_http_requests_total",
        "itsm_collector_events_total",
        "itsm_event_to_indicator_seconds_bucket",
    } <= known
    assert "itsm_collector_events" not in known  # a counter is exposed as its _total


def test_objective_and_drift_alerts_judge_complete_windows_and_the_drifting_flag(
    alert_rules: list[dict[str, Any]],
) -> None:
    exprs = {rule["alert"]: rule["expr"] for rule in alert_rules}
    assert 'itsm_objective_status{period="previous"} == 0' in exprs["ItsmObjectiveBreached"]
    warning = exprs["ItsmObjectiveWarning"]
    assert 'period="current"' in warning and "itsm_objective_samples >=" in warning
    assert "itsm_indicator_drifting == 1" in exprs["ItsmKpiDrift"]
    assert "abs(" not in exprs["ItsmKpiDrift"]


def test_target_alerts_watch_every_itsm_scrape_job(
    alert_rules: list[dict[str, Any]], prometheus_config: dict[str, Any]
) -> None:
    jobs = {j["job_name"] for j in prometheus_config["scrape_configs"]}
    itsm_jobs = {job for job in jobs if job.startswith("itsm-")}
    assert itsm_jobs == {"itsm-api", "itsm-collector", "itsm-aggregator"}
    exprs = {rule["alert"]: rule["expr"] for rule in alert_rules}
    down = re.search(r'up\{job=~"([^"]+)"\}', exprs["ItsmTargetDown"])
    assert down and set(down.group(1).split("|")) == itsm_jobs
    for job in itsm_jobs:
        assert f'absent(up{{job="{job}"}})' in exprs["ItsmTargetMissing"], job


def matchers(values: list[str]) -> dict[str, tuple[str, str]]:
    parsed = {}
    for value in values:
        match = MATCHER.match(value)
        assert match, f"not a matcher: {value}"
        parsed[match.group(1)] = (match.group(2), match.group(3))
    return parsed


def routes(route: dict[str, Any]) -> list[dict[str, Any]]:
    return [route, *(r for child in route.get("routes", []) for r in routes(child))]


def test_alertmanager_routes_match_the_alerts(alert_rules: list[dict[str, Any]]) -> None:
    config = load_yaml(ALERTMANAGER_CONFIG)
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    root = config["route"]
    assert {"service", "indicator"} <= set(root["group_by"])

    severities = {rule["labels"]["severity"] for rule in alert_rules}
    for route in routes(root):
        assert route["receiver"] in receivers, route
        for label, (op, value) in matchers(route.get("matchers", [])).items():
            if label == "severity":
                assert (op, value) in {("=", s) for s in severities}, route

    hooks = [hook for r in receivers.values() for hook in r.get("webhook_configs", [])]
    assert receivers[root["receiver"]].get("webhook_configs"), "default receiver needs a webhook"
    assert all(hook["url"].startswith(("http://", "https://")) for hook in hooks)

    alert_names = {rule["alert"] for rule in alert_rules}
    for inhibit in config.get("inhibit_rules", []):
        for side in ("source_matchers", "target_matchers"):
            op, pattern = matchers(inhibit[side])["alertname"]
            assert op in {"=", "=~"}
            named = set(pattern.split("|")) if op == "=~" else {pattern}
            assert named <= alert_names, f"inhibit rule names unknown alerts: {named}"


def test_alertmanager_config_passes_amtool() -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool not found (Debian `prometheus-alertmanager`): only parsed, not checked")
    result = run(amtool, "check-config", str(ALERTMANAGER_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
