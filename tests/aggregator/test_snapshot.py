"""The aggregator renders the /metrics snapshot and stores it (SPEC §8): the windows of its clock,
within the series budget, nothing written when its read fails, never an older rendering over a
newer one, and the scheduler's `exposition` job."""

from __future__ import annotations

import gzip
import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert, select, text
from sqlalchemy.engine import Engine

from services.aggregator.jobs import Aggregator
from services.aggregator.metrics import AggregatorMetrics
from services.aggregator.snapshot import Rendering, SnapshotWriter, render, store_snapshot
from services.catalog import CatalogCache
from shared.db import INDICATORS_SNAPSHOT, exposition_snapshot, indicator_drift, objective_status
from shared.settings import Settings
from tests.conftest import Running, wait_until
from tests.helpers import UTC_TZ, aggregate, october, publish, real_clock, store, ticket_event


def stored(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(exposition_snapshot)).one_or_none()


def sample(body: bytes, prefix: str) -> float:
    [line] = [ln for ln in body.decode().splitlines() if ln.startswith(prefix)]
    return float(line.rsplit(" ", 1)[1])


def opened_today(period: str) -> str:
    """The start of the sample line of the day's total of tickets opened."""
    return (
        'itsm_ticket_opened_count{assignment_group="",channel="",customer="",kind="",'
        f'period="{period}",priority="",service="",window="day"}} '
    )


def test_the_snapshot_holds_the_windows_of_the_aggregators_clock(engine: Engine) -> None:
    e = ticket_event
    # 10-05: two tickets (email, erp); 10-04: one
    store(
        engine,
        [
            e("W1", october(9), "new", service="email"),
            e("W2", october(10), "new", service="erp"),
            e("W3", october(9, day=4), "new", service="erp"),
        ],
    )
    aggregate(engine)
    snapshot = publish(engine, clock=lambda: october(12))
    body = snapshot.rendering.body
    assert sample(body, opened_today("current")) == 2.0
    assert sample(body, opened_today("previous")) == 1.0
    # the current quarter (Q4 2026) holds the three, the previous one (Q3) nothing
    quarter = opened_today("current").replace('window="day"', 'window="quarter"')
    assert sample(body, quarter) == 3.0
    previous_quarter = opened_today("previous").replace('window="day"', 'window="quarter"')
    assert sample(body, previous_quarter) == 0.0
    assert sample(body, "itsm_exposition_series_dropped ") == 0.0
    row = stored(engine)
    assert row.name == INDICATORS_SNAPSHOT
    assert gzip.decompress(row.body_gzip) == body  # stored gzipped
    lines = body.decode().splitlines()
    assert row.series == snapshot.rendering.series == sum(not ln.startswith("#") for ln in lines)
    assert row.dropped == 0
    # rendered_at is the database's wall clock, not the aggregator's October one
    assert abs(row.rendered_at - datetime.now(UTC)) < timedelta(minutes=1)


def test_objectives_come_for_both_periods_and_drift_for_the_last_complete_window(
    engine: Engine,
) -> None:
    # the clock is 10-05 12:00: the current day is 10-05, the previous (complete) one 10-04
    day = timedelta(days=1)

    def objective(start: datetime, value: float | None, status: str, samples: int | None) -> Any:
        return {
            "service": "email",
            "indicator": "incident_sla_resolution_met_ratio",
            "window_kind": "day",
            "window_start": start,
            "window_end": start + day,
            "value": value,
            "target": 0.9,
            "warning": 0.8,
            "comparator": ">=",
            "weight": 1.0,
            "status": status,
            "evaluated_at": october(12),
            "samples": samples,
        }

    def drift(start: datetime, dims: dict[str, str], score: float, drifting: bool) -> Any:
        return {
            "indicator": "csat_score",
            "window_kind": "day",
            "dimensions": dims,
            "window_start": start,
            "value": 3.0,
            "score": score,
            "baseline_mean": 4.5,
            "baseline_stddev": 0.5,
            "windows": 8,
            "drifting": drifting,
            "computed_at": october(12),
        }

    today, yesterday = october(0), october(0, day=4)
    with engine.begin() as conn:
        conn.execute(
            insert(objective_status),
            [
                objective(today, 0.5, "breached", 3),  # 1 met of 2 so far … of 3 samples
                objective(yesterday, 0.85, "warning", 40),
                objective(october(0, day=3), 0.1, "breached", 50),  # neither period: left out
            ],
        )
        conn.execute(
            insert(objective_status),
            [objective(today, None, "no_data", None) | {"indicator": "csat_score"}],
        )
        conn.execute(
            insert(indicator_drift),
            [
                drift(yesterday, {}, -3.0, True),  # csat down: drifting
                drift(yesterday, {"service": "email"}, 3.5, False),  # csat up: an improvement
                drift(yesterday, {"service": "email", "priority": "1"}, -9.0, True),  # not a series
                drift(today, {}, -7.0, True),  # a partial window's row (the old rule): never shown
            ],
        )
    body = render(engine, UTC_TZ, CatalogCache(), lambda: october(12)).body
    got = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name.startswith(("itsm_objective_", "itsm_indicator_drift"))
    }

    def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        return name, tuple(sorted(labels.items()))

    sla = {
        "service": "email",
        "customer": "",  # a service's objective (a customer's has customer, service "")
        "indicator": "incident_sla_resolution_met_ratio",
        "window": "day",
    }
    csat = {
        "service": "email",
        "customer": "",
        "indicator": "csat_score",
        "window": "day",
        "period": "current",
    }
    assert got == {
        key("itsm_objective_status", **sla, period="current"): 0.0,
        key("itsm_objective_target", **sla, period="current"): 0.9,
        key("itsm_objective_samples", **sla, period="current"): 3.0,
        key("itsm_objective_status", **sla, period="previous"): 0.5,
        key("itsm_objective_target", **sla, period="previous"): 0.9,
        key("itsm_objective_samples", **sla, period="previous"): 40.0,
        key("itsm_objective_target", **csat): 0.9,  # no data: no status, no samples
        key("itsm_indicator_drift_score", indicator="csat_score", window="day", service=""): -3.0,
        key("itsm_indicator_drifting", indicator="csat_score", window="day", service=""): 1.0,
        key("itsm_indicator_drift_score", indicator="csat_score", window="day", service="email"): (
            3.5
        ),
        key("itsm_indicator_drifting", indicator="csat_score", window="day", service="email"): 0.0,
    }


