"""Weeks and months add up from their days, days from their hours (issue 10): a new event costs
the recompute of its hour, not of its month.

For the indicators placed by an instant (`Indicator.mergeable`), a window's samples are the
samples of its days, so its count and exact sums (`sum_v`, `sum_w`, numeric) are the sums of
its days' and its value follows from them (pending.MERGED_VALUE). A recomputed hour or day is
compared with what it was, and the difference is added to every window containing it, in the
same transaction: the invariant "a window's sums = the sums of its parts" holds after every
commit, and a replay in any order ends in the same numbers. Percentiles do not add up: those of
merged windows are recomputed from the rows on a slower cadence (the `percentiles` lane).

The differences of a day, week, month or quarter are appended to `indicator_pending`, once each
with the windows they add to, rather than added in place, and folded every few seconds
(pending.py); readers read `indicator_points`, a point plus its pending differences, so a fold
changes no point. Whatever replaces a point of a day or longer outright folds first.

The recent days keep every hour's points at the day's groupings (`indicator_partials`, all the
hours of a day or none, `partial_days`): their hours are recomputed alone. An older day is
recomputed whole, against its stored points.

Every function reads the points the caller staged in `staged_points` (compute.stage_points)
for the given indicators and windows, and empties it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, text

from services.aggregator import pending
from services.aggregator.compute import delete_points
from services.aggregator.indicators import Indicator
from services.aggregator.pending import ADDING, MERGED_VALUE, Parent

_DELTAS = """
    CREATE TEMP TABLE IF NOT EXISTS deltas (
        indicator text, key_start timestamptz, dimensions jsonb, dim_keys text, count bigint,
        sum_v numeric, sum_w numeric
    ) ON COMMIT DROP
"""

# What each recomputed window's points changed by: new (staged) minus old.
_DIFF = """
    INSERT INTO deltas
    SELECT indicator, window_start, dimensions, dim_keys, sum(count), sum(sum_v), sum(sum_w)
    FROM (
        SELECT indicator, window_start, dimensions, dim_keys, count, sum_v, sum_w
        FROM {new}
        UNION ALL
        SELECT indicator, window_start, dimensions, dim_keys, -count, -sum_v, -sum_w
        FROM {old}
        WHERE indicator = ANY(:indicators) AND window_start = ANY(:starts) {old_filter}
    ) AS d
    GROUP BY indicator, window_start, dimensions, dim_keys
    HAVING sum(count) <> 0 OR sum(sum_v) <> 0 OR sum(sum_w) <> 0
"""

_PARENTS = """
    unnest(CAST(:keys AS timestamptz[]), CAST(:kinds AS text[]),
           CAST(:pstarts AS timestamptz[]), CAST(:pends AS timestamptz[]))
        AS p(key_start, kind, start, end_)
"""

# An hour's own point (of the groupings an hour stores) takes its differences in place: a few
# hundred rows, in a fixed order (two aggregators adding to the same hour lock its rows in the
# same order).
_APPLY = f"""
    WITH applied AS (
    INSERT INTO indicator_values AS iv (indicator, window_kind, window_start, dimensions,
        window_end, dim_keys, count, sum_v, sum_w, value, computed_at)
    SELECT indicator, kind, start, dimensions, end_, dim_keys, n, sv, sw,
           {MERGED_VALUE.format(n="n", sv="sv", sw="sw")}, :now
    FROM (
        SELECT d.indicator, p.kind, p.start, d.dimensions, p.end_, d.dim_keys,
               sum(d.count) AS n, sum(d.sum_v) AS sv, sum(d.sum_w) AS sw
        FROM deltas d JOIN {_PARENTS} ON p.key_start = d.key_start
        WHERE p.kind = 'hour' AND (d.indicator, d.dim_keys) IN (
            SELECT * FROM unnest(CAST(:kept_ids AS text[]), CAST(:kept_keys AS text[])))
        GROUP BY d.indicator, p.kind, p.start, p.end_, d.dimensions, d.dim_keys
    ) AS changed
    ORDER BY indicator, kind, start, dimensions
    {ADDING}
    )
    SELECT indicator, window_kind, window_start, dimensions::text FROM applied WHERE count = 0
