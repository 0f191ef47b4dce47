"""Pending differences (issue 10): what the point lane's passes changed the running windows'
points by, appended rather than added in place, and the fold that adds them up.

The running day's, week's, month's and quarter's points are the same rows pass after pass:
updated in place twice a second, their row versions piled up while any transaction stayed open
and every pass after walked them. So a pass appends each difference once, as one row naming the
windows it adds to (its day, week, month and quarter; no day when the day itself was written
whole), and `fold` adds them to `indicator_values` every few seconds (the aggregator's `fold`
job). Readers read `indicator_points` (migration 0017): a point plus the differences placed in
it, so a fold changes no point anyone sees. Whatever replaces a point of a day or longer outright
folds first, under the same lock (`fold(wait=True)`), so that no difference is added to what
replaced it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, text

from shared.windows import MERGED_KINDS

# The windows a difference is placed in.
KINDS = ("day", *MERGED_KINDS)

# Taken by the fold (trying, when it is the `fold` job) and by whatever replaces points of a day
# or longer outright (waiting), so that neither sees the other's half.
FOLD_LOCK = "hashtext('itsm-fold')"

# The value of a merged point from its count and exact sums alone, for the indicators merge.py
# adds up (count, mean, ratio, weighted: `sum` is only ever a measurement's, which is not
# merged).
MERGED_VALUE = (
    "CASE WHEN {sw} IS NOT NULL THEN ({sv} / nullif({sw}, 0))::float8 "
    "WHEN {sv} IS NOT NULL THEN ({sv} / nullif({n}, 0))::float8 ELSE {n}::float8 END"
)

# (the start of a recomputed hour or day, the kind, start and end of a window containing it)
Parent = tuple[datetime, str, datetime, datetime]

_WINDOW_COLUMNS = ", ".join(f"{kind}_start, {kind}_end" for kind in KINDS)

# The transaction's `deltas` (merge.py), each once, with the windows of its hour or day.
_APPEND = f"""
    INSERT INTO indicator_pending (indicator, dimensions, dim_keys, count, sum_v, sum_w,
                                   {_WINDOW_COLUMNS})
    SELECT d.indicator, d.dimensions, d.dim_keys, d.count, d.sum_v, d.sum_w, {_WINDOW_COLUMNS}
    FROM deltas d JOIN unnest(
        CAST(:keys AS timestamptz[]),
        {
    ", ".join(
        f"CAST(:{k}_starts AS timestamptz[]), CAST(:{k}_ends AS timestamptz[])" for k in KINDS
    )
}
    ) AS p(key_start, {_WINDOW_COLUMNS}) ON p.key_start = d.key_start
    WHERE d.count <> 0 OR d.sum_v <> 0 OR d.sum_w <> 0
"""

ADDING = f"""
    ON CONFLICT (indicator, window_kind, window_start, dimensions) DO UPDATE SET
        count = iv.count + excluded.count,
        sum_v = iv.sum_v + excluded.sum_v,
        sum_w = iv.sum_w + excluded.sum_w,
        value = {
    MERGED_VALUE.format(
        n="(iv.count + excluded.count)",
        sv="(iv.sum_v + excluded.sum_v)",
        sw="(iv.sum_w + excluded.sum_w)",
    )
},
        computed_at = excluded.computed_at
    RETURNING iv.indicator, iv.window_kind, iv.window_start, iv.dimensions, iv.count
