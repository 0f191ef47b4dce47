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

from services.aggregator.indicators import CUSTOMER, Indicator, all_indicators
from services.aggregator.windows import window_end
from shared.db import indicator_values

UNKNOWN = "unknown"  # dimension value of a sample that has none (kept apart from "all")
# Catalog settings the indicators' SQL reads, with their defaults (SPEC §5.2, §6.1): the
# first-contact window and the service → customer map behind the `customer` dimension.
DEFAULT_PARAMS: dict[str, Any] = {"fcr_seconds": 30 * 60, "svc_ids": [], "svc_customers": []}


def grouping_sets(dims: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Every combination of the declared dimensions (a CUBE) and, for each one holding
    `service`, the same with `customer` in its place: a customer is a function of the service,
    so grouping by both would only repeat the per-service points."""
    sets = [tuple(d for i, d in enumerate(dims) if mask >> i & 1) for mask in range(2 ** len(dims))]
    by_customer = [
        tuple(CUSTOMER if d == "service" else d for d in s) for s in sets if "service" in s
    ]
    return sets + by_customer


@cache
def _statement(ind: Indicator) -> Any:
    """Samples of every window in `w` (LEFT JOIN LATERAL keeps empty windows), aggregated over
    every dimension grouping (GROUPING SETS)."""
    dims = ind.all_dimensions
    sampled = ind.dimensions
    inner = "".join(f"coalesce(s.{d}::text, '{UNKNOWN}') AS {d}, " for d in sampled)
    customer_join = ""
    if CUSTOMER in dims:
        inner += f"coalesce(cm.customer, '{UNKNOWN}') AS {CUSTOMER}, "
        customer_join = (
            "LEFT JOIN unnest(CAST(:svc_ids AS text[]), CAST(:svc_customers AS text[])) "
            "AS cm(service, customer) ON cm.service = s.service::text"
        )
    dim_list = "".join(f"{d}, " for d in dims)
    grouping = f"GROUPING({', '.join(dims)})" if dims else "0"
    sets = ", ".join(f"({', '.join(('window_start', *gs))})" for gs in grouping_sets(sampled))
    percentiles = (
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS p50, "
        "percentile_cont(0.9) WITHIN GROUP (ORDER BY v) AS p90"
        if ind.is_duration
        else "NULL::float8 AS p50, NULL::float8 AS p90"
    )
    # A weighted indicator is a ratio of sums (Σv / Σw); a sum adds its samples; the others
    # average them. In numeric: float addition depends on the order rows arrive in, and a
    # replay must give identical values (SPEC §4), not values a last bit apart.
    weighted = ind.aggregate == "weighted"
    value = {
        "weighted": "(sum(v::numeric) / nullif(sum(w::numeric), 0))::float8",
        "sum": "sum(v::numeric)::float8",
    }.get(ind.aggregate, "avg(v::numeric)::float8")
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
            {customer_join}
        ) AS samples
        GROUP BY GROUPING SETS ({sets})
        """
    )


def points(ind: Indicator, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Result rows → indicator points. A window without samples stores no point at all (so what
    is stored never depends on which windows happened to be recomputed); readers present a
    missing count as 0."""
    dims = ind.all_dimensions
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
    `params` are the catalog's settings the indicators' SQL may use (e.g. `:fcr_seconds`).

    A window that has not started has no points (nothing has happened in it; an open ticket is
    not yet in tomorrow's backlog): it is computed once the clock refresh marks it current."""
    if not starts:
        return 0
    ends = {s: window_end(kind, s, tz) for s in starts}
    begun = [s for s in starts if s < now]
    written = 0
    for ind in indicators if indicators is not None else all_indicators():
        bind = {
            **DEFAULT_PARAMS,
            **(params or {}),
            **dict(ind.params),
            "starts": begun,
            "ends": [ends[s] for s in begun],
        }
        new_points = points(ind, conn.execute(_statement(ind), bind).all()) if begun else []
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
