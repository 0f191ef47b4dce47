"""Objective status (SPEC §6.3) and the service scores on it (SPEC §5.3), hand-computed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from services.aggregator.objectives import (
    health_score,
    met_ratio,
    scoped_objectives,
    score,
    status,
)
from services.catalog import apply_catalog, parse_catalog
from shared.db import objective_status
from tests.helpers import aggregate, cloud_event, points, store, ticket_event, utc


# --- pure -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.99, "met"), (0.995, "met"), (0.98, "warning"), (0.97, "warning"), (0.96, "breached")],
)
def test_higher_is_better_objective_has_warning_between_warning_and_target(
    value: float, expected: str
) -> None:
    assert status(value, ">=", 0.99, 0.97) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3600, "met"), (100, "met"), (3601, "warning"), (7200, "warning"), (7201, "breached")],
)
def test_lower_is_better_objective_mirrors_the_warning_band(value: float, expected: str) -> None:
    assert status(value, "<=", 3600, 7200) == expected


def test_without_warning_a_miss_is_breached() -> None:
    assert status(0.98, ">=", 0.99, None) == "breached"
    assert status(5.0, "<=", 4.0, None) == "breached"


def test_no_value_is_no_data() -> None:
    assert status(None, ">=", 0.99, 0.97) == "no_data"


def test_scores_and_health_leave_no_data_out() -> None:
    assert (score("met"), score("warning"), score("breached"), score("no_data")) == (
        100.0,
        50.0,
        0.0,
        None,
    )
    # (100×1 + 50×2 + 0×1) / (1 + 2 + 1) = 200 / 4 = 50; the no_data one (weight 5) is left out
    assert health_score([("met", 1), ("warning", 2), ("breached", 1), ("no_data", 5)]) == 50.0
    assert health_score([("no_data", 1)]) is None
    assert health_score([]) is None


def test_met_ratio_counts_objectives_with_data_unweighted() -> None:
    # met, warning, met among 3 with data → 2 / 3
    assert met_ratio(["met", "warning", "no_data", "met"]) == pytest.approx(2 / 3)
    assert met_ratio(["no_data"]) is None


def test_a_service_objective_overrides_the_wildcard_for_its_indicator_and_window() -> None:
    catalog = parse_catalog(
        """
customers: [{id: acme}]
services: [{id: email, customer: acme}, {id: erp, customer: acme}]
objectives:
  - {service: "*", indicator: ticket_opened_count, window: day, comparator: "<=", target: 2}
  - {service: erp, indicator: ticket_opened_count, window: day, comparator: "<=", target: 1}
  - {service: "*", indicator: ticket_opened_count, window: week, comparator: "<=", target: 9}
"""
    )
    got = {
        (o.service, o.window): o.target
        for o in scoped_objectives(catalog.objectives, ["email", "erp"])
    }
    assert got == {
        ("email", "day"): 2,
        ("erp", "day"): 1,
        ("email", "week"): 9,
        ("erp", "week"): 9,
    }


def test_customer_and_organisation_objectives_expand_beside_the_services() -> None:
    catalog = parse_catalog(
        """
customers: [{id: acme}, {id: globex}]
services: [{id: email, customer: acme}, {id: web, customer: globex}]
objectives:
  - {customer: "*", indicator: csat_score, comparator: ">=", target: 4}
  - {customer: globex, indicator: csat_score, comparator: ">=", target: 4.5}
  - {service: "*", indicator: csat_score, comparator: ">=", target: 3}
  - {indicator: call_answer_ratio, comparator: ">=", target: 0.9}
"""
    )
    got = {
        (o.service, o.customer, o.indicator, o.grouping): o.target
        for o in scoped_objectives(catalog.objectives, ["email", "web"], ["acme", "globex"])
    }
    assert got == {
        # globex's own objective replaces the `*` one for it; services keep theirs
        ("", "acme", "csat_score", ("customer",)): 4,
        ("", "globex", "csat_score", ("customer",)): 4.5,
        ("email", "", "csat_score", ("service",)): 3,
        ("web", "", "csat_score", ("service",)): 3,
        ("", "", "call_answer_ratio", ()): 0.9,
    }


# --- on PostgreSQL --------------------------------------------------------------------------------
CATALOG = """
customers: [{id: acme}]
services: [{id: email, customer: acme}, {id: erp, customer: acme}]
objectives:
  - {service: "*", indicator: ticket_opened_count, window: day, comparator: "<=",
     target: 2, warning: 3, weight: 1}
  - {service: erp, indicator: ticket_opened_count, window: day, comparator: "<=", target: 1}
  - {service: email, indicator: incident_resolution_time_seconds, window: day,
     comparator: "<=", target: 3600, warning: 7200, weight: 2}
  - {service: "*", indicator: incident_reopen_ratio, window: day, comparator: "<=",
     target: 0.1, warning: 0.5}
  - {service: "*", indicator: csat_score, window: day, comparator: ">=", target: 4, weight: 3}
