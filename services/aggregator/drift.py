"""KPI drift (SPEC §6.4): how far a series' current window is from its recent past.

`drift_score` and `drifting` are pure. `update_drift` is the shell the scheduler calls: one
query reads, for every series with a point in the current window of each kind, that point and
the previous N windows; the scores are upserted into `indicator_drift`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, text
from sqlalchemy.dialects.postgresql import insert

from services.aggregator.indicators import get
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

# Every series (as /metrics exposes them: the total, one dimension, or a dimension with
# `service`) with a value in the current window of its kind, and its values in the previous
# windows, in one statement for all kinds.
_SERIES = text(
    """
    WITH w AS (
        SELECT * FROM unnest(CAST(:kinds AS text[]), CAST(:starts AS timestamptz[]),
                             CAST(:currents AS timestamptz[]))
            AS w(window_kind, window_start, current_start)
    ),
    cur AS (
        SELECT iv.indicator, iv.window_kind, iv.dimensions, iv.window_start, iv.value
        FROM indicator_values iv
        JOIN w ON w.window_kind = iv.window_kind AND w.window_start = iv.window_start
              AND w.window_start = w.current_start
        WHERE iv.value IS NOT NULL AND iv.indicator = :indicator
          AND iv.dim_keys NOT LIKE '%,%,%'
          AND (iv.dim_keys NOT LIKE '%,%' OR 'service' = ANY (string_to_array(iv.dim_keys, ',')))
    )
    SELECT cur.indicator, cur.window_kind, cur.dimensions, cur.window_start, cur.value,
           coalesce(array_agg(h.window_start ORDER BY h.window_start)
                    FILTER (WHERE h.value IS NOT NULL), '{}') AS h_starts,
           coalesce(array_agg(h.value ORDER BY h.window_start)
                    FILTER (WHERE h.value IS NOT NULL), '{}') AS h_values
    FROM cur
    LEFT JOIN (indicator_values h
               JOIN w ON w.window_kind = h.window_kind AND w.window_start = h.window_start
                     AND w.window_start < w.current_start)
      ON h.indicator = cur.indicator AND h.window_kind = cur.window_kind
     AND h.dimensions = cur.dimensions
    GROUP BY cur.indicator, cur.window_kind, cur.dimensions, cur.window_start, cur.value
    """
)

_KEY = ["indicator", "window_kind", "dimensions", "window_start"]
# One aggregator scores at a time: the others skip their run instead of racing on the upsert.
_LOCK = text("SELECT pg_try_advisory_xact_lock(hashtext('itsm-drift'))")


def update_drift(conn: Connection, catalog: Catalog, tz: ZoneInfo, *, now: datetime) -> int:
    """Score every series' current window against its previous `drift_windows` windows;
    returns how many series were scored (0 when another aggregator is scoring right now)."""
    if not conn.execute(_LOCK).scalar_one():
        return 0
    n, threshold = catalog.settings.drift_windows, catalog.settings.drift_threshold
    history: dict[str, list[datetime]] = {}
    kinds, starts, currents = [], [], []
    for kind in WINDOW_KINDS:
        current = window_start(kind, now, tz)
        history[kind] = history_starts(kind, current, n, tz)
        for s in [*history[kind], current]:
            kinds.append(kind)
            starts.append(s)
            currents.append(current)
    # One indicator at a time: the series of a busy month are hundreds of thousands.
    ids = conn.execute(
        text(
            "SELECT DISTINCT indicator FROM indicator_values "
            "WHERE (window_kind, window_start) IN (SELECT * FROM unnest(CAST(:kinds AS text[]), "
            "CAST(:starts AS timestamptz[])))"
        ),
        {"kinds": list(WINDOW_KINDS), "starts": [window_start(k, now, tz) for k in WINDOW_KINDS]},
    ).scalars()
    scored = 0
    for indicator in sorted(ids):
        params = {"kinds": kinds, "starts": starts, "currents": currents, "indicator": indicator}
        out = [
            _scored(r, history[r.window_kind], catalog, threshold, now)
            for r in conn.execute(_SERIES, params)
        ]
        if out:
            stmt = insert(indicator_drift)
            excluded = {c: stmt.excluded[c] for c in out[0] if c not in _KEY}
            conn.execute(stmt.on_conflict_do_update(index_elements=_KEY, set_=excluded), out)
        scored += len(out)
    return scored


def _scored(
    r: Any, starts: Sequence[datetime], catalog: Catalog, threshold: float, now: datetime
) -> dict[str, Any]:
    ind = get(r.indicator)
    previous = filled(
        dict(zip(r.h_starts, r.h_values, strict=True)),
        starts,
        ind is not None and ind.aggregate == "count",
    )
    base = baseline(previous)
    sc = _score(base, r.value)
    return {
        "indicator": r.indicator,
        "window_kind": r.window_kind,
        "dimensions": r.dimensions,
        "window_start": r.window_start,
        "value": r.value,
        "score": sc,
        "baseline_mean": None if base is None else base[0],
        "baseline_stddev": None if base is None else base[1],
        "windows": len(previous),
        "drifting": drifting(sc, _direction(r.indicator, catalog), threshold),
        "computed_at": now,
    }


def _direction(indicator: str, catalog: Catalog) -> Direction:
    ind = get(indicator)
    if ind is not None:
        return ind.direction
    custom = next((m for m in catalog.measurements if m.id == indicator), None)
    return custom.direction if custom is not None else "neutral"