def test_the_snapshot_keeps_within_the_series_budget_most_important_first(engine: Engine) -> None:
    now = datetime.now(UTC)
    store(
        engine,
        [
            ticket_event(f"S{n}", now - timedelta(minutes=n), "new", service=f"svc{n}", priority=2)
            for n in range(5)
        ],
    )
    aggregate(engine, clock=real_clock)

    def rendering(budget: int) -> tuple[Rendering, list[str]]:
        r = render(engine, UTC_TZ, CatalogCache(), lambda: now, max_series=budget)
        return r, r.body.decode().splitlines()

    def opened(lines: list[str]) -> list[str]:
        return [ln for ln in lines if ln.startswith("itsm_ticket_opened_count{")]

    everything, lines = rendering(100_000)
    assert everything.dropped == 0
    assert "itsm_exposition_series_dropped 0.0" in lines
    assert len([ln for ln in opened(lines) if 'service="svc' in ln]) >= 5
    # the budget of 3 goes to the most important series: the totals of the day and the month
    # (current windows first); per-service series and the rest are left out, and counted
    tight, lines = rendering(3)
    assert any('period="current"' in ln and 'window="day"' in ln for ln in opened(lines))
    assert not any('service="svc1"' in ln for ln in lines)
    assert tight.dropped > 0
    assert sample(tight.body, "itsm_exposition_series_dropped ") == tight.dropped
    assert tight.series < everything.series


def test_a_failed_read_writes_nothing_and_the_stored_snapshot_stays(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    def indicator_points_away(away: bool) -> None:
        names = ("indicator_points", "indicator_points_away")
        with engine.begin() as conn:
            conn.execute(text("ALTER VIEW {} RENAME TO {}".format(*names[:: 1 if away else -1])))

    writer = SnapshotWriter(engine, UTC_TZ)
    indicator_points_away(True)
    with caplog.at_level(logging.WARNING, logger="itsm.aggregator.snapshot"):
        assert writer.publish() is None
    # nothing at all, rather than a zero for every count it could not read
    assert stored(engine) is None
    [warning] = [r for r in caplog.records if r.name == "itsm.aggregator.snapshot"]
    assert warning.stage == "read"  # type: ignore[attr-defined]
    assert "indicator_points" in warning.error  # type: ignore[attr-defined]

    indicator_points_away(False)
    first = writer.publish()
    assert first is not None
    indicator_points_away(True)
    assert writer.publish() is None
    row = stored(engine)
    assert (row.rendered_at, row.body_gzip) == (first.rendered_at, first.rendering.gzipped)
    indicator_points_away(False)


def test_an_older_rendering_never_replaces_a_newer_one(engine: Engine) -> None:
    newer = publish(engine)
    older = Rendering(b"# older\n", gzip.compress(b"# older\n"), 0, 0, 0.1)
    with engine.begin() as conn:
        store_snapshot(conn, INDICATORS_SNAPSHOT, newer.rendered_at - timedelta(seconds=5), older)
    assert stored(engine).body_gzip == newer.rendering.gzipped


def test_a_snapshot_rendered_moments_ago_is_not_rendered_again(engine: Engine) -> None:
    writer = SnapshotWriter(engine, UTC_TZ)
    first = writer.publish()
    assert first is not None
    # as another aggregator's job would: the stored one is younger than half an interval
    assert writer.publish(skip_younger_than=60) is None
    assert stored(engine).rendered_at == first.rendered_at
    again = writer.publish()
    assert again is not None and again.rendered_at > first.rendered_at
    assert stored(engine).rendered_at == again.rendered_at


def test_the_aggregator_loop_renders_the_snapshot_every_interval(
    engine: Engine, settings: Settings
) -> None:
    registry = CollectorRegistry()
    stop = threading.Event()
    agg = Aggregator(settings, engine, AggregatorMetrics(registry))
    running = Running(lambda: agg.run(stop), stop.set)
    try:
        first = wait_until(lambda: stored(engine), timeout=20, what="a snapshot").rendered_at
        # exposition_interval_seconds is 0.5 in tests: the next one follows
        wait_until(lambda: stored(engine).rendered_at > first, timeout=20, what="a second snapshot")
    finally:
        running.stop()
    runs = registry.get_sample_value("itsm_aggregator_run_seconds_count", {"job": "exposition"})
    assert runs is not None and runs >= 2


def test_the_stale_threshold_must_exceed_the_interval() -> None:
    with pytest.raises(ValueError, match="ITSM_EXPOSITION_STALE_SECONDS must exceed"):
        Settings(_env_file=None, exposition_interval_seconds=60, exposition_stale_seconds=60)  # type: ignore[call-arg]
