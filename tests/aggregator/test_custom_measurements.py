"""Custom measurement indicators (SPEC §3.5, §5.2) and the `customer` dimension, hand-computed.

A measurement counts toward a window by the share of its period inside it: `sum` adds
value × share, `mean` is the mean weighted by overlap seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Engine

from services.api.app import create_app
from services.catalog import apply_catalog
from shared.db import objective_status
from shared.events import InvalidEvent, validate_event
from shared.settings import Settings
from tests.helpers import (
    aggregate,
    cloud_event,
    points,
    publish,
    real_clock,
    store,
    ticket_event,
    utc,
)

CATALOG = """
customers: [{id: acme}, {id: globex}]
services:
  - {id: email, customer: acme}
  - {id: erp, customer: acme}
  - {id: web, customer: globex}
measurements:
  - {id: staffing_level, unit: people, aggregation: mean, direction: higher_is_better}
objectives:
  - {service: email, indicator: staffing_level, window: month, comparator: ">=", target: 11}
  - {service: erp, indicator: staffing_level, window: month, comparator: ">=", target: 11}
"""

_n = iter(range(1, 10_000))


def measurement(
    indicator: str, value: float, start: datetime, end: datetime, **data: Any
) -> dict[str, Any]:
    return cloud_event(
        "itsm.measurement.recorded",
        start,
        f"m-{next(_n)}",
        indicator=indicator,
        value=value,
        period_start=start.isoformat(),
        period_end=end.isoformat(),
        **data,
    )


@pytest.fixture
def measured(engine: Engine) -> Engine:
    with engine.begin() as conn:
        apply_catalog(conn, CATALOG, "test")
    store(
        engine,
        [
            # 31 training hours over October's 31 days: 1 hour a day (sum, undeclared id)
            measurement(
                "training_hours", 31, utc(2026, 10, 1), utc(2026, 11, 1), service="email", unit="h"
            ),
            # 6 hours on the 5th only, for another service
            measurement(
                "training_hours", 6, utc(2026, 10, 5), utc(2026, 10, 6), service="web", unit="hours"
            ),
            # staffing (mean): 10 people Oct 1–16 (15 days), 12 people Oct 16–Nov 1 (16 days)
            measurement("staffing_level", 10, utc(2026, 10, 1), utc(2026, 10, 16), service="email"),
            measurement("staffing_level", 12, utc(2026, 10, 16), utc(2026, 11, 1), service="email"),
            # erp: 8 people for the whole month
            measurement("staffing_level", 8, utc(2026, 10, 1), utc(2026, 11, 1), service="erp"),
        ],
    )
    aggregate(engine)
    return engine


def value(engine: Engine, indicator: str, window: str, start: datetime, **dims: str) -> Any:
    p = points(engine, indicator, window, start, **dims)
    return None if p is None else (round(p["value"], 9), p["count"])


def test_sum_adds_each_measurements_share_of_the_window(measured: Engine) -> None:
    # the 5th: 1 hour (email's share: 1 day of 31) + 6 (web, all of it) = 7, two measurements
    assert value(measured, "training_hours", "day", utc(2026, 10, 5)) == (7.0, 2)
    assert value(measured, "training_hours", "day", utc(2026, 10, 6)) == (1.0, 1)
    # ISO week Mon Oct 5 – Mon Oct 12: 7 days of email's 31 → 7, plus web's 6 → 13
    assert value(measured, "training_hours", "week", utc(2026, 10, 5)) == (13.0, 2)
    # the week of Mon Sep 28 holds Oct 1–4 only: 4 hours
    assert value(measured, "training_hours", "week", utc(2026, 9, 28)) == (4.0, 1)
    assert value(measured, "training_hours", "month", utc(2026, 10, 1)) == (37.0, 2)
    assert value(measured, "training_hours", "month", utc(2026, 10, 1), service="email") == (
        31.0,
        1,
    )
    # an hour window: 1/24 of a day's hour
    assert value(measured, "training_hours", "hour", utc(2026, 10, 7, 3)) == (
        round(1 / 24, 9),
        1,
    )


def test_mean_is_weighted_by_the_seconds_each_period_overlaps_the_window(
    measured: Engine,
) -> None:
    # email, October: (10×15 + 12×16) / 31 days = 342 / 31
    assert value(measured, "staffing_level", "month", utc(2026, 10, 1), service="email") == (
        round(342 / 31, 9),
        2,
    )
    # week Oct 12–19: 4 days at 10, 3 days at 12 → 76 / 7
    assert value(measured, "staffing_level", "week", utc(2026, 10, 12), service="email") == (
        round(76 / 7, 9),
        2,
    )
    # all services, October: (342 + 8×31) / 62 day-weights = 590 / 62
    assert value(measured, "staffing_level", "month", utc(2026, 10, 1)) == (round(590 / 62, 9), 3)


def test_a_window_without_measurements_has_no_value(measured: Engine) -> None:
    assert value(measured, "training_hours", "day", utc(2026, 11, 1)) is None
    assert value(measured, "staffing_level", "month", utc(2026, 9, 1)) is None


def test_customer_dimension_rolls_services_up_to_their_customer(measured: Engine) -> None:
    # acme = email + erp; globex = web
    assert value(measured, "training_hours", "month", utc(2026, 10, 1), customer="acme") == (
        31.0,
        1,
    )
    assert value(measured, "training_hours", "month", utc(2026, 10, 1), customer="globex") == (
        6.0,
        1,
    )
    assert value(measured, "staffing_level", "month", utc(2026, 10, 1), customer="acme") == (
        round(590 / 62, 9),
        3,
    )
    # service and customer are never grouped together (a service has one customer)
    assert points(measured, "training_hours", "month", utc(2026, 10, 1), service="email",
                  customer="acme") is None  # fmt: skip


def test_customer_of_ticket_indicators_and_unknown_services(engine: Engine) -> None:
    with engine.begin() as conn:
        apply_catalog(conn, CATALOG, "test")
    at = utc(2026, 10, 5, 9)
    store(
        engine,
        [
            ticket_event("A", at, "new", service="email", priority=2),
            ticket_event("B", at, "new", service="erp", priority=2),
            ticket_event("C", at, "new", service="web", priority=1),
            ticket_event("D", at, "new", service="intranet", priority=1),  # not in the catalog
            ticket_event("E", at, "new"),  # no service
        ],
    )
    aggregate(engine)
    day = utc(2026, 10, 5)
    assert value(engine, "ticket_opened_count", "day", day, customer="acme") == (2.0, 2)
    assert value(engine, "ticket_opened_count", "day", day, customer="globex") == (1.0, 1)
    assert value(engine, "ticket_opened_count", "day", day, customer="unknown") == (2.0, 2)
    assert value(engine, "ticket_opened_count", "day", day, customer="acme", priority="2") == (
        2.0,
        2,
    )
    assert value(engine, "ticket_opened_count", "day", day) == (5.0, 5)


def test_objectives_on_a_custom_indicator(measured: Engine) -> None:
    with measured.connect() as conn:
        rows = conn.execute(
            select(objective_status.c.service, objective_status.c.status).where(
                objective_status.c.window_start == utc(2026, 10, 1),
                objective_status.c.window_kind == "month",
            )
        ).all()
    # email 342/31 ≈ 11.03 ≥ 11 met; erp 8 < 11 breached (no warning band)
    assert dict(rows) == {"email": "met", "erp": "breached"}


def test_a_late_measurement_recomputes_the_windows_of_its_period(measured: Engine) -> None:
    store(
        measured,
        [measurement("training_hours", 2, utc(2026, 10, 5, 12), utc(2026, 10, 5, 14))],
    )
    aggregate(measured)
    assert value(measured, "training_hours", "day", utc(2026, 10, 5)) == (9.0, 3)
    assert value(measured, "training_hours", "month", utc(2026, 10, 1)) == (39.0, 3)


def test_api_lists_and_serves_custom_indicators(measured: Engine, settings: Settings) -> None:
    publish(measured, settings)
    with TestClient(create_app(settings, measured)) as client:
        listed = {i["id"]: i for i in client.get("/v1/indicators").json()["indicators"]}
        assert listed["staffing_level"]["family"] == "custom"
        assert listed["staffing_level"]["unit"] == "people"
        assert listed["staffing_level"]["direction"] == "higher_is_better"
        assert listed["training_hours"]["unit"] == "hours"  # from its latest measurement
        assert listed["training_hours"]["dimensions"] == ["service", "customer"]
        assert listed["ticket_opened_count"]["dimensions"][-1] == "customer"

        resp = client.get(
            "/v1/indicators/training_hours",
            params={
                "window": "month",
                "start": "2026-10-01T00:00:00Z",
                "end": "2026-11-01T00:00:00Z",
                "group_by": "customer",
            },
        )
        assert resp.status_code == 200
        got = {p["dimensions"]["customer"]: p["value"] for p in resp.json()["points"]}
        assert got == {"acme": 31.0, "globex": 6.0}

        bad = client.get(
            "/v1/indicators/training_hours", params={"service": "email", "group_by": "customer"}
        )
        assert bad.status_code == 422
        assert "not both" in bad.json()["error"]["message"]

        metrics = client.get("/metrics").text
        assert "# TYPE itsm_training_hours gauge" in metrics
        assert "# TYPE itsm_staffing_level gauge" in metrics


def test_measurements_now_show_on_metrics_in_the_current_window(
    engine: Engine, settings: Settings
) -> None:
    # the first hour of today (UTC, the settings' zone): wholly inside the current day
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    store(engine, [measurement("spare_part_hits", 5, today, today + timedelta(hours=1))])
    aggregate(engine, clock=real_clock)
    publish(engine, settings, real_clock)
    with TestClient(create_app(settings, engine)) as client:
        metrics = client.get("/metrics").text
    assert (
        'itsm_spare_part_hits{customer="",period="current",service="",window="day"} 5.0' in metrics
    )


@pytest.mark.parametrize(
    ("indicator", "start", "end", "reason"),
    [
        ("Training Hours", "2026-10-01T00:00:00Z", "2026-10-02T00:00:00Z", "lower_snake_case"),
        ("csat_score", "2026-10-01T00:00:00Z", "2026-10-02T00:00:00Z", "built-in"),
        ("http_requests", "2026-10-01T00:00:00Z", "2026-10-02T00:00:00Z", "operational"),
        # the api's own gauge, served beside the snapshot: a family may appear once per scrape
        ("exposition_stale", "2026-10-01T00:00:00Z", "2026-10-02T00:00:00Z", "operational"),
        ("training_hours", "2026-10-02T00:00:00Z", "2026-10-01T00:00:00Z", "period_end"),
        ("training_hours", "2026-10-02T00:00:00Z", "2026-10-02T00:00:00Z", "period_end"),
    ],
)
def test_measurements_that_cannot_be_an_indicator_are_refused(
    indicator: str, start: str, end: str, reason: str
) -> None:
    event = cloud_event(
        "itsm.measurement.recorded",
        start,
        "m-bad",
        indicator=indicator,
        value=1,
        period_start=start,
        period_end=end,
    )
    with pytest.raises(InvalidEvent, match=reason):
        validate_event(event)