"""
DAY = utc(2026, 10, 5)


def at(h: int, m: int = 0) -> Any:
    return utc(2026, 10, 5, h, m)


@pytest.fixture
def objective_day(engine: Engine) -> Engine:
    with engine.begin() as conn:
        apply_catalog(conn, CATALOG, "test")
    e = ticket_event
    store(
        engine,
        [
            # email: 3 opened, resolved after 30, 90 and 60 min; no reopen
            e("A", at(9), "new", service="email"),
            e("A", at(9, 30), "resolved"),
            e("B", at(10), "new", service="email"),
            e("B", at(11, 30), "resolved"),
            e("C", at(11), "new", service="email"),
            e("C", at(12), "resolved"),
            # erp: 2 opened; D resolved, reopened, resolved again; E still open
            e("D", at(9), "new", service="erp"),
            e("D", at(10), "resolved"),
            e("D", at(10, 30), "in_progress", event_type="itsm.ticket.reopened"),
            e("D", at(11), "resolved"),
            e("E", at(13), "new", service="erp"),
        ],
    )
    aggregate(engine)
    return engine


def test_objective_status_per_service_and_day(objective_day: Engine) -> None:
    c = objective_status.c
    with objective_day.connect() as conn:
        rows = conn.execute(
            select(c.service, c.indicator, c.value, c.status, c.samples).where(
                c.window_kind == "day", c.window_start == DAY
            )
        ).all()
    got = {(r.service, r.indicator): (r.value, r.status, r.samples) for r in rows}
    assert got == {
        # 3 opened: above the target 2, within the warning 3; 3 samples (tickets)
        ("email", "ticket_opened_count"): (3.0, "warning", 3),
        # (1800 + 5400 + 3600) / 3 = 3600 ≤ 3600, of 3 resolutions
        ("email", "incident_resolution_time_seconds"): (3600.0, "met", 3),
        ("email", "incident_reopen_ratio"): (0.0, "met", 3),
        ("email", "csat_score"): (None, "no_data", None),  # no point, no samples
        # erp's own objective (≤ 1, no warning) replaces the `*` one (≤ 2, which 2 would meet)
        ("erp", "ticket_opened_count"): (2.0, "breached", 2),
        ("erp", "incident_reopen_ratio"): (1.0, "breached", 1),  # D: 1 of 1 reopened > 0.5
        ("erp", "csat_score"): (None, "no_data", None),
    }


def test_service_scores_per_day(objective_day: Engine) -> None:
    def value(indicator: str, **dims: str) -> tuple[float, int]:
        p = points(objective_day, indicator, "day", DAY, **dims)
        assert p is not None
        return p["value"], p["count"]

    # email: warning (w 1), met (w 2), met (w 1); csat no data → met 2 / 3,
    # health (50×1 + 100×2 + 100×1) / 4 = 87.5
    assert value("service_objectives_met_ratio", service="email") == (pytest.approx(2 / 3), 3)
    assert value("service_health_score", service="email") == (87.5, 3)
    # erp: breached, breached → 0 / 2, health 0
    assert value("service_objectives_met_ratio", service="erp") == (0.0, 2)
    assert value("service_health_score", service="erp") == (0.0, 2)
    # all services: met 2 / 5; health (50 + 200 + 100 + 0 + 0) / (1 + 2 + 1 + 1 + 1) = 350 / 6
    assert value("service_objectives_met_ratio") == (0.4, 5)
    assert value("service_health_score") == (pytest.approx(350 / 6), 5)
    # no objective on week windows: no point
    assert points(objective_day, "service_health_score", "week", DAY, service="email") is None


def test_a_late_event_updates_a_complete_windows_status_and_samples(
    objective_day: Engine,
) -> None:
    # 10-05 ended long before the fixtures' now; erp's third ticket of that day arrives late
    store(objective_day, [ticket_event("F", at(15), "new", service="erp")])
    aggregate(objective_day)
    c = objective_status.c
    with objective_day.connect() as conn:
        row = conn.execute(
            select(c.value, c.status, c.samples).where(
                c.service == "erp",
                c.indicator == "ticket_opened_count",
                c.window_kind == "day",
                c.window_start == DAY,
            )
        ).one()
    assert tuple(row) == (3.0, "breached", 3)  # was 2 of 2 tickets


def test_a_day_without_tickets_meets_a_count_objective(engine: Engine) -> None:
    # email's only ticket is on 10-05; erp has none at all: its count is 0 ≤ 2, met
    with engine.begin() as conn:
        apply_catalog(conn, CATALOG, "test")
    store(engine, [ticket_event("A", at(9), "new", service="email")])
    aggregate(engine)
    c = objective_status.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(c.service, c.value, c.status, c.samples).where(
                c.indicator == "ticket_opened_count", c.window_start == DAY
            )
        ).all()
    assert sorted((r.service, r.value, r.status, r.samples) for r in rows) == [
        ("email", 1.0, "met", 1),
        ("erp", 0.0, "met", 0),  # erp's own objective: 0 ≤ 1, of no ticket
    ]


SCOPES = """
customers: [{id: acme}, {id: globex}]
services:
  - {id: email, customer: acme}
  - {id: erp, customer: acme}
  - {id: web, customer: globex}
