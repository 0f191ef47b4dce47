"""The point lane appends its differences (`indicator_pending`) instead of updating the running
windows' points in place, and the `fold` job adds them up (services/aggregator/merge.py): every
reader sees a point as its row plus its pending differences (`indicator_points`), so a fold
changes no point, whenever it runs, also beside the passes."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from services.aggregator import jobs
from tests.aggregator.test_merge import (
    BACKLOG,
    NOW,
    TICKETS,
    computed_points,
    drain,
    reset,
    same,
    stored_points,
)
from tests.helpers import aggregator, points, ticket_event, utc
from tests.helpers import store as store_events

KINDS = ("day", "week", "month", "quarter")


def pending(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM indicator_pending")).scalar_one())


def tickets(n: int, day: int = 4, hour: int = 9) -> list[dict[str, Any]]:
    """n incidents opened on 2026-10-`day` from `hour`:00, every other one resolved 40 min
    later, over three services and two priorities."""
    out = []
    for i in range(n):
        opened = utc(2026, 10, day, hour) + timedelta(minutes=3 * i)
        service, priority = ("email", "erp", "hr")[i % 3], 1 + i % 2
        tid = f"PD-{day}-{hour}-{i}"
        out.append(ticket_event(tid, opened, "new", service=service, priority=priority))
        if i % 2 == 0:
            out.append(ticket_event(tid, opened + timedelta(minutes=40), "resolved"))
    return out


def test_a_pass_appends_its_differences_and_a_fold_changes_no_point(merge_db: Engine) -> None:
    reset(merge_db)
    store_events(merge_db, tickets(6))
    agg = drain(merge_db)
    store_events(merge_db, tickets(4, hour=14))  # the same day: its hours add differences
    drain(merge_db)
    # each difference once, naming the windows it adds to: the first pass wrote the new day
    # whole (no day), the second added its hour's difference to the day too
    with merge_db.connect() as conn:
        placed = conn.execute(
            text(
                "SELECT day_start, week_start, month_start, quarter_start, count "
                "FROM indicator_pending WHERE indicator = 'ticket_opened_count' AND dim_keys = ''"
                " ORDER BY id"
            )
        ).all()
    week, october = utc(2026, 9, 28), utc(2026, 10, 1)
    assert [tuple(r) for r in placed] == [
        (None, week, october, october, 6),
        (utc(2026, 10, 4), week, october, october, 4),
    ]
    before = {kind: stored_points(merge_db, kind) for kind in KINDS}
    opened = before["month"][("ticket_opened_count", utc(2026, 10, 1), ())]
    assert opened[:2] == (10.0, 10)
    # the month's total is only pending so far: no fold ran
    month_rows = stored_points(merge_db, "month", "indicator_values")
    assert ("ticket_opened_count", utc(2026, 10, 1), ()) not in month_rows

    waiting = pending(merge_db)
    assert agg.fold() == waiting
    assert pending(merge_db) == 0
    for kind in KINDS:
        after = stored_points(merge_db, kind)
        assert after.keys() == before[kind].keys(), kind
        assert [k for k in after if not same(after[k], before[kind][k])] == [], kind
        # nothing pending: the rows are the points
        assert stored_points(merge_db, kind, "indicator_values") == after, kind


def test_a_fold_waits_while_another_transaction_stays_open_but_not_for_ever(
    merge_db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    reset(merge_db)
    store_events(merge_db, tickets(4))
    agg = drain(merge_db)
    waiting = pending(merge_db)
    assert waiting > 0
    monkeypatch.setattr(jobs, "FOLD_WAIT_FOR", timedelta(0))
    with merge_db.connect() as other:  # an analyst's open session, a backup
        other.execute(text("SELECT pg_current_xact_id()"))
        assert agg.fold() is None
        assert pending(merge_db) == waiting
        assert agg.metrics.folds_deferred._value.get() == 1
        assert agg.metrics.pending_age._value.get() > 0
        # ... but never longer than FOLD_DEFER_AT_MOST after the oldest difference
        monkeypatch.setattr(jobs, "FOLD_DEFER_AT_MOST", timedelta(0))
        assert agg.fold() == waiting
        other.rollback()
    assert pending(merge_db) == 0
    assert agg.metrics.pending_age._value.get() == 0
    assert agg.metrics.folded._value.get() == waiting
    assert points(merge_db, "ticket_opened_count", "month", utc(2026, 10, 1))["count"] == 4


def test_folds_beside_the_passes_lose_and_double_nothing(merge_db: Engine) -> None:
    """A fold running in another thread while batches are stored and aggregated: every point
    equals the same statement over the rows at the end, with or without what is pending."""
    reset(merge_db)
    folder = aggregator(merge_db, clock=lambda: NOW)
    stop = threading.Event()
    folded: list[int | None] = []

    def fold_again_and_again() -> None:
        while not stop.is_set():
            folded.append(folder.fold(force=True))

    thread = threading.Thread(target=fold_again_and_again)
    thread.start()
    try:
        for hour in range(8, 18):  # ten batches over 10-03 and 10-04 (both recent days)
            for day in (3, 4):
                store_events(merge_db, tickets(5, day=day, hour=hour))
            drain(merge_db)
    finally:
        stop.set()
        thread.join(30)
    assert any(n for n in folded), "no fold ever took anything"
    wanted = {i.id for i in TICKETS + BACKLOG}
    for kind, starts in (
        ("day", [utc(2026, 10, d) for d in range(1, 6)]),
        ("week", [utc(2026, 9, 28)]),
        ("month", [utc(2026, 10, 1)]),
        ("quarter", [utc(2026, 10, 1)]),
    ):
        got = {k: v for k, v in stored_points(merge_db, kind).items() if k[0] in wanted}
        expected = computed_points(merge_db, kind, starts, TICKETS + BACKLOG)
        assert got.keys() == expected.keys(), kind
        assert {k: (got[k], expected[k]) for k in got if not same(got[k], expected[k])} == {}
