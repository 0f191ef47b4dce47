"""`review_completion_ratio` (SPEC §7.3): reviews held on time / reviews due, on real
PostgreSQL, with the aggregator's clock fixed at Tuesday 3 November 2026 10:00 UTC. Every
expectation is computed by hand in the comment beside it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from services.aggregator.indicators import get
from services.aggregator.policy import stored_groupings
from services.api.reviews import service as reviews
from services.api.reviews.schemas import ReviewCreate
from services.catalog import active_catalog, apply_catalog
from shared.db import make_engine, objective_status
from shared.settings import Settings
from tests.conftest import Postgres
from tests.helpers import aggregate, points, publish, utc

NOW = utc(2026, 11, 3, 10)
UTC_ZONE = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
# Days and longer are stored; hours only for the last 3 days (the others are answered at query
# time), which keeps the fixture's two months of windows cheap.
SETTINGS = Settings(_env_file=None, aggregator_slow_seconds=0, hour_retention_days=3)  # type: ignore[call-arg]
ID = "review_completion_ratio"

# Deadlines (UTC, the reporting time zone here), the end of the period plus its grace:
#   acme, monthly, 5 days:  August's 6 Sep, September's 6 Oct, October's 6 Nov (not yet passed)
#   erp, monthly, 10 days:  August's 11 Sep, September's 11 Oct, October's 11 Nov (not yet)
#   desk, weekly (ISO weeks end on Monday), 2 days: W35's Wed 2 Sep, W36 9 Sep, W37 16 Sep,
#   W38 23 Sep, W39 30 Sep, W40 7 Oct, W41 14 Oct, W42 21 Oct, W43 28 Oct, W44's 4 Nov (not yet)
CATALOG = """
customers: [{id: acme}, {id: globex}]
services: [{id: email, customer: acme}, {id: erp, customer: globex}]
reviews:
  - {kind: customer, level: 2, customer: acme, every: month, grace_days: 5}
  - {kind: customer, level: 3, service: erp, every: month, grace_days: 10}
  - {kind: team, level: 1, assignment_group: desk, every: week, grace_days: 2}
objectives:
  - {service: erp, indicator: review_completion_ratio, window: month, comparator: ">=",
     target: 0.9, warning: 0.5}
