"""No poison pass (issue 10): a window whose recomputation fails is retried with backoff, alone,
and parked with its error after a few failures, while every other window is computed; parked
windows are visible (a metric, `itsm-metrics windows parked`) and come back with `windows retry`.
And the queue's cadences: a running window's states and percentiles wait for the slower cadence,
longer when they cost more; costly jobs (drift, the /metrics snapshot) are paced by their cost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from services.aggregator import queue
from tests.helpers import aggregator, points, store, ticket_event, utc
from tests.test_cli import run

POISON_DAY = utc(2026, 10, 4)
# Fails the write of one day's points, as a bug or a bad row would: injected in PostgreSQL.
POISON = """
    CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'injected failure for %', NEW.window_start; END $$;
    CREATE TRIGGER poison BEFORE INSERT ON indicator_values FOR EACH ROW
    WHEN (NEW.window_kind = 'day' AND NEW.window_start = '2026-10-04T00:00:00Z')
    EXECUTE FUNCTION poison();
"""


def opened(engine: Engine, day: datetime) -> float | None:
    p = points(engine, "ticket_opened_count", "day", day)
    return None if p is None else p["value"]


def test_a_failing_window_is_retried_then_parked_and_the_others_are_computed(
    engine: Engine, db_url: str
) -> None:
    store(
        engine,
        [ticket_event(f"Q{d}", utc(2026, 10, d, 9), "new", service="email") for d in (2, 3, 4, 5)],
    )
    with engine.begin() as conn:
        conn.execute(text(POISON))
    clock = [datetime.now(UTC)]
    agg = aggregator(engine, clock=lambda: clock[0])
    attempts = []
    for _ in range(queue.MAX_ATTEMPTS + 2):
        agg.recompute_dirty()
        with engine.connect() as conn:
            attempts.append(
                conn.execute(
                    text("SELECT max(attempts) FROM window_queue WHERE window_start = :s"),
                    {"s": POISON_DAY},
                ).scalar()
            )
        clock[0] += timedelta(minutes=10)  # past any backoff
    # every other day is there; the poisoned one was tried MAX_ATTEMPTS times, then parked
    assert [opened(engine, utc(2026, 10, d)) for d in (2, 3, 5)] == [1.0, 1.0, 1.0]
    assert opened(engine, POISON_DAY) is None
    assert attempts[: queue.MAX_ATTEMPTS] == list(range(1, queue.MAX_ATTEMPTS + 1))
    assert attempts[-1] == queue.MAX_ATTEMPTS  # parked: not tried again
    assert agg.metrics.parked_windows._value.get() >= 1  # type: ignore[attr-defined]
    assert agg.metrics.window_failures._value.get() >= queue.MAX_ATTEMPTS  # type: ignore[attr-defined]
    with engine.connect() as conn:
        parked = queue.parked(conn)
    assert {(p.kind, p.start) for p in parked} >= {("day", POISON_DAY)}
    assert all("injected failure" in p.error for p in parked)

    listed = run(["windows", "parked"], ITSM_DATABASE_URL=db_url)
    assert listed.returncode == 0, listed.stderr
    assert "2026-10-04T00:00:00Z" in listed.stdout and "injected failure" in listed.stdout

    # the fix, then the retry: the day is computed on the next pass
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER poison ON indicator_values"))
    retried = run(["windows", "retry", "--all"], ITSM_DATABASE_URL=db_url)
    assert retried.returncode == 0, retried.stderr
    assert "queued again" in retried.stdout
    clock[0] = datetime.now(UTC) + timedelta(seconds=1)
    agg.recompute_dirty()
    assert opened(engine, POISON_DAY) == 1.0
    # the month adds up all four days once the fourth is computed
    assert points(engine, "ticket_opened_count", "month", utc(2026, 10, 1))["value"] == 4.0  # type: ignore[index]
    with engine.connect() as conn:
        assert queue.parked(conn) == []
    status = run(["windows", "status"], ITSM_DATABASE_URL=db_url)
    assert status.returncode == 0, status.stderr
    assert "parked 0" in status.stdout


def test_retry_needs_to_be_told_which_windows(db_url: str) -> None:
    result = run(["windows", "retry"], ITSM_DATABASE_URL=db_url)
    assert result.returncode != 0
    assert "--all" in result.stderr


def test_a_mark_during_a_units_computation_neither_waits_nor_is_lost(engine: Engine) -> None:
    day = utc(2026, 10, 6)
    store(engine, [ticket_event("M1", utc(2026, 10, 6, 9), "new", service="email")])
    agg = aggregator(engine, clock=lambda: utc(2026, 10, 20))
    agg.expand_marks()
    horizon = agg.horizon(utc(2026, 10, 20))
    unit = queue.Unit("day", day, utc(2026, 10, 7))
    with engine.begin() as computing:  # a unit being computed: its rows read, not locked
        assert queue.try_lock(computing, unit)
        claimed = queue.claim(computing, unit, horizon.now)
        assert {(r.kind, r.lane) for r in claimed} >= {("day", "point"), ("hour", "point")}
        with engine.begin() as marking:  # a new event for the same day meanwhile
            marking.execute(text("SET LOCAL lock_timeout = '1s'"))  # it must not wait
            row = ("day", day, "point", utc(2026, 10, 7), "ticket", horizon.now, horizon.now)
            queue.enqueue(marking, [row], horizon.now)
        queue.done(computing, claimed)
    with engine.connect() as conn:
        left = conn.execute(
            text(
                "SELECT window_kind FROM window_queue WHERE window_start >= :s AND lane = 'point'"
            ),
            {"s": day},
        ).scalars()
        # the day marked again stays due; the hour nobody marked again is done
        assert sorted(left) == ["day"]


def test_a_running_windows_states_wait_for_the_slower_cadence_its_counts_do_not(
    engine: Engine,
) -> None:
    from shared.settings import Settings

    now = [utc(2026, 10, 6, 12, 30)]
    slow = Settings(_env_file=None, aggregator_slow_seconds=30, hour_retention_days=36500)  # type: ignore[call-arg]
    agg = aggregator(engine, slow, clock=lambda: now[0])
    store(engine, [ticket_event("B1", utc(2026, 10, 6, 9), "new", service="email")])
    agg.evaluate_sla()
    agg.recompute_dirty(lanes=queue.LANES)
    now[0] += timedelta(seconds=31)
    agg.recompute_dirty(lanes=queue.LANES)  # the first ticket: day, backlog and all
    day = utc(2026, 10, 6)
    assert opened(engine, day) == 1.0
    backlog = points(engine, "incident_backlog_count", "day", day)
    assert backlog is not None and backlog["value"] == 1.0
    store(engine, [ticket_event("B2", utc(2026, 10, 6, 12, 10), "new", service="email")])
    agg.recompute_dirty(lanes=queue.FAST_LANES)
    assert opened(engine, day) == 2.0  # the count at once
    # the running day's backlog waits for the slower cadence, as a `span` row
    assert points(engine, "incident_backlog_count", "day", day)["value"] == 1.0  # type: ignore[index]
    now[0] += timedelta(seconds=31)
    agg.recompute_dirty(lanes=queue.SLOW_LANES)
    assert points(engine, "incident_backlog_count", "day", day)["value"] == 2.0  # type: ignore[index]


def test_the_running_windows_loop_never_waits_behind_a_past_windows_recompute(
    engine: Engine,
) -> None:
    """The point lane runs in two loops (jobs.Aggregator.run): one for the running windows
    (the running day's hours are its unit's), one for the others, so a new event is never
    queued behind an old day recomputed whole (seconds at a million tickets a month)."""
    now = [utc(2026, 10, 6, 12, 30)]
    agg = aggregator(engine, clock=lambda: now[0])
    store(
        engine,
        [
            ticket_event("R1", utc(2026, 10, 2, 9), "new", service="email"),  # a late event
            ticket_event("R2", utc(2026, 10, 6, 9), "new", service="email"),  # today, 9:00
        ],
    )
    agg.expand_marks()
    horizon = agg.horizon(now[0])

    def first(running: bool | None) -> tuple[str, datetime] | None:
        with engine.connect() as conn:
            units = queue.next_units(conn, horizon, 1, queue.FAST_LANES, running)
        return (units[0].kind, units[0].start) if units else None

    today, old_day = utc(2026, 10, 6), utc(2026, 10, 2)
    assert first(None) == ("day", today)  # newest first
    assert first(True) == ("day", today)  # a past hour of the running day is its unit's
    assert first(False) == ("day", old_day)
    agg.recompute_dirty(lanes=queue.FAST_LANES, running=True)
    assert opened(engine, today) == 1.0 and opened(engine, old_day) is None
    assert first(True) is None and first(False) == ("day", old_day)
    agg.recompute_dirty(lanes=queue.FAST_LANES, running=False)
    assert opened(engine, old_day) == 1.0
    assert first(False) is None  # what it queued for the running month is the other loop's


def test_a_running_windows_costly_wait_longer_the_more_they_cost() -> None:
    """At most a tenth of a core per running window: percentiles that took 20 s come due
    200 s later; cheap ones at the slower cadence; an ended window's at the slower cadence.
    A running window's objectives wait for the slower cadence too."""
    from zoneinfo import ZoneInfo

    now = utc(2026, 10, 28, 12)
    horizon = queue.Horizon(
        now=now,
        tz=ZoneInfo("UTC"),
        hours_since=utc(2026, 7, 1),
        slow=timedelta(seconds=30),
        costly_wait={"month": timedelta(seconds=200), "day": timedelta(seconds=5)},
    )
    rows = queue.follow_ups(
        [
            ("month", utc(2026, 10, 1), utc(2026, 11, 1)),
            ("day", utc(2026, 10, 28), utc(2026, 10, 29)),
            ("week", utc(2026, 10, 26), utc(2026, 11, 2)),
            ("month", utc(2026, 9, 1), utc(2026, 10, 1)),
        ],
        horizon=horizon,
        percentiles=True,
    )
    due = {(r[0], r[1].month): r[6] - now for r in rows if r[2] == "percentiles"}
    assert due == {
        ("month", 10): timedelta(seconds=200),
        ("day", 10): timedelta(seconds=30),
        ("week", 10): timedelta(seconds=30),
        ("month", 9): timedelta(seconds=30),
    }
    # objectives of an ended window are due at once, of a running one at the slower cadence
    objectives = {(r[0], r[1].month): r[6] - now for r in rows if r[2] == "point"}
    assert objectives == {
        ("month", 10): timedelta(seconds=30),
        ("day", 10): timedelta(seconds=30),
        ("week", 10): timedelta(seconds=30),
        ("month", 9): timedelta(0),
    }