"""

_PLACED = " UNION ALL ".join(
    f"SELECT indicator, '{kind}' AS window_kind, {kind}_start AS window_start, "
    f"{kind}_end AS window_end, dimensions, dim_keys, count, sum_v, sum_w FROM taken"
    + (f" WHERE {kind}_start IS NOT NULL" if kind == "day" else "")
    for kind in KINDS
)

# Every pending difference this transaction sees, taken at once (rows appended meanwhile wait
# for the next fold), placed in its windows and added to their points in key order (the order
# every writer of points of a day or longer takes them in); returns how many were folded and
# the points brought to a count of 0.
_FOLD = f"""
    WITH taken AS (
        DELETE FROM indicator_pending RETURNING *
    ), folded AS (
        INSERT INTO indicator_values AS iv (indicator, window_kind, window_start, dimensions,
            window_end, dim_keys, count, sum_v, sum_w, value, computed_at)
        SELECT indicator, window_kind, window_start, dimensions, window_end, dim_keys, n, sv, sw,
               {MERGED_VALUE.format(n="n", sv="sv", sw="sw")}, :now
        FROM (
            SELECT indicator, window_kind, window_start, dimensions, max(window_end) AS window_end,
                   dim_keys, sum(count) AS n, sum(sum_v) AS sv, sum(sum_w) AS sw
            FROM ({_PLACED}) AS placed
            -- differences adding up to nothing still touch their point: one left with a
            -- count of 0 (a percentiles' row, compute.apply_percentiles) is then deleted
            GROUP BY indicator, window_kind, window_start, dimensions, dim_keys
        ) AS summed
        ORDER BY indicator, window_kind, window_start, dimensions
        {ADDING}
    )
    SELECT (SELECT count(*) FROM taken) AS taken,
           array_agg(indicator) FILTER (WHERE count = 0) AS ids,
           array_agg(window_kind) FILTER (WHERE count = 0) AS kinds,
           array_agg(window_start) FILTER (WHERE count = 0) AS starts,
           array_agg(dimensions::text) FILTER (WHERE count = 0) AS dims
    FROM folded
"""

# A grouping whose last sample left the window has no point any more: the rows the differences
# brought to a count of 0, as the statement adding them returned them (a handful), by key.
_EMPTIED = """
    DELETE FROM indicator_values iv
    USING unnest(CAST(:ids AS text[]), CAST(:kinds AS text[]), CAST(:starts AS timestamptz[]),
                 CAST(:dims AS jsonb[])) AS e(indicator, kind, start, dims)
    WHERE iv.indicator = e.indicator AND iv.window_kind = e.kind AND iv.window_start = e.start
      AND iv.dimensions = e.dims AND iv.count = 0
"""


def append(conn: Connection, parents: Sequence[Parent]) -> None:
    """Append the differences in `deltas` (merge.py), each once with the windows its hour or
    day lies in (`parents` of a day or longer: a week, month and quarter for every key, a day
    for those whose day is not written whole)."""
    windows: dict[datetime, dict[str, tuple[datetime, datetime]]] = {}
    for key, kind, start, end in parents:
        if kind in KINDS:
            windows.setdefault(key, {})[kind] = (start, end)
    if not windows:
        return
    keys = sorted(windows)
    assert all(set(MERGED_KINDS) <= set(windows[k]) for k in keys), "a week, month and quarter"
    params: dict[str, list[datetime | None]] = {"keys": list(keys)}
    for kind in KINDS:
        params[f"{kind}_starts"] = [windows[k].get(kind, (None, None))[0] for k in keys]
        params[f"{kind}_ends"] = [windows[k].get(kind, (None, None))[1] for k in keys]
    conn.execute(text(_APPEND), params)


def fold(conn: Connection, *, now: datetime, wait: bool = False) -> int | None:
    """Add the pending differences to their points and forget them, in the caller's
    transaction; returns how many were folded. The `fold` job tries the lock and gets None when
    another transaction folds or replaces points now (the next fold takes them); whatever is
    about to replace points waits for it (`wait`), and holds it to the end of its transaction."""
    if wait:
        conn.execute(text(f"SELECT pg_advisory_xact_lock({FOLD_LOCK})"))
    elif not conn.execute(text(f"SELECT pg_try_advisory_xact_lock({FOLD_LOCK})")).scalar_one():
        return None
    r = conn.execute(text(_FOLD), {"now": now}).one()
    if r.ids:
        delete_emptied(conn, list(zip(r.ids, r.kinds, r.starts, r.dims, strict=True)))
    return int(r.taken)


def delete_emptied(conn: Connection, points: Sequence[tuple[str, str, datetime, str]]) -> None:
    """Delete these points (indicator, kind, start, dimensions as JSON text) if their count is
    0: differences took their last sample away."""
    if points:
        conn.execute(
            text(_EMPTIED),
            {
                "ids": [p[0] for p in points],
                "kinds": [p[1] for p in points],
                "starts": [p[2] for p in points],
                "dims": [p[3] for p in points],
            },
        )
