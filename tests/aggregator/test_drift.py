"""KPI drift (SPEC §6.4), hand-computed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from services.aggregator.drift import drift_score, drifting, filled, update_drift
from services.catalog import Catalog
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
NOW = utc(2026, 10, 9, 12)  # the current day window is 10-09; 10-01 … 10-08 are complete


def point(indicator: str, day: int, value: float, **dims: str) -> dict[str, Any]:
    start = utc(2026, 10, day)
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


def drift_rows(engine: Engine) -> dict[tuple[str, str], Any]:
    d = indicator_drift.c
    with engine.connect() as conn:
        rows = conn.execute(select(indicator_drift).where(d.window_kind == "day")).all()
    return {(r.indicator, ",".join(f"{k}={v}" for k, v in r.dimensions.items())): r for r in rows}


def test_drift_of_the_current_day_against_eight_previous_days(engine: Engine) -> None:
    csat = [4, 4, 4, 4, 5, 5, 5, 5]  # 10-01 … 10-08
    rows = [point("csat_score", d, v) for d, v in zip(range(1, 9), csat, strict=True)]
    rows.append(point("csat_score", 9, 3.0))
    # per service: only 3 previous days → no baseline
    rows += [point("csat_score", d, 4.0, service="email") for d in (6, 7, 8)]
    rows.append(point("csat_score", 9, 1.0, service="email"))
    # a day before the 8 windows does not count: 10-01 … 10-08 are 2.0 or 4.0, 09-30 is 100
    hist = [2, 4, 2, 4, 2, 4, 2, 4]
    rows += [
        point("incident_resolution_time_seconds", d, v)
        for d, v in zip(range(1, 9), hist, strict=True)
    ]
    rows.append(point("incident_resolution_time_seconds", 9, 6.0))
    early = point("incident_resolution_time_seconds", 1, 100.0)
    rows.append({**early, "window_start": utc(2026, 9, 30), "window_end": utc(2026, 10, 1)})
    # a grouping /metrics does not expose (two dimensions without service) is not scored
    rows.append(point("ticket_opened_count", 9, 5.0, kind="incident", priority="1"))
    with engine.begin() as conn:
        conn.execute(insert(indicator_values), rows)
        update_drift(conn, Catalog.default(), UTC_TZ, now=NOW)
    got = drift_rows(engine)
    assert set(got) == {
        ("csat_score", ""),
        ("csat_score", "service=email"),
        ("incident_resolution_time_seconds", ""),
    }
    total = got[("csat_score", "")]
    # mean 4.5, stddev 0.5: (3 − 4.5) / 0.5 = −3, csat is higher-is-better → drifting
    assert (total.score, total.baseline_mean, total.baseline_stddev, total.windows) == (
        -3.0,
        4.5,
        0.5,
        8,
    )
    assert total.drifting is True
    email = got[("csat_score", "service=email")]
    assert (email.score, email.windows, email.drifting, email.baseline_mean) == (
        0.0,
        3,
        False,
        None,
    )
    # 2, 4, … : mean 3, stddev 1; (6 − 3) / 1 = 3 ≥ 3, lower is better → drifting
    res = got[("incident_resolution_time_seconds", "")]
    assert (res.score, res.baseline_mean, res.windows, res.drifting) == (3.0, 3.0, 8, True)


def test_drift_is_updated_in_place_as_the_current_window_changes(engine: Engine) -> None:
    rows = [
        point("csat_score", d, v)
        for d, v in zip(range(1, 9), [4, 4, 4, 4, 5, 5, 5, 5], strict=True)
    ]
    rows.append(point("csat_score", 9, 3.0))
    with engine.begin() as conn:
        conn.execute(insert(indicator_values), rows)
        update_drift(conn, Catalog.default(), UTC_TZ, now=NOW)
    iv = indicator_values.c
    with engine.begin() as conn:
        conn.execute(
            indicator_values.update()
            .where(iv.indicator == "csat_score", iv.window_start == utc(2026, 10, 9))
            .values(value=4.5)
        )
        update_drift(conn, Catalog.default(), UTC_TZ, now=NOW + timedelta(minutes=1))
    row = drift_rows(engine)[("csat_score", "")]
    assert (row.value, row.score, row.drifting) == (4.5, 0.0, False)


def test_drift_of_the_current_quarter_against_eight_previous_quarters(engine: Engine) -> None:
    # quarters 2024-Q4 … 2026-Q3 complete, 2026-Q4 the current one (NOW is in October 2026)
    starts = [utc(2024 + (9 + 3 * i) // 12, (9 + 3 * i) % 12 + 1, 1) for i in range(9)]
    assert starts[0] == utc(2024, 10, 1) and starts[-1] == utc(2026, 10, 1)
    values = [4, 4, 4, 4, 5, 5, 5, 5, 3]
    rows = [
        {
            **point("csat_score", 1, float(v)),
            "window_kind": "quarter",
            "window_start": s,
            "window_end": e,
        }
        for s, e, v in zip(starts, [*starts[1:], utc(2027, 1, 1)], values, strict=True)
    ]
    with engine.begin() as conn:
        conn.execute(insert(indicator_values), rows)
        update_drift(conn, Catalog.default(), UTC_TZ, now=NOW)
        d = indicator_drift.c
        got = conn.execute(select(indicator_drift).where(d.window_kind == "quarter")).one()
    # mean 4.5, stddev 0.5: (3 − 4.5) / 0.5 = −3 → drifting (higher is better)
    assert (got.indicator, got.window_start, got.score, got.windows, got.drifting) == (
        "csat_score",
        utc(2026, 10, 1),
        -3.0,
        8,
        True,
    )