def test_the_aggregator_measures_what_a_running_windows_percentiles_cost(
    engine: Engine,
) -> None:
    from shared.settings import Settings

    now = [utc(2026, 10, 6, 12, 30)]
    slow = Settings(_env_file=None, aggregator_slow_seconds=30, hour_retention_days=36500)  # type: ignore[call-arg]
    agg = aggregator(engine, slow, clock=lambda: now[0])
    store(engine, [ticket_event("P1", utc(2026, 10, 6, 9), "resolved", service="email")])
    agg.recompute_dirty(lanes=queue.LANES)
    now[0] += timedelta(seconds=31)
    agg.recompute_dirty(lanes=queue.SLOW_LANES)  # the running windows' percentiles
    waits = agg.horizon(now[0]).costly_wait
    assert {"day", "week", "month"} <= set(waits)
    # measured: ten times what the unit took (a few ms to a second here)
    assert all(timedelta(0) < w < timedelta(seconds=60) for w in waits.values())


def test_a_paced_job_takes_at_most_its_share_of_the_time() -> None:
    """A run that took t seconds makes the job skip its runs for t / share seconds."""
    import time as clock

    from services.aggregator.jobs import _paced

    runs: list[tuple[float, float]] = []  # (start, end) of each run

    def slow_run() -> None:
        started = clock.monotonic()
        clock.sleep(0.05)
        runs.append((started, clock.monotonic()))

    job = _paced(slow_run, 0.25)  # 0.05 s of work (longer on a busy machine): 4 times that off
    job()
    job()  # too soon: skipped
    assert len(runs) == 1
    started, ended = runs[0]
    due = started + (ended - started) / 0.25
    assert due - started >= 0.2
    clock.sleep(max(0.0, due - clock.monotonic()) + 0.01)
    job()
    assert len(runs) == 2 and runs[1][0] >= due


