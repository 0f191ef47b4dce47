"""Recompute indicator values for a set of windows, set-based in SQL (SPEC §5): one statement
per (indicator, window kind), however many windows are dirty."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, delete, text
from sqlalchemy.dialects.postgresql import insert

from services.aggregator.indicators import Indicator, all_indicators
from services.aggregator.windows import window_end
from shared.db import indicator_values

UNKNOWN = "unknown"
# Catalog settings the indicators' SQL reads, with their defaults (SPEC §5.2, §6.1).
DEFAULT_PARAMS: dict[str, Any] = {
    "fcr_seconds": 30 * 60
}  # dimension value of a sample that has none (kept apart from "all")


@cache
def _statement(ind: Indicator) -> Any:
    """Samples of every window in `w` (LEFT JOIN LATERAL keeps empty windows), aggregated over
    every dimension grouping (CUBE)."""
    dims = ind.dimensions
    inner = "".join(f"coalesce(s.{d}::text, '{UNKNOWN}') AS {d}, " for d in dims)
    dim_list = "".join(f"{d}, " for d in dims)
    grouping = f"GROUPING({', '.join(dims)})" if dims else "0"
    group_by = f"window_start, CUBE ({', '.join(dims)})" if dims else "window_start"
    percentiles = (
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS p50, "
        "percentile_cont(0.9) WITHIN GROUP (ORDER BY v) AS p90"
        if ind.is_duration
        else "NULL::float8 AS p50, NULL::float8 AS p90"
    )
    # A weighted indicator is a ratio of sums (Σv / Σw); the others average their samples.
    weighted = ind.aggregate == "weighted"
    value = "sum(v) / nullif(sum(w), 0)" if weighted else "avg(v)"
    return text(
        f"""
        WITH w AS (
            SELECT * FROM unnest(CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[]))
                AS w(window_start, window_end)
        )
        SELECT window_start, {dim_list}{grouping} AS grouping_mask,
               count(v) AS n, {value} AS mean, {percentiles}
        FROM (
            SELECT w.window_start, {inner}s.v{", s.w" if weighted else ""}
            FROM w LEFT JOIN LATERAL ({ind.samples_sql}) AS s ON true
        ) AS samples
        GROUP BY {group_by}
        """
    )


def points(ind: Indicator, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Result rows → indicator points. A window without samples stores no point at all (so what
    is stored never depends on which windows happened to be recomputed); readers present a
    missing count as 0."""
    dims = ind.dimensions
    out = []
    for r in rows:
        mask = r.grouping_mask
        # GROUPING() sets bit (len-1-i) when dimension i is aggregated away ("all").
        grouped = {
            d: getattr(r, d) for i, d in enumerate(dims) if not (mask >> (len(dims) - 1 - i)) & 1
        }
        n = int(r.n)
        if n == 0 or (ind.aggregate != "count" and r.mean is None):
            continue
        out.append(
            {
                "window_start": r.window_start,
                "dimensions": grouped,
                "dim_keys": ",".join(sorted(grouped)),
                "value": float(n) if ind.aggregate == "count" else float(r.mean),
                "count": n,
                "p50": None if r.p50 is None else float(r.p50),
                "p90": None if r.p90 is None else float(r.p90),
            }
        )
    return out


def recompute_windows(
    conn: Connection,
    kind: str,
    starts: list[datetime],
    tz: ZoneInfo,
    indicators: list[Indicator] | None = None,
    *,
    now: datetime,
    params: Mapping[str, Any] | None = None,
) -> int:
    """Replace every point of `indicators` for these windows of one kind; returns points.
    `params` are the catalog's settings the indicators' SQL may use (e.g. `:fcr_seconds`)."""
    if not starts:
        return 0
    ends = {s: window_end(kind, s, tz) for s in starts}
    written = 0
    for ind in indicators if indicators is not None else all_indicators():
        bind = {
            **DEFAULT_PARAMS,
            **(params or {}),
            "starts": starts,
            "ends": [ends[s] for s in starts],
        }
        rows = conn.execute(_statement(ind), bind)
        new_points = points(ind, rows.all())
        conn.execute(
            delete(indicator_values).where(
                indicator_values.c.indicator == ind.id,
                indicator_values.c.window_kind == kind,
                indicator_values.c.window_start.in_(starts),
            )
        )
        if new_points:
            conn.execute(
                insert(indicator_values),
                [
                    {
                        "indicator": ind.id,
                        "window_kind": kind,
                        "window_end": ends[p["window_start"]],
                        "computed_at": now,
                        **p,
                    }
                    for p in new_points
                ],
            )
        written += len(new_points)
    return written