"""


_POINT_COLUMNS = "indicator, dimensions, dim_keys, count, sum_v, sum_w"


def start_deltas(conn: Connection) -> None:
    """The transaction's `deltas` (indicator, key_start: an hour, dimensions, dim_keys, count,
    sum_v, sum_w), for differences computed elsewhere (changes.py) and added by `add_deltas`."""
    conn.execute(text(_DELTAS))


# The differences added to the hours' partials, in key order; what they bring to 0 is returned.
_ADD_PARTIALS = """
    WITH added AS (
    INSERT INTO indicator_partials AS ip (indicator, window_start, dimensions, dim_keys, count,
                                          sum_v, sum_w)
    SELECT indicator, key_start, dimensions, dim_keys, count, sum_v, sum_w FROM deltas
    ORDER BY indicator, key_start, dimensions
    ON CONFLICT (indicator, window_start, dimensions) DO UPDATE SET
        count = ip.count + excluded.count,
        sum_v = ip.sum_v + excluded.sum_v,
        sum_w = ip.sum_w + excluded.sum_w
    RETURNING ip.indicator, ip.window_start, ip.dimensions, ip.count
    )
    SELECT indicator, window_start, dimensions::text FROM added WHERE count = 0
"""

_EMPTIED_PARTIALS = """
    DELETE FROM indicator_partials ip
    USING unnest(CAST(:ids AS text[]), CAST(:starts AS timestamptz[]), CAST(:dims AS jsonb[]))
        AS e(indicator, start, dims)
    WHERE ip.indicator = e.indicator AND ip.window_start = e.start AND ip.dimensions = e.dims
      AND ip.count = 0
