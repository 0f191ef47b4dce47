"""KPI drift (SPEC §6.4), hand-computed."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.engine import Engine

from services.aggregator.drift import drift_score, drifting, filled, update_drift
from services.catalog import Catalog, parse_catalog
from shared.db import indicator_drift, indicator_values
from tests.helpers import UTC_TZ, utc


# --- pure -----------------------------------------------------------------------------------------
def test_score_is_distance_from_the_baseline_in_population_stddevs() -> None:
    # mean 4.5, population stddev 0.5 (every value 0.5 from the mean) → (3 − 4.5) / 0.5 = −3
    assert drift_score([4, 4, 4, 4, 5, 5, 5, 5], 3.0) == -3.0
    assert drift_score([4, 4, 4, 4, 5, 5, 5, 5], 5.5) == 2.0


def test_fewer_than_four_windows_never_drift() -> None:
    assert drift_score([1, 2, 3], 100.0) == 0.0


def test_a_flat_baseline_scores_zero() -> None:
    assert drift_score([7, 7, 7, 7, 7], 100.0) == 0.0


@pytest.mark.parametrize(
    ("score", "direction", "expected"),
    [
        (-3.0, "higher_is_better", True),
        (3.0, "higher_is_better", False),
        (-2.9, "higher_is_better", False),
        (3.0, "lower_is_better", True),
        (-3.0, "lower_is_better", False),
        (3.0, "neutral", True),
        (-3.0, "neutral", True),
        (2.9, "neutral", False),
    ],
)
def test_drifting_only_in_the_worse_direction(score: float, direction: Any, expected: bool) -> None:
    assert drifting(score, direction, 3.0) is expected


def test_a_count_is_zero_in_empty_windows_after_its_first_point() -> None:
    days = [utc(2026, 10, d) for d in range(1, 6)]
    history = {days[1]: 4.0, days[3]: 2.0}
    assert filled(history, days, is_count=True) == [4.0, 0.0, 2.0, 0.0]
    assert filled(history, days, is_count=False) == [4.0, 2.0]


# --- on PostgreSQL --------------------------------------------------------------------------------
# The current day window is 10-09 (partial, never scored); drift scores 10-08, the last complete
# day, against 09-30 … 10-07.
NOW = utc(2026, 10, 9, 12)
SCORED = utc(2026, 10, 8)
HISTORY = [utc(2026, 9, 30) + timedelta(days=i) for i in range(8)]  # 09-30 … 10-07


def point(indicator: str, start: datetime, value: float, **dims: str) -> dict[str, Any]:
    return {
        "indicator": indicator,
        "window_kind": "day",
        "window_start": start,
        "window_end": start + timedelta(days=1),
        "dimensions": dims,
        "dim_keys": ",".join(sorted(dims)),
        "value": value,
        "count": 1,
        "computed_at": NOW,
    }


def days(
    indicator: str, history: list[float], scored: float | None, **dims: str
) -> list[dict[str, Any]]:
    """Points on the eight history days, then (unless None) on the scored day."""
    rows = [point(indicator, s, v, **dims) for s, v in zip(HISTORY, history, strict=True)]
    return rows + ([] if scored is None else [point(indicator, SCORED, scored, **dims)])


def score(engine: Engine, rows: list[dict[str, Any]], catalog: Catalog | None = None) -> int:
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(indicator_values), rows)
    with engine.connect() as conn:
        n = update_drift(conn, catalog or Catalog.default(), UTC_TZ, now=NOW)
        assert not conn.in_transaction()  # every indicator committed
    return n


def drift_rows(engine: Engine) -> dict[tuple[str, str], Any]:
    d = indicator_drift.c
    with engine.connect() as conn:
        rows = conn.execute(select(indicator_drift).where(d.window_kind == "day")).all()
    return {(r.indicator, ",".join(f"{k}={v}" for k, v in r.dimensions.items())): r for r in rows}


CSAT = [4, 4, 4, 4, 5, 5, 5, 5]  # mean 4.5, population stddev 0.5
RESOLUTION = [2, 4, 2, 4, 2, 4, 2, 4]  # mean 3, stddev 1


def test_drift_scores_the_last_complete_day_against_the_eight_before_it(engine: Engine) -> None:
    rows = days("csat_score", CSAT, 3.0)
    rows.append(point("csat_score", utc(2026, 10, 9), 1.0))  # the partial current day
    # per service: only 3 days before the scored one → no baseline
    rows += [point("csat_score", s, 4.0, service="email") for s in HISTORY[-3:]]
    rows.append(point("csat_score", SCORED, 1.0, service="email"))
    rows += days("incident_resolution_time_seconds", RESOLUTION, 6.0)
    # a day before the 8 windows does not count
    rows.append(point("incident_resolution_time_seconds", utc(2026, 9, 29), 100.0))
    # a grouping /metrics does not expose (two dimensions without service) is not scored
    rows.append(point("ticket_opened_count", SCORED, 5.0, kind="incident", priority="1"))
    assert score(engine, rows) == 3
    got = drift_rows(engine)
    assert set(got) == {
        ("csat_score", ""),
        ("csat_score", "service=email"),
        ("incident_resolution_time_seconds", ""),
    }
    assert {r.window_start for r in got.values()} == {SCORED}
    total = got[("csat_score", "")]
    # (3 − 4.5) / 0.5 = −3, csat is higher-is-better → drifting
    assert (total.value, total.score, total.baseline_mean, total.baseline_stddev) == (
        3.0,
        -3.0,
        4.5,
        0.5,
    )
    assert (total.windows, total.drifting) == (8, True)
    email = got[("csat_score", "service=email")]
    assert (email.score, email.windows, email.drifting, email.baseline_mean) == (
        0.0,
        3,
        False,
        None,
    )
    # (6 − 3) / 1 = 3 ≥ 3, lower is better → drifting
    res = got[("incident_resolution_time_seconds", "")]
    assert (res.score, res.baseline_mean, res.windows, res.drifting) == (3.0, 3.0, 8, True)


def test_a_partial_current_window_with_few_events_is_never_scored(engine: Engine) -> None:
    # 10 or 12 tickets a day (mean 11, stddev 1); 11 on the scored day → 0. The current day has
    # 1 ticket so far at noon: scored as if complete it would be (1 − 11) / 1 = −10.
    rows = days("ticket_opened_count", [10, 12, 10, 12, 10, 12, 10, 12], 11.0)
    rows.append(point("ticket_opened_count", utc(2026, 10, 9), 1.0))
    # a series whose only point is in the current day is not scored at all
    rows.append(point("ticket_opened_count", utc(2026, 10, 9), 1.0, service="new"))
    score(engine, rows)
    got = drift_rows(engine)
    assert set(got) == {("ticket_opened_count", "")}
    row = got[("ticket_opened_count", "")]
    assert (row.window_start, row.value, row.score, row.drifting) == (SCORED, 11.0, 0.0, False)


def test_an_improvement_is_not_drifting(engine: Engine) -> None:
    # csat (higher is better) up: (6 − 4.5) / 0.5 = +3; resolution time (lower is better)
    # down: (0 − 3) / 1 = −3; both as far from the baseline as the drifting ones above
    rows = days("csat_score", CSAT, 6.0) + days("incident_resolution_time_seconds", RESOLUTION, 0.0)
    score(engine, rows)
    got = drift_rows(engine)
    assert (got[("csat_score", "")].score, got[("csat_score", "")].drifting) == (3.0, False)
    res = got[("incident_resolution_time_seconds", "")]
    assert (res.score, res.drifting) == (-3.0, False)


def test_the_drift_threshold_comes_from_the_catalog(engine: Engine) -> None:
    # (3.5 − 4.5) / 0.5 = −2: drifting at a threshold of 2, not at the default 3
    rows = days("csat_score", CSAT, 3.5)
    catalog = parse_catalog("settings: {drift_threshold: 2, drift_windows: 8}\n")
    score(engine, rows, catalog)
    assert drift_rows(engine)[("csat_score", "")].drifting is True
    score(engine, [], Catalog.default())
    row = drift_rows(engine)[("csat_score", "")]
    assert (row.score, row.drifting) == (-2.0, False)


def test_the_number_of_windows_comes_from_the_catalog(engine: Engine) -> None:
    # drift_windows 4: 10-04 … 10-07 only (5, 5, 5, 5 would be flat; make them 4, 5, 4, 5):
    # mean 4.5, stddev 0.5; the 100s before them are outside the baseline
    rows = days("csat_score", [100, 100, 100, 100, 4, 5, 4, 5], 3.5)
    score(engine, rows, parse_catalog("settings: {drift_windows: 4}\n"))
    row = drift_rows(engine)[("csat_score", "")]
    assert (row.windows, row.baseline_mean, row.score) == (4, 4.5, -2.0)


def test_a_count_with_no_point_in_the_scored_window_is_scored_at_zero(engine: Engine) -> None:
    # email had 10 or 12 tickets a day, then none on 10-08 (an empty window stores no point):
    # (0 − 11) / 1 = −11; ticket_opened_count is neutral → drifting
    rows = days("ticket_opened_count", [10, 12, 10, 12, 10, 12, 10, 12], None, service="email")
    # a ratio with no point in the scored window has no value there: not scored
    rows += days("csat_score", CSAT, None, service="email")
    score(engine, rows)
    got = drift_rows(engine)
    assert set(got) == {("ticket_opened_count", "service=email")}
    row = got[("ticket_opened_count", "service=email")]
    assert (row.value, row.score, row.drifting) == (0.0, -11.0, True)


def test_drift_is_updated_in_place_when_late_events_change_the_scored_window(
    engine: Engine,
) -> None:
    score(engine, days("csat_score", CSAT, 3.0))
    iv = indicator_values.c
    with engine.begin() as conn:
        conn.execute(
            indicator_values.update()
            .where(iv.indicator == "csat_score", iv.window_start == SCORED)
            .values(value=4.5)
        )
    with engine.connect() as conn:
        update_drift(conn, Catalog.default(), UTC_TZ, now=NOW + timedelta(minutes=1))
    row = drift_rows(engine)[("csat_score", "")]
    assert (row.value, row.score, row.drifting) == (4.5, 0.0, False)


def test_one_aggregator_scores_at_a_time_and_releases_the_lock(engine: Engine) -> None:
    lock = text("SELECT pg_advisory_lock(hashtext('itsm-drift'))")
    unlock = text("SELECT pg_advisory_unlock(hashtext('itsm-drift'))")
    with engine.connect() as other:
        other.execute(lock)
        other.commit()
        assert score(engine, days("csat_score", CSAT, 3.0)) == 0  # another one is scoring
        other.execute(unlock)
        other.commit()
    with engine.connect() as conn:
        assert update_drift(conn, Catalog.default(), UTC_TZ, now=NOW) == 1
    with engine.connect() as other:  # released: another session takes it at once
        assert other.execute(text("SELECT pg_try_advisory_lock(hashtext('itsm-drift'))")).scalar()
        other.execute(unlock)
        other.commit()


def test_drift_of_the_last_complete_quarter_against_eight_quarters_before_it(
    engine: Engine,
) -> None:
    # NOW is in 2026-Q4 (partial): 2026-Q3 is scored against 2024-Q3 … 2026-Q2
    starts = [utc(2024 + (6 + 3 * i) // 12, (6 + 3 * i) % 12 + 1, 1) for i in range(10)]
    assert starts[0] == utc(2024, 7, 1) and starts[-2] == utc(2026, 7, 1)
    values = [4, 4, 4, 4, 5, 5, 5, 5, 3, 1]  # the last, 2026-Q4, is the partial one
    rows = [
        {
            **point("csat_score", s, float(v)),
            "window_kind": "quarter",
            "window_end": e,
        }
        for s, e, v in zip(starts, [*starts[1:], utc(2027, 1, 1)], values, strict=True)
    ]
    score(engine, rows)
    d = indicator_drift.c
    with engine.connect() as conn:
        got = conn.execute(select(indicator_drift).where(d.window_kind == "quarter")).one()
    # mean 4.5, stddev 0.5: (3 − 4.5) / 0.5 = −3 → drifting (higher is better)
    assert (got.indicator, got.window_start, got.score, got.windows, got.drifting) == (
        "csat_score",
        utc(2026, 7, 1),
        -3.0,
        8,
        True,
    )