"""
HELD = [
    # (scope, period, held at): on time when before the deadline
    ({"customer": "acme"}, "2026-08", utc(2026, 9, 8, 10)),  # 2 days late: 0
    ({"customer": "acme"}, "2026-09", utc(2026, 10, 2, 10)),  # on time: 1
    ({"customer": "acme"}, "2026-10", utc(2026, 11, 2, 10)),  # deadline 6 Nov ahead: no sample
    ({"service": "erp"}, "2026-08", utc(2026, 8, 28, 10)),  # before August even ended: 1
    # erp's September review is never held: 0
    ({"assignment_group": "desk"}, "2026-W35", utc(2026, 9, 1, 10)),  # 1
    ({"assignment_group": "desk"}, "2026-W37", utc(2026, 9, 15, 10)),  # 1
    ({"assignment_group": "desk"}, "2026-W39", utc(2026, 9, 29, 10)),  # 1
    ({"assignment_group": "desk"}, "2026-W40", utc(2026, 10, 5, 10)),  # 1
    ({"assignment_group": "desk"}, "2026-W41", utc(2026, 10, 14)),  # at the deadline: late, 0
    ({"assignment_group": "desk"}, "2026-W42", utc(2026, 10, 19, 10)),  # 1
    ({"assignment_group": "desk"}, "2026-W43", utc(2026, 10, 27, 10)),  # 1
]


def record(
    engine: Engine, scope: dict[str, str], period: str, held_at: datetime, tz: ZoneInfo
) -> None:
    """Record a review as POST /v1/reviews does (the same function, in one transaction)."""
    kind = "team" if "assignment_group" in scope else "customer"
    body = ReviewCreate(
        kind=kind,
        level=1,
        period=period,
        held_at=held_at,
        participants=["lead"],
        recorded_by="lead",
        **scope,
    )
    with engine.begin() as conn:
        reviews.create(conn, active_catalog(conn), body, NOW, tz)


def at_now() -> datetime:
    return NOW


@pytest.fixture(scope="module")
def held(postgres: Postgres) -> Iterator[Engine]:
    engine = make_engine(postgres.fresh())
    with engine.begin() as conn:  # a new schedule marks its recent windows dirty
        apply_catalog(conn, CATALOG, "test", now=NOW)
    for scope, period, at in HELD:
        record(engine, scope, period, at, UTC_ZONE)
    aggregate(engine, SETTINGS, at_now)
    yield engine
    engine.dispose()


def value(engine: Engine, window: str, start: datetime, **dims: str) -> tuple[float, int] | None:
    p = points(engine, ID, window, start, now=NOW, **dims)
    return None if p is None else (p["value"], p["count"])


def test_the_indicator_is_declared_like_any_other() -> None:
    ind = get(ID)
    assert ind is not None
    assert (ind.family, ind.unit, ind.direction, ind.aggregate) == (
        "process",
        "ratio",
        "higher_is_better",
        "ratio",
    )
    # customer is its samples' own: listed once, never derived from service
    assert ind.all_dimensions == ("review_kind", "service", "customer", "assignment_group")
    assert not ind.derives_customer and ind.mergeable and ind.span_sensitive
    assert stored_groupings(ind, "month") == (
        (),
        ("review_kind",),
        ("service",),
        ("customer",),
        ("assignment_group",),
    )


def test_months_count_reviews_held_on_time_among_those_due(held: Engine) -> None:
    # September: acme Aug 0, erp Aug 1, desk W35 1, W36 0, W37 1, W38 0, W39 1 → 4 / 7
    assert value(held, "month", utc(2026, 9, 1)) == (pytest.approx(4 / 7), 7)
    # October: acme Sep 1, erp Sep 0, desk W40 1, W41 0, W42 1, W43 1 → 4 / 6
    assert value(held, "month", utc(2026, 10, 1)) == (pytest.approx(4 / 6), 6)
    # November: no deadline has passed yet (4, 6 and 11 Nov): no point, not a 0
    assert value(held, "month", utc(2026, 11, 1)) is None
    # the fourth quarter so far is October's
    assert value(held, "quarter", utc(2026, 10, 1)) == (pytest.approx(4 / 6), 6)


def test_a_sample_lies_in_the_window_holding_its_deadline(held: Engine) -> None:
    assert value(held, "day", utc(2026, 10, 6)) == (1.0, 1)  # acme's September, on time
    assert value(held, "day", utc(2026, 10, 11)) == (0.0, 1)  # erp's September, never held
    assert value(held, "day", utc(2026, 10, 14)) == (0.0, 1)  # W41, held at its deadline
    assert value(held, "day", utc(2026, 9, 11)) == (1.0, 1)  # erp's August, held early
    assert value(held, "day", utc(2026, 10, 5)) is None  # a review held, no deadline
    # ISO week 5-11 October: acme 6 Oct 1, W40 7 Oct 1, erp 11 Oct 0 → 2 / 3
    assert value(held, "week", utc(2026, 10, 5)) == (pytest.approx(2 / 3), 3)
    # an hour by group is not stored: answered at query time by the same statement
    assert value(held, "hour", utc(2026, 10, 7), assignment_group="desk") == (1.0, 1)
    assert value(held, "hour", utc(2026, 10, 6, 23), assignment_group="desk") is None


def test_october_by_customer_review_kind_and_group(held: Engine) -> None:
    oct1 = utc(2026, 10, 1)
    # a review of a customer has its customer; one of a service its service's (erp → globex)
    assert value(held, "month", oct1, customer="acme") == (1.0, 1)
    assert value(held, "month", oct1, customer="globex") == (0.0, 1)
    assert value(held, "month", oct1, customer="unknown") == (0.75, 4)  # desk: 3 of 4
    assert value(held, "month", oct1, service="erp") == (0.0, 1)
    assert value(held, "month", oct1, service="unknown") == (0.8, 5)  # acme 1 + desk 3
    assert value(held, "month", oct1, review_kind="customer") == (0.5, 2)
    assert value(held, "month", oct1, review_kind="team") == (0.75, 4)
    assert value(held, "month", oct1, assignment_group="desk") == (0.75, 4)
    # not stored, computed at query time by the same statement
    assert value(held, "month", oct1, review_kind="customer", customer="acme") == (1.0, 1)


def test_an_objective_on_it_gets_a_status(held: Engine) -> None:
    with held.connect() as conn:
        rows = conn.execute(
            select(
                objective_status.c.window_start, objective_status.c.value, objective_status.c.status
            )
            .where(objective_status.c.indicator == ID, objective_status.c.window_kind == "month")
            .order_by(objective_status.c.window_start)
        ).all()
    got = {r.window_start: (r.value, r.status) for r in rows}
    # erp: August's review held (September's window) 1 ≥ 0.9; September's never held 0 < 0.5
    assert got[utc(2026, 9, 1)] == (1.0, "met")
    assert got[utc(2026, 10, 1)] == (0.0, "breached")
    assert got[utc(2026, 11, 1)] == (None, "no_data")


def test_the_metrics_snapshot_carries_it_with_its_own_customer_label(held: Engine) -> None:
    body = publish(held, SETTINGS, at_now).rendering.body.decode()
    lines = [line for line in body.splitlines() if line.startswith("itsm_review_completion_ratio{")]
    # October is the previous month at the clock's now
    assert (
        'itsm_review_completion_ratio{assignment_group="",customer="acme",period="previous",'
        'review_kind="",service="",window="month"} 1.0'
    ) in lines
    assert (
        'itsm_review_completion_ratio{assignment_group="desk",customer="",period="previous",'
        'review_kind="",service="",window="month"} 0.75'
    ) in lines
    assert 'indicator="review_completion_ratio"' in body  # its objective's status


def test_periods_before_the_schedule_began_count_neither_way(postgres: Postgres) -> None:
    # desk's schedule began on Monday 14 September: W37 ends that day, so it and the weeks before
    # were never due; W38 (deadline 23 Sep, never held) and W39 (held) count
    engine = make_engine(postgres.fresh())
    began = CATALOG.replace(
        "every: week, grace_days: 2}", "every: week, grace_days: 2, since: 2026-09-14}"
    )
    assert began != CATALOG
    with engine.begin() as conn:
        apply_catalog(conn, began, "test", now=NOW)
    for scope, period, at in HELD:
        record(engine, scope, period, at, UTC_ZONE)
    aggregate(engine, SETTINGS, at_now)
    # September: acme Aug 0, erp Aug 1, desk W38 0, W39 1 → 2 / 4 (W35-W37 left out)
    assert value(engine, "month", utc(2026, 9, 1)) == (pytest.approx(2 / 4), 4)
    assert value(engine, "day", utc(2026, 9, 2)) is None  # W35's deadline: not scheduled then
    # October is after the start: as without it
    assert value(engine, "month", utc(2026, 10, 1)) == (pytest.approx(4 / 6), 6)
    engine.dispose()


def test_a_changed_schedule_recomputes_its_recent_windows(postgres: Postgres) -> None:
    engine = make_engine(postgres.fresh())
    first = "reviews: [{kind: team, level: 1, assignment_group: desk, every: week, grace_days: 2}]"
    with engine.begin() as conn:
        apply_catalog(conn, first, "test", now=NOW)
    record(engine, {"assignment_group": "desk"}, "2026-W43", utc(2026, 10, 29, 10), UTC_ZONE)
    aggregate(engine, SETTINGS, at_now)
    assert value(engine, "day", utc(2026, 10, 28)) == (0.0, 1)  # a day late for 2 days' grace
    # the same deadlines with another level or other participants mark nothing
    same = first.replace("level: 1", "level: 2, participants: [lead]")
    with engine.begin() as conn:
        before = conn.execute(text("SELECT count(*) FROM dirty_windows")).scalar_one()
        apply_catalog(conn, same, "test", now=NOW)
        assert conn.execute(text("SELECT count(*) FROM dirty_windows")).scalar_one() == before
    # a grace of 3 days: W43's deadline moves to Thursday 29 October 00:00, still before the
    # review; W42's to 22 October (no review: 0)
    with engine.begin() as conn:
        apply_catalog(conn, first.replace("grace_days: 2", "grace_days: 3"), "test", now=NOW)
    aggregate(engine, SETTINGS, at_now)
    assert value(engine, "day", utc(2026, 10, 28)) is None
    assert value(engine, "day", utc(2026, 10, 29)) == (0.0, 1)
    assert value(engine, "day", utc(2026, 10, 22)) == (0.0, 1)
    # a grace of 4 days: due Friday 30 October, the review (29 Oct) was on time
    with engine.begin() as conn:
        apply_catalog(conn, first.replace("grace_days: 2", "grace_days: 4"), "test", now=NOW)
    aggregate(engine, SETTINGS, at_now)
    assert value(engine, "day", utc(2026, 10, 30)) == (1.0, 1)
    # October: W39 to W43 due 2, 9, 16, 23, 30 October; only W43 held → 1 / 5
    assert value(engine, "month", utc(2026, 10, 1)) == (0.2, 5)
    engine.dispose()


@pytest.fixture(scope="module")
def berlin(postgres: Postgres) -> Iterator[tuple[Engine, Settings]]:
    """A weekly team review with 7 days' grace, aligned in Europe/Berlin, where summer time
    ended on Sunday 25 October 2026 (03:00 CEST → 02:00 CET)."""
    engine = make_engine(postgres.fresh())
    settings = SETTINGS.model_copy(update={"reporting_timezone": "Europe/Berlin"})
    schedule = (
        "reviews: [{kind: team, level: 1, assignment_group: desk, every: week, grace_days: 7}]"
    )
    with engine.begin() as conn:
        apply_catalog(conn, schedule, "test", now=NOW)
    # W42 (12-18 Oct) ends Monday 19 Oct 00:00 CEST; 7 local days later is Monday 26 Oct
    # 00:00 CET = 25 Oct 23:00 UTC (7 days and an hour). Held at 22:30 UTC: on time (a fixed
    # offset of +2 would have put the deadline at 22:00 and the review late).
    record(engine, {"assignment_group": "desk"}, "2026-W42", utc(2026, 10, 25, 22, 30), BERLIN)
    aggregate(engine, settings, at_now)
    yield engine, settings
    engine.dispose()


def test_deadlines_follow_local_calendar_days_across_daylight_saving(
    berlin: tuple[Engine, Settings],
) -> None:
    engine, _ = berlin

    def local(window: str, start: datetime, **dims: str) -> tuple[float, int] | None:
        p = points(engine, ID, window, start, tz=BERLIN, now=NOW, **dims)
        return None if p is None else (p["value"], p["count"])

    # the deadline is the hour from 25 Oct 23:00 UTC (midnight in Berlin), not 22:00 (+2, the
    # offset when W42 ended) nor the next one (UTC midnight)
    desk = {"assignment_group": "desk"}
    assert local("hour", utc(2026, 10, 25, 23), **desk) == (1.0, 1)
    assert local("hour", utc(2026, 10, 25, 22), **desk) is None
    assert local("hour", utc(2026, 10, 26), **desk) is None

    # Berlin's 26 October begins at 25 Oct 23:00 UTC and holds W42's deadline; its 25 October
    # (22:00 UTC on the 24th, 25 hours long) holds none.
    assert local("day", utc(2026, 10, 25, 23)) == (1.0, 1)
    assert local("day", utc(2026, 10, 24, 22)) is None
    # Berlin's October (30 Sep 22:00 – 31 Oct 23:00 UTC): deadlines of W39 (5 Oct 00:00
    # CEST), W40 (12 Oct), W41 (19 Oct), W42 (26 Oct 00:00 CET) → 1 of 4; W43's (2 Nov 00:00
    # CET = 1 Nov 23:00 UTC) lies in November.
    assert local("month", utc(2026, 9, 30, 22)) == (0.25, 4)
    assert local("month", utc(2026, 10, 31, 23)) == (0.0, 1)
