"""deploy/grafana: the provisioned dashboards are valid, query only metrics that exist, through
the provisioned datasource, and the provisioning matches docker-compose.yml (SPEC §8)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from .conftest import DEPLOY, METRIC_NAME, RECORDING_NAME, known_metric_names, load_yaml

GRAFANA = DEPLOY / "grafana"
DASHBOARDS = GRAFANA / "dashboards"
EXPECTED = {
    "service-overview",
    "customer-overview",
    "process-kpis",
    "technical-availability",
    "pipeline-health",
}
WITH_SERVICE_VARIABLE = {"service-overview", "process-kpis", "technical-availability"}
WITH_CUSTOMER_VARIABLE = {"customer-overview"}
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range", "__range_s", "__interval_ms"}
# `$var`, `${var}` and `${var:format}`.
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
# Stand-ins for template variables when a query is handed to promtool.
SAMPLE_VALUES = {
    "service": "email",
    "customer": "acme",
    "window": "month",
    "__rate_interval": "1m",
}


def variables(expr: str) -> set[str]:
    return {braced or bare for braced, bare in VARIABLE.findall(expr)}


def dashboards() -> dict[str, dict[str, Any]]:
    loaded = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        with path.open(encoding="utf-8") as fh:
            loaded[path.stem] = json.load(fh)
    return loaded


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows keep theirs inside


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            yield (
                f"variable {variable['name']}",
                query if isinstance(query, str) else query["query"],
            )


@pytest.fixture(scope="module")
def datasource() -> dict[str, Any]:
    provisioned = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    (prometheus,) = [d for d in provisioned["datasources"] if d["type"] == "prometheus"]
    return dict(prometheus)


def test_the_five_dashboards_are_shipped() -> None:
    assert set(dashboards()) == EXPECTED


def test_dashboards_have_unique_uids_and_titles_and_a_recent_schema() -> None:
    loaded = dashboards().values()
    uids = [d["uid"] for d in loaded]
    titles = [d["title"] for d in loaded]
    assert len(set(uids)) == len(uids) == len(EXPECTED), uids
    assert len(set(titles)) == len(titles), titles
    for dashboard in loaded:
        assert 0 < len(dashboard["uid"]) <= 40, "Grafana limits uids to 40 characters"
        assert dashboard["schemaVersion"] >= 36, dashboard["uid"]
        assert dashboard.get("id") is None, "a provisioned dashboard carries no database id"


def test_every_panel_queries_the_provisioned_datasource(datasource: dict[str, Any]) -> None:
    for name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": datasource["uid"]}, name
            assert panel["targets"], f"{name}: panel {panel['title']!r} has no query"
            for target in panel["targets"]:
                assert target["expr"].strip(), f"{name}: empty query in {panel['title']!r}"
                assert target.get("datasource", panel["datasource"]) == panel["datasource"]
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["datasource"]["uid"] == datasource["uid"], name


def test_queries_use_only_metrics_that_exist(recording_rule_names: set[str]) -> None:
    known = known_metric_names()
    used: set[str] = set()
    for name, dashboard in dashboards().items():
        for where, expr in queries(dashboard):
            unknown = set(METRIC_NAME.findall(expr)) - known
            assert not unknown, f"{name} {where} uses metrics nobody exposes: {unknown}"
            unrecorded = set(RECORDING_NAME.findall(expr)) - recording_rule_names
            assert not unrecorded, f"{name} {where} uses unknown recording rules: {unrecorded}"
            used |= set(METRIC_NAME.findall(expr))
    # The dashboards show what the product measures, not a token subset of it.
    assert {"itsm_objective_status", "itsm_service_availability_ratio"} <= used


OBJECTIVE_SERIES = re.compile(r"\bitsm_objective_(?:status|target|samples)\b")
AGGREGATION = re.compile(r"\b(?:sum|avg|min|max|count|topk|bottomk|quantile)\b")


def test_objective_queries_pick_a_period_or_show_it() -> None:
    # The objective series come for the current and the last complete window (`period`):
    # a query picks one, or is an instant table that shows each period as its own row.
    for name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                expr = target["expr"]
                if not OBJECTIVE_SERIES.search(expr):
                    continue
                picks = re.search(r'period\s*=~?\s*"', expr)
                shows = (
                    panel["type"] == "table"
                    and target.get("format") == "table"
                    and target.get("instant")
                    and not AGGREGATION.search(expr)
                )
                assert picks or shows, f"{name} {panel['title']!r} mixes periods: {expr}"


def test_drift_is_shown_by_the_drifting_flag_not_a_threshold_on_the_score() -> None:
    # |score| over a fixed threshold ignores the catalog's threshold and the indicator's
    # direction (an improvement would show as drifting): the aggregator's flag knows both.
    used: set[str] = set()
    for name, dashboard in dashboards().items():
        for where, expr in queries(dashboard):
            assert "abs(itsm_indicator_drift_score" not in expr.replace(" ", ""), (name, where)
            used |= set(METRIC_NAME.findall(expr))
    assert "itsm_indicator_drifting" in used


def test_the_technical_and_customer_dashboards_show_what_an_sre_and_a_customer_ask_for() -> None:
    def used(name: str) -> set[str]:
        return {m for _, expr in queries(dashboards()[name]) for m in METRIC_NAME.findall(expr)}

    assert {
        "itsm_ci_outage_count",
        "itsm_ci_mttr_seconds",
        "itsm_ci_mtbf_seconds",
        "itsm_monitoring_coverage_ratio",
        "itsm_service_availability_ratio",
    } <= used("technical-availability")
    assert {
        "itsm_objective_status",
        "itsm_objective_target",
        "itsm_incident_sla_resolution_met_ratio",
        "itsm_incident_sla_response_met_ratio",
        "itsm_service_availability_ratio",
        "itsm_csat_score",
    } <= used("customer-overview")
    # each customer panel reads the customer's own points (service=""), for the chosen customer
    for where, expr in queries(dashboards()["customer-overview"]):
        if where.startswith("panel"):
            assert 'customer=~"$customer"' in expr, where


def test_queries_reference_only_defined_variables_and_filter_by_service() -> None:
    for name, dashboard in dashboards().items():
        defined = {variable["name"] for variable in dashboard["templating"]["list"]}
        referenced = set().union(*(variables(expr) for _, expr in queries(dashboard)))
        referenced -= GRAFANA_BUILTINS
        assert referenced <= defined, f"{name} uses undefined variables {referenced - defined}"
        if name in WITH_SERVICE_VARIABLE:
            assert "service" in defined, f"{name} needs a service variable"
            assert "service" in referenced, f"{name} defines $service but no panel uses it"
        if name in WITH_CUSTOMER_VARIABLE:
            assert {"customer"} <= defined & referenced, f"{name} needs a used customer variable"


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    for name, dashboard in dashboards().items():
        laid_out = list(dashboard["panels"])
        ids = [panel["id"] for panel in laid_out]
        assert len(set(ids)) == len(ids), f"{name}: duplicate panel ids"
        boxes = []
        for panel in laid_out:
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
            boxes.append((panel["title"], grid))
        for (a, ga), (b, gb) in combinations(boxes, 2):
            apart = (
                ga["x"] + ga["w"] <= gb["x"]
                or gb["x"] + gb["w"] <= ga["x"]
                or ga["y"] + ga["h"] <= gb["y"]
                or gb["y"] + gb["h"] <= ga["y"]
            )
            assert apart, f"{name}: panels {a!r} and {b!r} overlap"


def test_panel_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    rules = []
    for name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                expr = VARIABLE.sub(
                    lambda m: SAMPLE_VALUES[m.group(1) or m.group(2)], target["expr"]
                )
                rules.append(
                    {
                        "record": f"dashboard_query_{len(rules)}",
                        "expr": expr,
                        "labels": {"dashboard": name, "panel": panel["title"]},
                    }
                )
    assert rules
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_provisioning_matches_the_compose_stack(compose: dict[str, Any], datasource: Any) -> None:
    url = urlsplit(datasource["url"])
    assert url.hostname in compose["services"], "the datasource must point at a compose service"
    assert "9090:9090" in compose["services"][url.hostname]["ports"]
    assert url.port == 9090

    grafana = compose["services"]["grafana"]
    mounts = {
        target: source
        for source, target, *_ in (str(v).split(":") for v in grafana["volumes"])
        if source.startswith("./")
    }
    providers = load_yaml(GRAFANA / "provisioning" / "dashboards" / "dashboards.yml")["providers"]
    (provider,) = providers
    dashboards_dir = provider["options"]["path"]
    assert mounts[dashboards_dir] == "./deploy/grafana/dashboards"

    home = Path(grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert str(home.parent) == dashboards_dir
    assert (DASHBOARDS / home.name).is_file()
