"""Shared fixtures for the deploy-file tests: the parsed files and the metric names that exist
(derived from the services' code, never listed by hand)."""

from __future__ import annotations

import math
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import create_engine

from services.aggregator.metrics import AggregatorMetrics
from services.aggregator.snapshot import snapshot_collectors
from services.api.app import http_metrics
from services.api.exposition import ExpositionStatus, Served
from services.catalog import CatalogCache
from services.collector.metrics import CollectorMetrics

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
RULES_FILE = PROMETHEUS_DIR / "rules" / "itsm.rules.yml"
RULES_TEST_FILE = PROMETHEUS_DIR / "tests" / "itsm.rules.test.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"

METRIC_NAME = re.compile(r"\bitsm_[a-z0-9_]+")
RECORDING_NAME = re.compile(r"\bitsm:[a-z0-9_:]+")
# The series a family of each type is exposed as (prometheus_client's `_created` left out).
SERIES_SUFFIXES = {
    "gauge": ("",),
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count", ""),
}


def exported_families() -> list[Metric]:
    """Every metric family the services expose (SPEC §8), from the code itself: the /metrics
    snapshot's collectors (each built-in indicator as itsm_<id>, objectives, drift,
    improvements) by their describe(), the api's own HTTP and snapshot-state metrics, and the
    collector's and the aggregator's prometheus_client registries."""
    # describe() reads nothing: an engine that never connects, and a catalog never loaded
    engine = create_engine("postgresql+psycopg://unused")
    clock = lambda: datetime.now(UTC)  # noqa: E731
    collectors: list[Collector] = [
        *snapshot_collectors(engine, ZoneInfo("UTC"), CatalogCache(), clock),
        ExpositionStatus(Served(b"", math.nan, stale=True)),
    ]
    families = [family for c in collectors for family in c.describe()]
    for register in (CollectorMetrics, AggregatorMetrics, http_metrics):
        registry = CollectorRegistry()
        register(registry)
        families += registry.collect()
    return families


def known_metric_names() -> set[str]:
    """Names a PromQL expression may select: each family as the series it is exposed as."""
    return {
        f"{family.name}{suffix}"
        for family in exported_families()
        for suffix in SERIES_SUFFIXES[family.type]
    }


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