def test_the_running_windows_slower_parts_rest_together_the_past_ones_go_on(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a running window's slower parts took t s, no running window's (of any kind) start
    for t × 3 (RUNNING_SLOW_SHARE): four kinds due at once took a core for a minute. A past
    window's slower parts are not held."""
    from services.aggregator import jobs
    from shared.settings import Settings

    monkeypatch.setattr(jobs, "RUNNING_SLOW_REST_FROM", 0.0)  # this database's units are cheap
    monkeypatch.setattr(jobs, "RUNNING_SLOW_SHARE", 1e-9)  # a rest past the test's end
    now = [utc(2026, 10, 6, 12, 30)]
    slow = Settings(_env_file=None, aggregator_slow_seconds=30, hour_retention_days=36500)  # type: ignore[call-arg]
    agg = aggregator(engine, slow, clock=lambda: now[0])
    store(engine, [ticket_event("S1", utc(2026, 10, 6, 9), "resolved", service="email")])
    agg.recompute_dirty(lanes=queue.LANES)
    store(engine, [ticket_event("S0", utc(2026, 9, 2, 9), "resolved", service="email")])
    agg.recompute_dirty(lanes=queue.FAST_LANES)  # a late event: September's slower parts
    now[0] += timedelta(seconds=31)

    def slow_due() -> set[tuple[str, int]]:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT DISTINCT window_kind, window_start FROM window_queue "
                    "WHERE lane IN ('span', 'percentiles') AND due_at <= :now"
                ),
                {"now": now[0]},
            )
            return {(r.window_kind, r.window_start.month) for r in rows}

    assert {("day", 10), ("week", 10), ("month", 10), ("month", 9)} <= slow_due()
    agg._slow_rest_until = 0.0  # no rest yet (the first passes computed running ones)
    agg.recompute_dirty(lanes=queue.SLOW_LANES)
    left = slow_due()
    assert ("day", 10) not in left  # the first running window's, then the rest
    assert {("week", 10), ("month", 10)} <= left
    assert all(month == 10 for _, month in left)  # the past ones (September's) went on
    agg._slow_rest_until = 0.0  # the rest is over
    agg.recompute_dirty(lanes=queue.SLOW_LANES)
    assert ("week", 10) not in slow_due()


