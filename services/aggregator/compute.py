"""Recompute one window's indicator values, set-based in SQL (SPEC §5)."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, delete, text
from sqlalchemy.dialects.postgresql import insert

from services.aggregator.indicators import Indicator, all_indicators
from services.aggregator.windows import window_end
from shared.db import indicator_values

UNKNOWN = "unknown"  # dimension value of a sample that has none (kept apart from "all")


@cache
def _statement(ind: Indicator) -> Any:
    dims = ind.dimensions
    inner = ", ".join(f"coalesce({d}::text, '{UNKNOWN}') AS {d}" for d in dims)
    percentiles = (
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS p50, "
        "percentile_cont(0.9) WITHIN GROUP (ORDER BY v) AS p90"
        if ind.aggregate == "mean"
        else "NULL::float8 AS p50, NULL::float8 AS p90"
    )
    return text(
        f"""
        SELECT {", ".join(dims)}, GROUPING({", ".join(dims)}) AS grouping_mask,
               count(v) AS n, avg(v) AS mean, {percentiles}
        FROM (SELECT {inner}, v FROM ({ind.samples_sql}) AS raw) AS samples
        GROUP BY CUBE ({", ".join(dims)})
        """
    )


def _points(ind: Indicator, rows: list[Any]) -> list[dict[str, Any]]:
    dims = ind.dimensions
    out = []
    for r in rows:
        mask = r.grouping_mask
        # GROUPING() sets bit (len-1-i) when dimension i is aggregated away ("all").
        grouped = {
            d: getattr(r, d) for i, d in enumerate(dims) if not (mask >> (len(dims) - 1 - i)) & 1
        }
        n = int(r.n)
        if ind.aggregate == "count":
            value: float | None = float(n)
            if n == 0 and grouped:
                continue
        else:
            if n == 0:
                continue  # an empty window has no value, not zero
            value = float(r.mean)
        out.append(
            {
                "dimensions": grouped,
                "dim_keys": ",".join(sorted(grouped)),
                "value": value,
                "count": n,
                "p50": None if r.p50 is None else float(r.p50),
                "p90": None if r.p90 is None else float(r.p90),
            }
        )
    return out


def recompute_window(
    conn: Connection,
    kind: str,
    start: datetime,
    tz: ZoneInfo,
    indicators: list[Indicator] | None = None,
    *,
    now: datetime,
) -> int:
    """Replace every point of `indicators` for one window; returns the number of points written."""
    end = window_end(kind, start, tz)
    written = 0
    for ind in indicators if indicators is not None else all_indicators():
        rows = conn.execute(_statement(ind), {"start": start, "end": end}).all()
        points = _points(ind, rows)
        conn.execute(
            delete(indicator_values).where(
                indicator_values.c.indicator == ind.id,
                indicator_values.c.window_kind == kind,
                indicator_values.c.window_start == start,
            )
        )
        if points:
            conn.execute(
                insert(indicator_values),
                [
                    {
                        "indicator": ind.id,
                        "window_kind": kind,
                        "window_start": start,
                        "window_end": end,
                        "computed_at": now,
                        **p,
                    }
                    for p in points
                ],
            )
        written += len(points)
    return written