objectives:
  - {customer: "*", indicator: ticket_opened_count, window: day, comparator: "<=", target: 2,
     warning: 3}
  - {customer: globex, indicator: ticket_opened_count, window: hour, comparator: "<=",
     target: 0}
  - {service: erp, indicator: ticket_opened_count, window: day, comparator: "<=", target: 5,
     weight: 2}
  - {indicator: call_answer_ratio, window: day, comparator: ">=", target: 0.9, warning: 0.6}
"""


@pytest.fixture
def scopes_day(engine: Engine) -> Engine:
    with engine.begin() as conn:
        apply_catalog(conn, SCOPES, "test")
    e, call = ticket_event, cloud_event
    store(
        engine,
        [
            # acme: 2 on email, 1 on erp; globex: 1 on web at 10:xx
            e("A", at(9), "new", service="email"),
            e("B", at(10), "new", service="email"),
            e("C", at(11), "new", service="erp"),
            e("D", at(10, 15), "new", service="web"),
            # calls: 3 answered of 4
            *(
                call(
                    "itsm.servicedesk.call.completed",
                    at(9, i),
                    f"k{i}",
                    call_id=f"K{i}",
                    answered=i != 3,
                )
                for i in range(4)
            ),
        ],
    )
    aggregate(engine)
    return engine


def test_customer_and_organisation_objectives_read_their_own_points(scopes_day: Engine) -> None:
    c = objective_status.c
    with scopes_day.connect() as conn:
        rows = conn.execute(
            select(c.service, c.customer, c.indicator, c.value, c.status).where(
                c.window_kind == "day", c.window_start == DAY
            )
        ).all()
    assert {(r.service, r.customer, r.indicator): (r.value, r.status) for r in rows} == {
        # acme: email 2 + erp 1 = 3 opened: above 2, within the warning 3
        ("", "acme", "ticket_opened_count"): (3.0, "warning"),
        # globex: web 1 ≤ 2
        ("", "globex", "ticket_opened_count"): (1.0, "met"),
        ("erp", "", "ticket_opened_count"): (1.0, "met"),
        # the organisation: 3 answered / 4 calls = 0.75, below 0.9, above the warning 0.6
        ("", "", "call_answer_ratio"): (0.75, "warning"),
    }


def test_a_customer_objective_per_hour_is_computed_at_query_time(scopes_day: Engine) -> None:
    # hours per customer are not stored (policy.py): globex's 10:00 hour has D (1 > 0); its
    # 09:00 hour has no ticket: a count of 0, met
    c = objective_status.c
    with scopes_day.connect() as conn:
        rows = conn.execute(
            select(c.window_start, c.value, c.status).where(
                c.window_kind == "hour", c.customer == "globex", c.window_start.in_([at(9), at(10)])
            )
        ).all()
    assert sorted((r.window_start, r.value, r.status) for r in rows) == [
        (at(9), 0.0, "met"),
        (at(10), 1.0, "breached"),
    ]


def test_service_scores_count_the_services_objectives_only(scopes_day: Engine) -> None:
    # erp's objective alone (met): the customer's and organisation's are no service's
    p = points(scopes_day, "service_health_score", "day", DAY)
    assert p is not None and (p["value"], p["count"]) == (100.0, 1)
    assert points(scopes_day, "service_objectives_met_ratio", "day", DAY, customer="globex") is None


def test_an_objective_on_quarters_is_evaluated_like_one_on_months(engine: Engine) -> None:
    with engine.begin() as conn:
        apply_catalog(
            conn,
            """