def test_a_running_windows_costly_part_marked_during_its_computation_waits_its_cost(
    engine: Engine,
) -> None:
    """Its row stays (it was marked again), but due after the measured wait, not at once: a
    busy week's 20 s percentiles would otherwise run back to back."""
    from zoneinfo import ZoneInfo

    now = utc(2026, 10, 7, 12)
    week = utc(2026, 10, 5)
    horizon = queue.Horizon(
        now=now,
        tz=ZoneInfo("UTC"),
        hours_since=utc(2026, 7, 1),
        slow=timedelta(seconds=30),
        costly_wait={"week": timedelta(seconds=200)},
    )
    row = ("week", week, "percentiles", utc(2026, 10, 12), "", now, now)
    with engine.begin() as conn:
        queue.enqueue(conn, [row], now)
    unit = queue.Unit("week", week, utc(2026, 10, 12))
    with engine.begin() as computing:
        assert queue.try_lock(computing, unit)
        claimed = queue.claim(computing, unit, now, queue.SLOW_LANES)
        assert [(r.kind, r.lane) for r in claimed] == [("week", "percentiles")]
        with engine.begin() as marking:  # the week's days moved again meanwhile
            queue.enqueue(marking, [row], now)
        queue.done(computing, claimed, horizon)
    with engine.connect() as conn:
        due = conn.execute(
            text(
                "SELECT due_at FROM window_queue "
                "WHERE window_kind = 'week' AND lane = 'percentiles'"
            )
        ).scalar_one()
    assert due == now + timedelta(seconds=200)
