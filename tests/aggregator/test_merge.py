"""Weeks and months add up from their days, recent days from their hours (services/aggregator/
merge.py), and what is stored equals what the same statement computes at query time for the
same grouping: whatever the order events arrive in, in however many batches, aggregated
between them, with hours recomputed alone inside days that keep partials."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.engine import Engine

from services.aggregator.compute import catalog_params, query_points
from services.aggregator.indicators import Indicator, all_indicators
from services.aggregator.jobs import Aggregator
from services.aggregator.policy import stored_groupings
from services.catalog import active_catalog
from shared.windows import window_end
from tests.aggregator.test_oracle import histories
from tests.helpers import UTC_TZ, aggregator, store, ticket_event, utc

# The aggregator's clock: the oracle's histories start 2026-10-03, so 10-03 and 10-04 are
# recent days (hour partials), earlier days of the month are not, and 10-05 has not begun.
NOW = utc(2026, 10, 4, 18)
TICKETS = [i for i in all_indicators() if i.scopes & {"ticket", "sla"} and i.mergeable]
BACKLOG = [i for i in all_indicators() if i.id == "incident_backlog_count"]


def reset(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "TRUNCATE events, tickets, ticket_sla, dirty_windows, window_queue, "
                "indicator_values, indicator_pending, indicator_partials, partial_days, "
                "objective_status, row_changes, partial_snapshots"
            )
        )


def drain(engine: Engine, now: datetime = NOW) -> Aggregator:
    """Evaluate SLAs and recompute every dirty window; the aggregator (its metrics say how)."""
    agg = aggregator(engine, clock=lambda: now)
    agg.evaluate_sla()
    while agg.recompute_dirty() > 0:
        pass
    # a unit that failed would wait for its backoff, which this clock never reaches
    assert agg.metrics.window_failures._value.get() == 0, "a unit failed: see the log"
    return agg


def stored_points(
    engine: Engine, kind: str, source: str = "indicator_points"
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """The points of a window kind as readers see them, or as `source` holds them
    (`indicator_values`: the rows themselves, without what is pending)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT indicator, window_start, dimensions, value, count, p50, p90 "
                f"FROM {source} WHERE window_kind = :kind AND value IS NOT NULL"
            ),
            {"kind": kind},
        ).all()
    return {
        (r.indicator, r.window_start, tuple(sorted(r.dimensions.items()))): (
            r.value,
            r.count,
            r.p50,
            r.p90,
        )
        for r in rows
    }


def computed_points(
    engine: Engine,
    kind: str,
    starts: list[datetime],
    indicators: list[Indicator],
    now: datetime = NOW,
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    out = {}
    with engine.connect() as conn:
        params = catalog_params(active_catalog(conn), UTC_TZ)
        for ind in indicators:
            # an instant is placed whenever it lies; a state only in a window that has begun
            begun = [s for s in starts if ind.mergeable or s < now]
            windows = [(s, window_end(kind, s, UTC_TZ)) for s in begun]
            for grouping in stored_groupings(ind, kind):
                for p in query_points(conn, ind, windows, grouping, {}, now=now, params=params):
                    key = (ind.id, p.window_start, tuple(sorted(p.dimensions.items())))
                    out[key] = (p.value, p.count, p.p50, p.p90)
    return out


def same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    def eq(x: Any, y: Any) -> bool:
        if x is None or y is None:
            return x is y
        return math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-9)

    return a[1] == b[1] and all(eq(x, y) for x, y in zip(a[::2], b[::2], strict=True))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.data())
def test_stored_points_equal_the_query_time_answer_for_the_same_grouping(
    merge_db: Engine, events: list[dict[str, Any]], data: st.DataObject
) -> None:
    reset(merge_db)
    note(f"events: {json.dumps(events)}")  # a failure's example, replayable as it was stored
    cuts = sorted(data.draw(st.lists(st.integers(1, len(events)), max_size=4, unique=True)))
    for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True):
        if events[a:b]:
            store(merge_db, events[a:b])
            agg = drain(merge_db)  # hours recomputed alone, their differences added up
            if data.draw(st.booleans(), "fold"):  # pending differences folded, or not yet
                agg.fold(force=True)
    for kind, indicators, starts in (
        # every window the histories reach (from 10-03; up to six gaps after 10-05 12:00)
        ("hour", TICKETS + BACKLOG, [utc(2026, 10, 3) + timedelta(hours=h) for h in range(168)]),
        ("day", TICKETS + BACKLOG, [utc(2026, 10, d) for d in range(1, 11)]),
        ("week", TICKETS + BACKLOG, [utc(2026, 9, 28), utc(2026, 10, 5)]),
        ("month", TICKETS + BACKLOG, [utc(2026, 10, 1)]),
        ("quarter", TICKETS + BACKLOG, [utc(2026, 7, 1), utc(2026, 10, 1)]),
    ):
        got = stored_points(merge_db, kind)
        got = {k: v for k, v in got.items() if k[0] in {i.id for i in indicators}}
        expected = computed_points(merge_db, kind, starts, indicators)
        assert got.keys() == expected.keys(), kind
        assert {k: (got[k], expected[k]) for k in got if not same(got[k], expected[k])} == {}


