"""`GET /v1/objectives` and the objective and drift gauges on `/metrics` (SPEC §7.2, §8)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy import delete, insert
from sqlalchemy.engine import Engine

from services.aggregator.jobs import Aggregator
from services.aggregator.metrics import AggregatorMetrics
from services.api.app import create_app
from services.catalog import apply_catalog
from shared.db import indicator_drift
from shared.settings import Settings
from shared.windows import window_start
from tests.helpers import (
    UTC_TZ,
    aggregate,
    cloud_event,
    publish,
    real_clock,
    store,
    ticket_event,
)

CATALOG = """
customers: [{id: acme}]
services: [{id: email, customer: acme}]
objectives:
  - {service: "*", indicator: ticket_opened_count, window: day, comparator: "<=",
     target: 1, warning: 2, weight: 2}
  - {service: "*", indicator: csat_score, window: day, comparator: ">=", target: 4}
  - {customer: "*", indicator: ticket_opened_count, window: day, comparator: "<=", target: 1}
  - {indicator: call_answer_ratio, window: day, comparator: ">=", target: 0.9}
"""


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    # Today's window (as the API sees it) has 1 email ticket, yesterday's had 2. Today's ticket
    # opens at the window's start, so it is never in the future.
    today = window_start("day", datetime.now(UTC), UTC_TZ)
    yesterday = today - timedelta(days=1)
    with engine.begin() as conn:
        apply_catalog(conn, CATALOG, "test")
    store(
        engine,
        [
            ticket_event("Y1", yesterday + timedelta(hours=9), "new", service="email"),
            ticket_event("Y2", yesterday + timedelta(hours=10), "new", service="email"),
            ticket_event("T1", today, "new", service="email"),
            # today's calls: 1 answered of 2
            cloud_event(
                "itsm.servicedesk.call.completed", today, "k1", call_id="K1", answered=True
            ),
            cloud_event(
                "itsm.servicedesk.call.completed", today, "k2", call_id="K2", answered=False
            ),
        ],
    )
    aggregate(engine, clock=real_clock)
    # the aggregator's drift job, as the scheduler runs it every minute
    Aggregator(settings, engine, AggregatorMetrics(CollectorRegistry())).drift()
    publish(engine, settings, real_clock)  # and its exposition job, for /metrics
    with TestClient(create_app(settings, engine)) as c:
        c.today, c.yesterday = today, yesterday  # type: ignore[attr-defined]
        yield c


def test_objectives_list_current_and_previous_window_with_drift(client: TestClient) -> None:
    resp = client.get("/v1/objectives", params={"service": "email", "window": "day"})
    assert resp.status_code == 200
    got = {o["indicator"]: o for o in resp.json()["objectives"]}
    assert set(got) == {"ticket_opened_count", "csat_score"}
    opened = got["ticket_opened_count"]
    assert (opened["service"], opened["window"], opened["comparator"]) == ("email", "day", "<=")
    assert (opened["target"], opened["warning"], opened["weight"]) == (1.0, 2.0, 2.0)
    # today 1 ≤ 1: met; yesterday 2: within the warning 2
    assert opened["current"]["value"] == 1.0
    assert opened["current"]["status"] == "met"
    assert opened["previous"]["value"] == 2.0
    assert opened["previous"]["status"] == "warning"
    assert datetime.fromisoformat(opened["current"]["window_start"]) == client.today  # type: ignore[attr-defined]
    # drift scores yesterday, the last complete day: no window before it (< 4), score 0
    assert (opened["drift_score"], opened["drifting"]) == (0.0, False)
    csat = got["csat_score"]
    assert (csat["current"]["status"], csat["current"]["value"]) == ("no_data", None)


def test_objectives_filter_by_service_and_window(client: TestClient) -> None:
    assert client.get("/v1/objectives", params={"service": "erp"}).json() == {"objectives": []}
    assert client.get("/v1/objectives", params={"window": "week"}).json() == {"objectives": []}
    # email's two, acme's one, the organisation's one
    assert len(client.get("/v1/objectives").json()["objectives"]) == 4
    resp = client.get("/v1/objectives", params={"window": "fortnight"})
    assert resp.status_code == 422
    both = client.get("/v1/objectives", params={"service": "email", "customer": "acme"})
    assert both.status_code == 422


def test_objectives_of_a_customer_and_of_the_organisation(client: TestClient) -> None:
    (acme,) = client.get("/v1/objectives", params={"customer": "acme"}).json()["objectives"]
    assert (acme["scope"], acme["service"], acme["customer"]) == ("customer", "", "acme")
    # acme's only service email: today 1 ≤ 1 met, yesterday 2 > 1 breached (no warning)
    assert (acme["current"]["value"], acme["current"]["status"]) == (1.0, "met")
    assert (acme["previous"]["value"], acme["previous"]["status"]) == (2.0, "breached")
    # the per-customer series has a drift score too (one previous window: 0)
    assert acme["drift_score"] == 0.0
    everything = client.get("/v1/objectives").json()["objectives"]
    (org,) = [o for o in everything if o["scope"] == "organisation"]
    assert (org["indicator"], org["service"], org["customer"]) == ("call_answer_ratio", "", "")
    # 1 answered of 2 calls today: 0.5 < 0.9, no warning level → breached
    assert (org["current"]["value"], org["current"]["status"]) == (0.5, "breached")


def test_the_drift_shown_is_the_scored_last_complete_windows(
    client: TestClient, engine: Engine
) -> None:
    # a row under today's window (as the old rule scored the partial window) is never read
    dims = {"service": "email"}
    row = {"indicator": "ticket_opened_count", "window_kind": "day", "dimensions": dims}
    row |= {"value": 9.0, "baseline_mean": 2.0, "baseline_stddev": 1.0, "windows": 8}
    row |= {"computed_at": datetime.now(UTC)}
    d = indicator_drift.c
    with engine.begin() as conn:
        conn.execute(
            delete(indicator_drift).where(
                d.indicator == "ticket_opened_count", d.window_kind == "day"
            )
        )
        conn.execute(
            insert(indicator_drift),
            [
                row | {"window_start": client.yesterday, "score": 7.0, "drifting": True},  # type: ignore[attr-defined]
                row | {"window_start": client.today, "score": -5.0, "drifting": False},  # type: ignore[attr-defined]
            ],
        )
    got = client.get("/v1/objectives", params={"service": "email", "window": "day"}).json()
    opened = next(o for o in got["objectives"] if o["indicator"] == "ticket_opened_count")
    assert (opened["drift_score"], opened["drifting"]) == (7.0, True)


def test_metrics_expose_objective_status_target_samples_and_drift(client: TestClient) -> None:
    text = client.get("/metrics").text

    def labels(period: str, indicator: str = "ticket_opened_count", **who: str) -> str:
        # the exposition writes labels in name order
        svc, cust = who.get("service", "email"), who.get("customer", "")
        return (
            f'customer="{cust}",indicator="{indicator}",period="{period}",'
            f'service="{svc}",window="day"'
        )

    # today: 1 ticket ≤ 1, met; yesterday: 2, warning
    assert f"itsm_objective_status{{{labels('current')}}} 1.0" in text
    assert f"itsm_objective_target{{{labels('current')}}} 1.0" in text
    assert f"itsm_objective_samples{{{labels('current')}}} 1.0" in text
    assert f"itsm_objective_status{{{labels('previous')}}} 0.5" in text
    assert f"itsm_objective_samples{{{labels('previous')}}} 2.0" in text
    # no data: a target, but no status and no samples
    assert f"itsm_objective_target{{{labels('current', 'csat_score')}}} 4.0" in text
    assert 'itsm_objective_status{customer="",indicator="csat_score"' not in text
    assert 'itsm_objective_samples{customer="",indicator="csat_score"' not in text
    # a customer's objective has `customer`, the organisation's neither label set
    acme = labels("current", service="", customer="acme")
    assert f"itsm_objective_status{{{acme}}} 1.0" in text
    org = labels("current", "call_answer_ratio", service="", customer="")
    assert f"itsm_objective_status{{{org}}} 0.0" in text
    # drift of yesterday, the last complete day: no window before it, score 0, not drifting
    series = 'indicator="ticket_opened_count",service="email",window="day"'
    assert f"itsm_indicator_drift_score{{{series}}} 0.0" in text
    assert f"itsm_indicator_drifting{{{series}}} 0.0" in text
    total = 'indicator="ticket_opened_count",service="",window="day"'
    assert f"itsm_indicator_drift_score{{{total}}} 0.0" in text
    assert f"itsm_indicator_drifting{{{total}}} 0.0" in text