customers: [{id: acme}]
services: [{id: email, customer: acme}, {id: erp, customer: acme}]
objectives:
  - {service: "*", indicator: ticket_opened_count, window: quarter, comparator: "<=", target: 2}
""",
            "test",
        )
    e = ticket_event
    # email: one ticket in October, two in December (Q4); one in September (Q3); erp: one
    store(
        engine,
        [
            e("A", utc(2026, 10, 5, 9), "new", service="email"),
            e("B", utc(2026, 12, 1, 9), "new", service="email"),
            e("C", utc(2026, 12, 31, 22), "new", service="email"),
            e("D", utc(2026, 9, 30, 9), "new", service="email"),
            e("E", utc(2026, 11, 2, 9), "new", service="erp"),
        ],
    )
    aggregate(engine)
    c = objective_status.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(c.service, c.window_start, c.value, c.status).where(
                c.window_kind == "quarter", c.indicator == "ticket_opened_count"
            )
        ).all()
    got = {(r.service, r.window_start): (r.value, r.status) for r in rows}
    assert got[("email", utc(2026, 10, 1))] == (3.0, "breached")  # 3 > 2, no warning level
    assert got[("erp", utc(2026, 10, 1))] == (1.0, "met")
    assert got[("email", utc(2026, 7, 1))] == (1.0, "met")
    # the service scores of the quarter follow from it: erp met, email breached
    p = points(engine, "service_health_score", "quarter", utc(2026, 10, 1), service="erp")
    assert p is not None and p["value"] == 100.0


# --- cadence ------------------------------------------------------------------------------------
MONTHLY = """
customers: [{id: acme}]
services: [{id: email, customer: acme}]
objectives:
  - {service: "*", indicator: ticket_opened_count, window: month, comparator: "<=", target: 1}
  - {service: "*", indicator: ticket_opened_count, window: day, comparator: "<=", target: 1}
"""


def email_status(
    engine: Engine, start: Any, kind: str = "month"
) -> tuple[float | None, str] | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(objective_status.c.value, objective_status.c.status).where(
                objective_status.c.service == "email",
                objective_status.c.window_kind == kind,
                objective_status.c.window_start == start,
            )
        ).one_or_none()
    return None if row is None else (row.value, row.status)


def test_a_running_windows_objectives_wait_for_the_slower_cadence_an_ended_ones_do_not(
    engine: Engine,
) -> None:
    """Evaluating every service's objectives of the running day, week and month after every
    pass was a third of the point lane under a steady flow (issue 10): while only events moved
    them, their status waits for the slower cadence (their counts are at once in the points); a
    month that has ended has its status renewed at once (it is final)."""
    from services.aggregator import queue
    from shared.settings import Settings
    from tests.helpers import aggregator

    with engine.begin() as conn:
        apply_catalog(conn, MONTHLY, "test")
    now = [utc(2026, 10, 6, 12, 30)]
    slow = Settings(_env_file=None, aggregator_slow_seconds=30, hour_retention_days=36500)  # type: ignore[call-arg]
    agg = aggregator(engine, slow, clock=lambda: now[0])
    october, september, day = utc(2026, 10, 1), utc(2026, 9, 1), utc(2026, 10, 6)
    store(engine, [ticket_event("M1", utc(2026, 10, 6, 9), "new", service="email")])
    agg.recompute_dirty(lanes=queue.LANES)
    now[0] += timedelta(seconds=31)
    agg.recompute_dirty(lanes=queue.LANES)
    assert email_status(engine, october) == (1.0, "met")
    assert email_status(engine, day, "day") == (1.0, "met")

    store(engine, [ticket_event("M2", utc(2026, 10, 6, 12, 10), "new", service="email")])
    agg.recompute_dirty(lanes=queue.FAST_LANES)
    opened = points(engine, "ticket_opened_count", "month", october, service="email")
    assert opened is not None and opened["value"] == 2.0  # the count at once
    assert email_status(engine, october) == (1.0, "met")  # the status at the slower cadence
    assert email_status(engine, day, "day") == (1.0, "met")
    now[0] += timedelta(seconds=31)
    agg.recompute_dirty(lanes=queue.LANES)
    assert email_status(engine, october) == (2.0, "breached")
    assert email_status(engine, day, "day") == (2.0, "breached")

    # September has ended: a late ticket's month is evaluated in the same pass
    store(
        engine,
        [ticket_event(f"S{i}", utc(2026, 9, 10, 9 + i), "new", service="email") for i in range(3)],
    )
    agg.recompute_dirty(lanes=queue.FAST_LANES)
    assert email_status(engine, september) == (3.0, "breached")
