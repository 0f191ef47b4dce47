"""KPI drift (SPEC §6.4): how far a series' last complete window is from the windows before it.

Only complete windows are scored: a partial current window is far below its baseline early in
every window (a day's count at 01:00), and pro-rating it by elapsed share is noise until much of
the window has passed; hour windows give the fast signal. `drift_score` and `drifting` are pure.
`update_drift` is the shell the scheduler calls: per indicator, one query reads every series'
value in the last complete window of each kind and in the N windows before it; the scores are
upserted into `indicator_drift` under that window's start."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, text
from sqlalchemy.dialects.postgresql import insert

from services.aggregator.indicators import Indicator
from services.aggregator.indicators.custom import indicators_for
from services.catalog.model import Catalog
from shared.db import indicator_drift
from shared.indicator_ids import Direction
from shared.windows import WINDOW_KINDS, previous_start, window_start

MIN_WINDOWS = 4  # fewer previous windows give no baseline (score 0)


def baseline(previous: Sequence[float]) -> tuple[float, float] | None:
    """Mean and *population* standard deviation of the previous windows: the baseline describes
    exactly these N windows rather than estimating a wider population. None when fewer than 4."""
    n = len(previous)
    if n < MIN_WINDOWS:
        return None
    mean = math.fsum(previous) / n
    return mean, math.sqrt(math.fsum((x - mean) ** 2 for x in previous) / n)


def drift_score(previous: Sequence[float], current: float) -> float:
    """(current − mean) / stddev of the previous windows; 0 when fewer than 4 windows or the
    stddev is 0 (a flat baseline says nothing about spread)."""
    return _score(baseline(previous), current)


def _score(base: tuple[float, float] | None, current: float) -> float:
    if base is None or base[1] == 0:
        return 0.0
    mean, stddev = base
    return (current - mean) / stddev


def drifting(score: float, direction: Direction, threshold: float) -> bool:
    """Drifting when |score| ≥ threshold in the direction worse for the indicator."""
    if direction == "higher_is_better":
        return score <= -threshold
    if direction == "lower_is_better":
        return score >= threshold
    return abs(score) >= threshold


def history_starts(kind: str, current: datetime, n: int, tz: ZoneInfo) -> list[datetime]:
    """The starts of the `n` complete windows before the one starting at `current`, oldest
    first."""
    out = []
    start = current
    for _ in range(n):
        start = previous_start(kind, start, tz)
        out.append(start)
    return out[::-1]


def filled(
    history: dict[datetime, float], starts: Sequence[datetime], is_count: bool
) -> list[float]:
    """The previous values in window order. A count stores no point for an empty window, so
    from the series' first stored window on a missing window of a count is 0."""
    if not is_count:
        return [history[s] for s in starts if s in history]
    first = next((i for i, s in enumerate(starts) if s in history), len(starts))
    return [history.get(s, 0.0) for s in starts[first:]]


# --- shell ----------------------------------------------------------------------------------------

# Every series of one indicator (as /metrics exposes them: the total, one dimension, or a
# dimension with `service`) with its value in the scored window of its kind and its values in
# the windows before it, in one statement for all kinds. A count stores no point for an empty
# window, so a count series with points only before the scored window is scored too, at 0 (the
# drop to nothing is the largest drift a count can show); other series need a scored value.
_SERIES = text(
    """
    WITH w AS (
        SELECT * FROM unnest(CAST(:kinds AS text[]), CAST(:starts AS timestamptz[]),
                             CAST(:scored AS timestamptz[]))
            AS w(window_kind, window_start, scored_start)
    )
    SELECT iv.window_kind, iv.dimensions, min(w.scored_start) AS window_start,
           min(iv.value) FILTER (WHERE iv.window_start = w.scored_start) AS value,
           coalesce(array_agg(iv.window_start ORDER BY iv.window_start)
                    FILTER (WHERE iv.window_start < w.scored_start), '{}') AS h_starts,
           coalesce(array_agg(iv.value ORDER BY iv.window_start)
                    FILTER (WHERE iv.window_start < w.scored_start), '{}') AS h_values
    FROM indicator_points iv
    JOIN w ON w.window_kind = iv.window_kind AND w.window_start = iv.window_start
    WHERE iv.value IS NOT NULL AND iv.indicator = :indicator
      AND iv.dim_keys NOT LIKE '%,%,%'
      AND (iv.dim_keys NOT LIKE '%,%' OR 'service' = ANY (string_to_array(iv.dim_keys, ',')))
    GROUP BY iv.window_kind, iv.dimensions
    HAVING CAST(:is_count AS boolean) OR bool_or(iv.window_start = w.scored_start)
    """
)