def test_a_recent_day_keeps_hour_partials_that_add_up_to_it(merge_db: Engine) -> None:
    reset(merge_db)
    store(merge_db, [ticket_event("P1", utc(2026, 10, 4, 9), "new", service="email")])
    drain(merge_db)
    store(merge_db, [ticket_event("P2", utc(2026, 10, 4, 11), "new", service="email")])
    drain(merge_db)
    with merge_db.connect() as conn:
        days = conn.execute(text("SELECT day_start FROM partial_days ORDER BY 1")).scalars()
        assert list(days) == [utc(2026, 10, 4)]
        hours = conn.execute(
            text(
                "SELECT window_start, count FROM indicator_partials "
                "WHERE indicator = 'ticket_opened_count' AND dimensions = '{}' ORDER BY 1"
            )
        ).all()
    assert [(h.window_start.hour, h.count) for h in hours] == [(9, 1), (11, 1)]
    month = stored_points(merge_db, "month")
    assert month[("ticket_opened_count", utc(2026, 10, 1), ())][:2] == (2.0, 2)


# Months of one quarter: a ticket in September (Q3), then October, November and the last
# minutes of December (Q4), each its own batch, aggregated on a clock in January 2027 (every
# day old: recomputed whole and merged into its week, month and quarter).
LATER = utc(2027, 1, 10)


def test_a_quarter_adds_up_from_its_months_days(merge_db: Engine) -> None:
    reset(merge_db)
    batches = [
        [ticket_event("Q1", utc(2026, 9, 30, 10), "new", kind="incident", service="email")],
        [
            ticket_event("Q2", utc(2026, 10, 15, 9), "new", kind="incident", service="email"),
            ticket_event("Q2", utc(2026, 10, 15, 11), "resolved"),
        ],
        [
            ticket_event("Q3", utc(2026, 11, 20, 8), "new", kind="incident", service="erp"),
            ticket_event("Q3", utc(2026, 11, 20, 12), "resolved"),
        ],
        [
            ticket_event("Q4", utc(2026, 12, 31, 23, 30), "new", kind="incident", service="email"),
            ticket_event("Q1", utc(2026, 12, 31, 23, 45), "resolved"),
        ],
    ]
    for batch in batches:
        store(merge_db, batch)
        drain(merge_db, LATER)
    quarters = stored_points(merge_db, "quarter")
    assert quarters[("ticket_opened_count", utc(2026, 7, 1), ())][:2] == (1.0, 1)
    assert quarters[("ticket_opened_count", utc(2026, 10, 1), ())][:2] == (3.0, 3)
    assert quarters[("ticket_resolved_count", utc(2026, 10, 1), ())][:2] == (3.0, 3)
    # resolution times: 2 h, 4 h, and Q1's 92 days 13 h 45 min: the mean and exact p50/p90
    long = (92 * 24 + 13.75) * 3600
    value, count, p50, p90 = quarters[("incident_resolution_time_seconds", utc(2026, 10, 1), ())]
    assert count == 3
    assert value == pytest.approx((2 * 3600 + 4 * 3600 + long) / 3)
    assert p50 == pytest.approx(4 * 3600)
    assert p90 == pytest.approx(4 * 3600 + 0.8 * (long - 4 * 3600))
    by_service = quarters[("ticket_opened_count", utc(2026, 10, 1), (("service", "email"),))]
    assert by_service[:2] == (2.0, 2)
    # every stored quarter point equals the quarter computed at once
    starts = [utc(2026, 7, 1), utc(2026, 10, 1)]
    expected = computed_points(merge_db, "quarter", starts, TICKETS + BACKLOG, LATER)
    got = {k: v for k, v in quarters.items() if k[0] in {i.id for i in TICKETS + BACKLOG}}
    assert got.keys() == expected.keys()
    assert {k: (got[k], expected[k]) for k in got if not same(got[k], expected[k])} == {}
    # and the quarter equals its three months added up
    months = stored_points(merge_db, "month")
    for (ind, start, dims), (_, count, _, _) in got.items():
        if start == utc(2026, 10, 1) and ind in {i.id for i in TICKETS}:
            parts = [months.get((ind, utc(2026, m, 1), dims)) for m in (10, 11, 12)]
            assert sum(p[1] for p in parts if p) == count, (ind, dims)
