"""Several aggregators share the work through PostgreSQL (SPEC §2): dirty marks are claimed with
SKIP LOCKED and each window is computed under an advisory lock, so a window another aggregator
is computing is left for later, never computed twice at once nor lost."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from shared.windows import window_start
from tests.helpers import (
    UTC_TZ,
    aggregate,
    aggregator,
    cloud_event,
    real_clock,
    store,
    ticket_event,
    utc,
)

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
                    "FROM indicator_points ORDER BY 1, 2, 3, 4"
                )
            )
        ]


def day_count(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT count FROM indicator_points WHERE indicator = 'ticket_opened_count' "
                "AND window_kind = 'day' AND window_start = :s AND dimensions = '{}'"
            ),
            {"s": DAY},
        ).scalar()


def queued(engine: Engine, kind: str | None = None) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT window_kind, window_start, lane FROM window_queue "
                    "WHERE CAST(:kind AS text) IS NULL OR window_kind = :kind ORDER BY 1, 2, 3"
                ),
                {"kind": kind},
            )
        ]


def test_a_day_another_aggregator_computes_is_left_queued_and_computed_after(
    engine: Engine,
) -> None:
    # resolved ten minutes later: a day with one hour, a week, a month and a quarter to compute
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
    now = datetime.now(UTC)
    clock = [now]
    agg = aggregator(engine, clock=lambda: clock[0])
    try:
        # the week, the month and the quarter were computed; the day was not, and stays queued
        assert agg.recompute_dirty() == 3
        assert day_count(engine) is None
        assert {(k, s) for k, s, _ in queued(engine, "day")} == {("day", DAY)}
        assert {s for _, s, _ in queued(engine, "hour")} == {utc(2026, 10, 5, 9)}
    finally:
        holder.rollback()
        holder.close()
    clock[0] = now + timedelta(seconds=2)  # left for a second: no busy loop on a held unit
    assert agg.recompute_dirty() >= 1  # the lock is gone: the day is computed now
    assert day_count(engine) == 1
    assert queued(engine) == []


def test_aggregators_draining_at_once_store_what_one_would(engine: Engine) -> None:
    # tickets resolved within minutes, at scattered hours: many separate marks
    events = [
        ticket_event(f"CC{n}", utc(2026, 10, 1 + n % 28, n % 24, m), state, priority=1 + n % 4)
        for n in range(48)
        for m, state in ((0, "new"), (20, "resolved"))
    ]
    store(engine, events)
    with engine.connect() as conn:  # the marks the events left: one range per cluster
        marks = conn.execute(
            text("SELECT scope, lane, range_start, range_end FROM dirty_windows")
        ).all()
    assert len(marks) > 20
    # on the real clock: a window that met a deadlock waits its backoff, which a fixed clock
    # would never reach
    aggregate(engine, clock=real_clock)
    alone = stored(engine)
    with engine.begin() as conn:  # the same marks again, for several aggregators this time
        conn.execute(text("TRUNCATE indicator_values, indicator_pending, objective_status"))
        conn.execute(
            text(
                "INSERT INTO dirty_windows (scope, lane, range_start, range_end, "
                "first_received_at) VALUES (:scope, :lane, :range_start, :range_end, now())"
            ),
            [dict(m._mapping) for m in marks],
        )

    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def drain() -> None:
        agg = aggregator(engine, clock=real_clock)
        start.wait()
        try:
            for _ in range(200):
                if agg.recompute_dirty(budget=0) == 0 and not queued(engine):
                    break
        except BaseException as err:
            errors.append(err)

    workers = [threading.Thread(target=drain) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert errors == []
    aggregate(engine, clock=real_clock)  # what one left for later, if any
    assert stored(engine) == alone


def test_marks_reaching_far_ahead_are_computed_up_to_now_only(engine: Engine) -> None:
    # an approved change planned from an hour ago until 2099: its window marks 73 years of
    # windows dirty, of which only those begun so far have anything to compute
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
    computed = aggregator(engine, clock=real_clock).recompute_dirty()
    # the day (or two) of the hour before now, its week(s), month(s) and quarter(s), each
    # perhaps once more for what it queued (up to 9 seen across midnight): not the ~640,000
    # windows up to 2099
    assert 4 <= computed <= 16
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM dirty_windows")).scalar() == 0
    assert queued(engine) == []


def test_a_backfill_goes_in_chunks_with_the_current_windows_first(engine: Engine) -> None:
    events = [  # resolved within the hour: nothing stays open to mark the windows up to now
        ticket_event(f"BF{n}", utc(2026, 10, 1 + n, 9, m), state, priority=1 + n % 4)
        for n in range(6)
        for m, state in ((0, "new"), (30, "resolved"))
    ]
    store(engine, events)
    aggregate(engine, clock=real_clock)  # all at once: what the chunks must come to
    alone = stored(engine)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE indicator_values, indicator_pending, objective_status"))
    agg = aggregator(engine, clock=real_clock)
    agg.mark_since(utc(2026, 10, 1), utc(2026, 10, 7))  # 7 days, 2 weeks, a month
    now = datetime.now(UTC)
    store(engine, [ticket_event("NOW", now - timedelta(minutes=1), "new")])  # while it runs
    # one chunk: the current day first, however much history waits
    assert agg.recompute_dirty(budget=0) == 1
    today = window_start("day", now, UTC_TZ)
    with engine.connect() as conn:
        assert (
            conn.execute(
                text(
                    "SELECT count FROM indicator_points WHERE indicator = 'ticket_opened_count' "
                    "AND window_kind = 'day' AND window_start = :s AND dimensions = '{}'"
                ),
                {"s": today},
            ).scalar()
            == 1
        )
    assert ("day", utc(2026, 10, 1), "point") in queued(engine)
    chunks, units = 1, 1
    while (n := agg.recompute_dirty(budget=0)) > 0:
        chunks += 1
        units += n
    # cheap past days go several to a chunk (sized by their measured cost), each chunk its
    # own transaction
    assert chunks < units
    agg.fold(force=True)  # what is pending joins the points, which are then left out
    with engine.begin() as conn:  # the current day's points are not part of the comparison
        conn.execute(
            text("DELETE FROM indicator_values WHERE window_start >= :s"),
            {"s": window_start("month", now, UTC_TZ)},
        )
        conn.execute(
            text("DELETE FROM indicator_values WHERE window_kind = 'week' AND window_start >= :s"),
            {"s": window_start("week", now, UTC_TZ)},
        )
        # the current quarter holds the backfill and the current ticket: left out on both sides
        quarter = window_start("quarter", now, UTC_TZ)
        conn.execute(
            text(
                "DELETE FROM indicator_values WHERE window_kind = 'quarter' AND window_start >= :s"
            ),
            {"s": quarter},
        )
    alone = [r for r in alone if not (r[1] == "quarter" and r[2] >= quarter)]
    assert stored(engine) == alone
