"""service_availability_ratio (SPEC §5.3) on one hand-made day, 2026-10-05 (UTC), on real
PostgreSQL: one service per situation, every expectation computed by hand beside it. A day is
86400 s; October is 31 × 86400 = 2678400 s."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from shared.db import make_engine
from tests.conftest import Postgres
from tests.helpers import aggregate, cloud_event, october, points, store, ticket_event, utc

DAY = utc(2026, 10, 5)
CREATED = utc(2026, 10, 1)
GONE = utc(2026, 10, 8)  # every CI is deleted then, so no open interval marks windows up to now
INDICATOR = "service_availability_ratio"

t = october


ev = cloud_event


def ci(
    ci_id: str,
    services: list[str] | None = None,
    *,
    depends_on: list[str] | None = None,
    critical: bool = False,
) -> list[dict[str, Any]]:
    return [
        ev(
            "itsm.config.ci.upserted",
            CREATED,
            f"{ci_id}-u",
            ci_id=ci_id,
            services=services or [],
            depends_on=depends_on or [],
            critical=critical,
        ),
        ev("itsm.config.ci.deleted", GONE, f"{ci_id}-d", ci_id=ci_id),
    ]


def outage(alert_id: str, ci_id: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
    return [
        ev(
            "itsm.monitor.alert.firing",
            start,
            f"{alert_id}-f",
            alert_id=alert_id,
            ci_id=ci_id,
            severity="critical",
            started_at=start.isoformat(),
        ),
        ev("itsm.monitor.alert.resolved", end, f"{alert_id}-r", alert_id=alert_id),
    ]


def incident(
    ticket_id: str, service: str, priority: int, opened: datetime, resolved: datetime, **data: Any
) -> list[dict[str, Any]]:
    return [
        ticket_event(ticket_id, opened, "new", service=service, priority=priority, **data),
        ticket_event(ticket_id, resolved, "resolved"),
    ]


def change(
    change_id: str, start: datetime, end: datetime, *, approved: bool, **data: Any
) -> list[dict[str, Any]]:
    events = [
        ev(
            "itsm.change.requested",
            t(9, day=1),
            f"{change_id}-q",
            change_id=change_id,
            planned_start=start.isoformat(),
            planned_end=end.isoformat(),
            **data,
        )
    ]
    if approved:
        events.append(
            ev("itsm.change.approved", t(12, day=1), f"{change_id}-a", change_id=change_id)
        )
    return events


@pytest.fixture(scope="module")
def day(postgres: Postgres) -> Iterator[Engine]:
    engine = make_engine(postgres.fresh())
    events = [
        # erp: app1 (in erp) → db1 → san1 (critical), two levels of depends_on
        *ci("app1", ["erp"], depends_on=["db1"]),
        *ci("db1", depends_on=["san1"]),
        *ci("san1", critical=True),
        *outage("SAN", "san1", t(10), t(11)),
        *outage("DB", "db1", t(14), t(15)),  # not critical: erp stays up
        *outage("APP", "app1", t(16), t(17)),  # not critical either
        # crm: critical web2 down 08:00–10:00, a P1 incident open 09:00–12:00 overlapping it
        *ci("web2", ["crm"], critical=True),
        *outage("WEB", "web2", t(8), t(10)),
        *incident("I1", "crm", 1, t(9), t(12)),
        # hr (named only by tickets): P1 10:00–13:00 counts; a P2, a cancelled P1 and a P1
        # service request do not
        *incident("I2", "hr", 1, t(10), t(13)),
        *incident("I3", "hr", 2, t(14), t(20)),
        ticket_event("I4", t(6), "new", service="hr", priority=1),
        ticket_event("I4", t(7), "cancelled"),
        *incident("S1", "hr", 1, t(20), t(22), kind="service_request"),
        # email: critical mx1 down 03:00–06:00; approved change listing mx1 02:00–04:00; an
        # unapproved change naming the service 08:00–09:00
        *ci("mx1", ["email"], critical=True),
        *outage("MX", "mx1", t(3), t(6)),
        *change("CH1", t(2), t(4), approved=True, ci_ids=["mx1"]),
        *change("CH2", t(8), t(9), approved=False, service="email"),
        # web: approved change naming the service 00:00–06:00; critical lb1 down 05:00–07:00
        *ci("lb1", ["web"], critical=True),
        *outage("LB", "lb1", t(5), t(7)),
        *change("CH3", t(0), t(6), approved=True, service="web"),
        # billing: approved change on store1 (a dependency of bill1) 20:00–22:00; critical
        # store1 down 21:00–23:00
        *ci("bill1", ["billing"], depends_on=["store1"]),
        *ci("store1", critical=True),
        *outage("ST", "store1", t(21), t(23)),
        *change("CH4", t(20), t(22), approved=True, ci_ids=["store1"]),
        # loop: loop-a (in loop) → loop-b → loop-c (critical) → loop-a, a cycle
        *ci("loop-a", ["loop"], depends_on=["loop-b"]),
        *ci("loop-b", depends_on=["loop-c"]),
        *ci("loop-c", depends_on=["loop-a"], critical=True),
        *outage("LOOP", "loop-c", t(12), t(13)),
    ]
    store(engine, events)
    aggregate(engine)
    yield engine
    engine.dispose()


def value(engine: Engine, window: str = "day", start: datetime = DAY, **dims: str) -> float:
    p = points(engine, INDICATOR, window, start, **dims)
    assert p is not None, f"{INDICATOR} {window} {start} {dims} has no point"
    assert p["count"] == 1 or not dims
    return round(float(p["value"]), 6)


def test_critical_ci_two_dependency_levels_down_takes_the_service_down(day: Engine) -> None:
    # san1 10:00–11:00 only; db1's and app1's outages are not critical: 1 − 3600 / 86400
    assert value(day, service="erp") == round(1 - 3600 / 86400, 6)


def test_overlapping_ci_outage_and_p1_incident_are_counted_once(day: Engine) -> None:
    # 08:00–10:00 ∪ 09:00–12:00 = 08:00–12:00: 1 − 14400 / 86400 (not 1 − 18000 / 86400)
    assert value(day, service="crm") == round(1 - 14400 / 86400, 6)


def test_only_open_p1_incidents_count(day: Engine) -> None:
    # I2 10:00–13:00 only (not the P2, the cancelled P1, the service request): 1 − 10800 / 86400
    assert value(day, service="hr") == 0.875


def test_approved_change_on_a_ci_of_the_service_is_excluded_from_both_sides(
    day: Engine,
) -> None:
    # counted 86400 − 7200 (02:00–04:00) = 79200; down in it 04:00–06:00 = 7200 (the unapproved
    # change excludes nothing): (79200 − 7200) / 79200
    assert value(day, service="email") == round(72000 / 79200, 6)


def test_approved_change_naming_the_service_is_excluded(day: Engine) -> None:
    # counted 86400 − 21600 (00:00–06:00) = 64800; down in it 06:00–07:00 = 3600
    assert value(day, service="web") == round(61200 / 64800, 6)


def test_approved_change_on_a_dependency_is_excluded(day: Engine) -> None:
    # counted 86400 − 7200 (20:00–22:00) = 79200; down in it 22:00–23:00 = 3600
    assert value(day, service="billing") == round(75600 / 79200, 6)


def test_dependency_cycle_terminates_and_reaches_the_critical_ci(day: Engine) -> None:
    # loop-c 12:00–13:00: 1 − 3600 / 86400
    assert value(day, service="loop") == round(1 - 3600 / 86400, 6)


def test_all_services_roll_up_as_seconds(day: Engine) -> None:
    # available: erp 82800, crm 72000, hr 75600, email 72000, web 61200, billing 75600,
    # loop 82800 = 522000; counted: 4 × 86400 + 79200 + 64800 + 79200 = 568800
    p = points(day, INDICATOR, "day", DAY)
    assert p is not None
    assert (round(p["value"], 6), p["count"]) == (round(522000 / 568800, 6), 7)


def test_month_of_the_chain(day: Engine) -> None:
    # san1's hour in October: 1 − 3600 / 2678400
    assert value(day, "month", utc(2026, 10, 1), service="erp") == round(1 - 3600 / 2678400, 6)


def test_the_next_day_is_fully_available(day: Engine) -> None:
    assert value(day, start=utc(2026, 10, 6), service="erp") == 1.0


def test_a_ci_turned_critical_later_recomputes_its_past_outages(engine: Engine) -> None:
    # k serves "late" from 10-01 to 10-08, down 06:00–12:00 on 10-05, not critical at first
    store(engine, [*ci("k", ["late"]), *outage("K1", "k", t(6), t(12))])
    aggregate(engine)
    # no critical CI: nothing takes the service down
    assert points(engine, INDICATOR, "day", DAY, service="late")["value"] == 1.0  # type: ignore[index]
    # on 10-07 the CMDB marks it critical: the CMDB keeps no topology history, so its whole
    # life counts with it, the 10-05 outage included: 1 − 21600 / 86400
    store(
        engine,
        [
            ev(
                "itsm.config.ci.upserted",
                t(9, day=7),
                "k-critical",
                ci_id="k",
                services=["late"],
                critical=True,
            )
        ],
    )
    aggregate(engine)
    assert points(engine, INDICATOR, "day", DAY, service="late") == {
        "value": 0.75,
        "count": 1,
        "p50": None,
        "p90": None,
    }