_KEY = ["indicator", "window_kind", "dimensions", "window_start"]
# One aggregator scores at a time: the others skip their run instead of racing on the upsert.
# A session lock, as each indicator commits on its own (see update_drift); released at the end,
# and with the connection when the process dies.
_LOCK = text("SELECT pg_try_advisory_lock(hashtext('itsm-drift'))")
_UNLOCK = text("SELECT pg_advisory_unlock(hashtext('itsm-drift'))")


def scored_windows(
    kind: str, now: datetime, n: int, tz: ZoneInfo
) -> tuple[datetime, list[datetime]]:
    """The window drift scores for `kind` at `now` — the last complete one, never the partial
    current window (SPEC §6.4) — and the starts of the `n` windows before it, oldest first."""
    scored = previous_start(kind, window_start(kind, now, tz), tz)
    return scored, history_starts(kind, scored, n, tz)


def update_drift(conn: Connection, catalog: Catalog, tz: ZoneInfo, *, now: datetime) -> int:
    """Score every series' last complete window of each kind against the `drift_windows`
    complete windows before it; returns how many series were scored (0 when another aggregator
    is scoring right now).

    Commits as it goes, one transaction per indicator (`conn` must not be in a transaction the
    caller still needs): a transaction that holds a transaction id for the whole scoring (tens
    of seconds at scale) keeps PostgreSQL from pruning the row versions the aggregator's point
    lane leaves twice a second, and that lane's upserts slowed 3-5x behind it."""
    locked = conn.execute(_LOCK).scalar_one()
    conn.commit()
    if not locked:
        return 0
    try:
        return _score_all(conn, catalog, tz, now)
    finally:
        conn.rollback()  # whatever a failure left open, so the unlock can run
        conn.execute(_UNLOCK)
        conn.commit()


def _score_all(conn: Connection, catalog: Catalog, tz: ZoneInfo, now: datetime) -> int:
    n, threshold = catalog.settings.drift_windows, catalog.settings.drift_threshold
    history: dict[str, list[datetime]] = {}
    kinds, starts, scored_at = [], [], []
    for kind in WINDOW_KINDS:
        scored, history[kind] = scored_windows(kind, now, n, tz)
        for s in [*history[kind], scored]:
            kinds.append(kind)
            starts.append(s)
            scored_at.append(scored)
    indicators = indicators_for(conn, catalog)
    conn.commit()
    total = 0
    # One indicator at a time, each its own transaction: the series of a busy month are
    # hundreds of thousands.
    for ind in indicators:
        is_count = ind.aggregate == "count"
        params = {
            "kinds": kinds,
            "starts": starts,
            "scored": scored_at,
            "indicator": ind.id,
            "is_count": is_count,
        }
        out = [
            _scored(ind, r, history[r.window_kind], is_count, threshold, now)
            for r in conn.execute(_SERIES, params)
        ]
        if out:
            stmt = insert(indicator_drift)
            excluded = {c: stmt.excluded[c] for c in out[0] if c not in _KEY}
            conn.execute(stmt.on_conflict_do_update(index_elements=_KEY, set_=excluded), out)
        conn.commit()
        total += len(out)
    return total


def _scored(
    ind: Indicator,
    r: Any,
    starts: Sequence[datetime],
    is_count: bool,
    threshold: float,
    now: datetime,
) -> dict[str, Any]:
    previous = filled(dict(zip(r.h_starts, r.h_values, strict=True)), starts, is_count)
    value = 0.0 if r.value is None else r.value  # only a count is read without a value
    base = baseline(previous)
    sc = _score(base, value)
    return {
        "indicator": ind.id,
        "window_kind": r.window_kind,
        "dimensions": r.dimensions,
        "window_start": r.window_start,
        "value": value,
        "score": sc,
        "baseline_mean": None if base is None else base[0],
        "baseline_stddev": None if base is None else base[1],
        "windows": len(previous),
        "drifting": drifting(sc, ind.direction, threshold),
        "computed_at": now,
    }
