"""Several aggregators share the work through PostgreSQL (SPEC §2): dirty marks are claimed with
SKIP LOCKED and each window is computed under an advisory lock, so a window another aggregator
is computing is left for later, never computed twice at once nor lost."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from services.aggregator import jobs
from tests.helpers import aggregate, aggregator, cloud_event, store, ticket_event, utc

DAY = utc(2026, 10, 5)
# What the window lock of (day, 2026-10-05) is taken with (services.aggregator.jobs._LOCK).
LOCK_DAY = """
    SELECT pg_advisory_xact_lock(
        hashtext('itsm-window'),
        hashtext('day:' || extract(epoch FROM CAST(:s AS timestamptz))::text)
    )
"""


def stored(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT indicator, window_kind, window_start, dimensions::text, value, count "
                    "FROM indicator_values ORDER BY 1, 2, 3, 4"
                )
            )
        ]


def day_count(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT count FROM indicator_values WHERE indicator = 'ticket_opened_count' "
                "AND window_kind = 'day' AND window_start = :s AND dimensions = '{}'"
            ),
            {"s": DAY},
        ).scalar()


def test_a_window_another_aggregator_computes_is_left_dirty_and_computed_next_pass(
    engine: Engine,
) -> None:
    # resolved ten minutes later: an hour, a day, a week and a month to compute
    store(
        engine,
        [
            ticket_event("CO1", utc(2026, 10, 5, 9), "new"),
            ticket_event("CO1", utc(2026, 10, 5, 9, 10), "resolved"),
        ],
    )
    holder = engine.connect()
    holder.begin()
    holder.execute(text(LOCK_DAY), {"s": DAY})  # another aggregator is computing that day
    try:
        agg = aggregator(engine)
        computed = agg.recompute_dirty()
        # hour, week and month were computed; the day was not, and stays marked
        assert computed == 3
        assert day_count(engine) is None
        with engine.connect() as conn:
            busy = conn.execute(
                text("SELECT range_start FROM dirty_windows WHERE scope = 'busy'")
            ).scalars()
            assert list(busy) == [DAY]
    finally:
        holder.rollback()
        holder.close()
    assert agg.recompute_dirty() >= 1  # the lock is gone: the day is computed now
    assert day_count(engine) == 1


def test_aggregators_draining_at_once_store_what_one_would(engine: Engine) -> None:
    # tickets resolved within minutes, at scattered hours: many separate marks
    events = [
        ticket_event(f"CC{n}", utc(2026, 10, 1 + n % 28, n % 24, m), state, priority=1 + n % 4)
        for n in range(48)
        for m, state in ((0, "new"), (20, "resolved"))
    ]
    store(engine, events)
    with engine.connect() as conn:  # the marks the events left: one range per cluster
        marks = conn.execute(text("SELECT scope, range_start, range_end FROM dirty_windows")).all()
    assert len(marks) > 20
    aggregate(engine)
    alone = stored(engine)
    with engine.begin() as conn:  # the same marks again, for several aggregators this time
        conn.execute(text("TRUNCATE indicator_values"))
        conn.execute(
            text(
                "INSERT INTO dirty_windows (scope, range_start, range_end, first_received_at) "
                "VALUES (:scope, :range_start, :range_end, now())"
            ),
            [dict(m._mapping) for m in marks],
        )

    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def drain() -> None:
        agg = aggregator(engine)
        start.wait()
        try:
            while agg.recompute_dirty(limit=3) > 0:
                pass
        except BaseException as err:
            errors.append(err)

    workers = [threading.Thread(target=drain) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert errors == []
    aggregate(engine)  # what one left busy for later, if any
    assert stored(engine) == alone


def test_marks_reaching_far_ahead_are_computed_up_to_now_only(engine: Engine) -> None:
    # an approved change planned from 10-05 until 2099: its window marks 73 years of windows
    # dirty, of which only those begun so far have anything to compute
    now = datetime.now(UTC)
    store(
        engine,
        [
            cloud_event(
                "itsm.change.approved",
                now - timedelta(hours=1),
                "far-1",
                change_id="FAR",
                ci_ids=["x"],
                planned_start=(now - timedelta(hours=1)).isoformat(),
                planned_end="2099-06-01T00:00:00Z",
            )
        ],
    )
    computed = aggregator(engine).recompute_dirty()
    # the hour before now and the current hour at most, their day(s), week(s) and month(s):
    # not the ~640,000 windows up to 2099
    assert 4 <= computed <= 8
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM dirty_windows")).scalar() == 0


def test_a_long_backfill_goes_in_bounded_passes_newest_windows_first(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [  # resolved within the hour: nothing stays open to mark the windows up to now
        ticket_event(f"BF{n}", utc(2026, 10, 1 + n, 9, m), state, priority=1 + n % 4)
        for n in range(6)
        for m, state in ((0, "new"), (30, "resolved"))
    ]
    store(engine, events)
    aggregate(engine)  # unbounded passes: what the bounded ones must come to
    alone = stored(engine)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE indicator_values"))
    agg = aggregator(engine)
    agg.mark_since(utc(2026, 10, 1), utc(2026, 10, 7))  # 145 hours, 7 days, 2 weeks, a month
    monkeypatch.setattr(jobs, "MAX_WINDOWS_PER_PASS", 10)
    assert agg.recompute_dirty() == 10
    with engine.connect() as conn:
        left = conn.execute(text("SELECT min(range_start), max(range_end) FROM dirty_windows"))
        # the newest ten went first: 10-07's hour and day, 10-06's hours from 16:00; the rest
        # (from 10-06 15:00 back, the weeks and the month) is marked for the next passes
        assert tuple(left.one()) == (utc(2026, 9, 28), utc(2026, 10, 6, 15))
    passes = 1
    while agg.recompute_dirty() > 0:
        passes += 1
    assert passes >= 145 // 10
    assert stored(engine) == alone