"""


def add_deltas(
    conn: Connection,
    parents: Sequence[Parent],
    hour_kept: Sequence[tuple[str, str]],
    *,
    now: datetime,
) -> None:
    """Add the differences in `deltas` (of hours with partials) to the hours' partials and to
    every window containing them (`parents`: an hour's own point among them when it is kept, at
    the groupings `hour_kept`)."""
    emptied = conn.execute(text(_ADD_PARTIALS)).all()
    if emptied:
        conn.execute(
            text(_EMPTIED_PARTIALS),
            {
                "ids": [r[0] for r in emptied],
                "starts": [r[1] for r in emptied],
                "dims": [r[2] for r in emptied],
            },
        )
    _apply(conn, parents, now, hour_kept)


def merge_hours(
    conn: Connection,
    indicators: Sequence[Indicator],
    hours: Sequence[datetime],
    parents: Sequence[Parent],
    *,
    now: datetime,
) -> None:
    """The staged hours have partials: replace them, and add each hour's difference to its
    day, week and month."""
    ids = [i.id for i in indicators]
    conn.execute(text(_DELTAS))
    conn.execute(
        text(_DIFF.format(new="staged_points", old="indicator_partials", old_filter="")),
        {"indicators": ids, "starts": list(hours)},
    )
    _replace_partials(conn, ids, hours)
    _apply(conn, parents, now)


def replace_days(
    conn: Connection,
    indicators: Sequence[Indicator],
    days: Sequence[tuple[datetime, datetime]],
    parents: Sequence[Parent],
    *,
    now: datetime,
    hours_of: Sequence[tuple[datetime, datetime]] = (),
) -> None:
    """Replace whole days' points and add each day's difference to its week and month.

    The staged points are the days' own (from the rows, exact percentiles included), or, with
    `hours_of` (hour start, its day's start), every hour of those days, which then become the
    days' partials and add up to them (the days' percentiles come with the next `percentiles`
    run)."""
    ids = [i.id for i in indicators]
    starts = [s for s, _ in days]
    conn.execute(text(_DELTAS))
    new = "staged_points"
    if hours_of:
        conn.execute(
            text(
                """
                CREATE TEMP TABLE IF NOT EXISTS day_points ON COMMIT DROP AS
                SELECT * FROM staged_points WITH NO DATA
                """
            )
        )
        conn.execute(
            text(
                f"""
                INSERT INTO day_points (window_start, window_end, {_POINT_COLUMNS}, value)
                SELECT d.day, d.day_end, s.indicator, s.dimensions, s.dim_keys, sum(s.count),
                       sum(s.sum_v), sum(s.sum_w),
                       {MERGED_VALUE.format(n="sum(s.count)", sv="sum(s.sum_v)", sw="sum(s.sum_w)")}
                FROM staged_points s
                JOIN unnest(CAST(:hours AS timestamptz[]), CAST(:days AS timestamptz[]))
                    AS h(hour, day) ON h.hour = s.window_start
                JOIN unnest(CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[]))
                    AS d(day, day_end) ON d.day = h.day
                GROUP BY d.day, d.day_end, s.indicator, s.dimensions, s.dim_keys
                """
            ),
            {
                "hours": [h for h, _ in hours_of],
                "days": [d for _, d in hours_of],
                "starts": starts,
                "ends": [e for _, e in days],
            },
        )
        new = "day_points"
    conn.execute(
        text(_DIFF.format(new=new, old="indicator_points", old_filter="AND window_kind = 'day'")),
        {"indicators": ids, "starts": starts},
    )
    delete_points(conn, indicators, "day", starts, now=now)
    conn.execute(
        text(
            f"""
            INSERT INTO indicator_values (window_kind, window_start, window_end, {_POINT_COLUMNS},
                                          value, p50, p90, computed_at)
            SELECT 'day', window_start, window_end, {_POINT_COLUMNS}, value, p50, p90, :now
            FROM {new}
            """
        ),
        {"now": now},
    )
    if hours_of:
        _replace_partials(conn, ids, [h for h, _ in hours_of])
        conn.execute(
            text(
                "INSERT INTO partial_days (day_start) SELECT unnest(CAST(:days AS timestamptz[])) "
                "ON CONFLICT DO NOTHING"
            ),
            {"days": starts},
        )
        conn.execute(text("TRUNCATE day_points"))
    _apply(conn, parents, now)


def write_hours(
    conn: Connection,
    indicators: Sequence[Indicator],
    hours: Sequence[datetime],
    stored: Sequence[tuple[str, str]],
    *,
    now: datetime,
) -> None:
    """Store the staged hours' points of the groupings an hour keeps (`stored`: indicator,
    dim_keys), in place of their old ones."""
    if not hours:
        return
    ids = [i.id for i in indicators]
    conn.execute(
        text(
            "DELETE FROM indicator_values WHERE indicator = ANY(:indicators) "
            "AND window_kind = 'hour' AND window_start = ANY(:hours)"
        ),
        {"indicators": ids, "hours": list(hours)},
    )
    conn.execute(
        text(
            f"""
            INSERT INTO indicator_values (window_kind, window_start, window_end, {_POINT_COLUMNS},
                                          value, p50, p90, computed_at)
            SELECT 'hour', s.window_start, s.window_end, s.indicator, s.dimensions, s.dim_keys,
                   s.count, s.sum_v, s.sum_w, s.value, s.p50, s.p90, :now
            FROM staged_points s
            JOIN unnest(CAST(:kept_ids AS text[]), CAST(:kept_keys AS text[]))
                AS k(indicator, dim_keys) USING (indicator, dim_keys)
            WHERE s.window_start = ANY(:hours) AND s.value IS NOT NULL
            """
        ),
        {
            "hours": list(hours),
            "kept_ids": [i for i, _ in stored],
            "kept_keys": [k for _, k in stored],
            "now": now,
        },
    )


def clear_staged(conn: Connection) -> None:
    conn.execute(text("TRUNCATE staged_points"))


def _replace_partials(conn: Connection, ids: list[str], hours: Sequence[datetime]) -> None:
    conn.execute(
        text(
            "DELETE FROM indicator_partials WHERE indicator = ANY(:indicators) "
            "AND window_start = ANY(:hours)"
        ),
        {"indicators": ids, "hours": list(hours)},
    )
    conn.execute(
        text(
            f"""
            INSERT INTO indicator_partials (window_start, {_POINT_COLUMNS})
            SELECT window_start, {_POINT_COLUMNS} FROM staged_points
            WHERE window_start = ANY(:hours)
            """
        ),
        {"hours": list(hours)},
    )


def _apply(
    conn: Connection,
    parents: Sequence[Parent],
    now: datetime,
    hour_kept: Sequence[tuple[str, str]] = (),
) -> None:
    """Add the differences to their parents: appended as pending for a day or longer, in place
    for an `hour` parent (only the groupings `hour_kept`, indicator and dim_keys, an hour
    stores)."""
    pending.append(conn, parents)
    hours = [p for p in parents if p[1] == "hour"]
    if hour_kept and hours:
        params = {
            "keys": [k for k, *_ in hours],
            "kinds": [k for _, k, _, _ in hours],
            "pstarts": [s for *_, s, _ in hours],
            "pends": [e for *_, e in hours],
            "kept_ids": [i for i, _ in hour_kept],
            "kept_keys": [k for _, k in hour_kept],
            "now": now,
        }
        emptied = conn.execute(text(_APPLY), params).all()
        pending.delete_emptied(conn, [tuple(r) for r in emptied])
    conn.execute(text("TRUNCATE deltas"))
