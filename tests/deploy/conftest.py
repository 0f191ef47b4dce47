"""Shared fixtures for the deploy-file tests: the parsed files and the metric names that exist."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
RULES_FILE = PROMETHEUS_DIR / "rules" / "itsm.rules.yml"
RULES_TEST_FILE = PROMETHEUS_DIR / "tests" / "itsm.rules.test.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"

# SPEC §8: every metric name the services expose. Dashboards and rules may use nothing else
# (besides Prometheus' own `up` and the recording rules of RULES_FILE).
INDICATOR_GAUGES = {
    "itsm_ticket_opened_count",
    "itsm_ticket_resolved_count",
    "itsm_incident_resolution_time_seconds",
    "itsm_incident_sla_resolution_met_ratio",
    "itsm_incident_sla_response_met_ratio",
    "itsm_incident_backlog_count",
    "itsm_incident_response_time_seconds",
    "itsm_change_success_ratio",
    "itsm_change_failure_ratio",
    "itsm_ci_availability_ratio",
    "itsm_service_availability_ratio",
    "itsm_service_health_score",
    "itsm_csat_score",
    "itsm_call_answer_ratio",
    "itsm_review_completion_ratio",
}
OBJECTIVE_GAUGES = {
    "itsm_objective_status",
    "itsm_objective_target",
    "itsm_indicator_drift_score",
}
OPERATIONAL_PLAIN = {
    "itsm_collector_events_total",
    "itsm_collector_consumer_lag",
    "itsm_aggregator_dirty_windows",
    "itsm_aggregator_due_windows",
    "itsm_aggregator_parked_windows",
    "itsm_aggregator_window_failures_total",
    "itsm_aggregator_window_points",
    "itsm_http_requests_total",
    # the api's /metrics: the state of the snapshot it serves, and what the budget left out
    "itsm_exposition_age_seconds",
    "itsm_exposition_stale",
    "itsm_exposition_series_dropped",
}
OPERATIONAL_HISTOGRAMS = {
    "itsm_collector_batch_seconds",
    "itsm_collector_batch_size",
    "itsm_aggregator_run_seconds",
    "itsm_event_to_indicator_seconds",
    "itsm_http_request_seconds",
}

METRIC_NAME = re.compile(r"\bitsm_[a-z0-9_]+")
RECORDING_NAME = re.compile(r"\bitsm:[a-z0-9_:]+")


def known_metric_names() -> set[str]:
    """Names a PromQL expression may select: the series each histogram is exposed as included."""
    histogram_series = {
        f"{name}{suffix}"
        for name in OPERATIONAL_HISTOGRAMS
        for suffix in ("_bucket", "_sum", "_count")
    }
    return INDICATOR_GAUGES | OBJECTIVE_GAUGES | OPERATIONAL_PLAIN | histogram_series


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    data = load_yaml(REPO / "docker-compose.yml")
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


@pytest.fixture(scope="session")
def prometheus_config() -> dict[str, Any]:
    data = load_yaml(PROMETHEUS_CONFIG)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="session")
def rule_groups() -> list[dict[str, Any]]:
    data = load_yaml(RULES_FILE)
    return list(data["groups"])


@pytest.fixture(scope="session")
def recording_rule_names(rule_groups: list[dict[str, Any]]) -> set[str]:
    return {rule["record"] for group in rule_groups for rule in group["rules"] if "record" in rule}


@pytest.fixture(scope="session")
def alert_rules(rule_groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for group in rule_groups for rule in group["rules"] if "alert" in rule]


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip(
            "PROMTOOL NOT FOUND: the Prometheus rules, config and dashboard queries are NOT "
            "validated. Install it with `make prometheus` (Debian package `prometheus`)."
        )
    return path
