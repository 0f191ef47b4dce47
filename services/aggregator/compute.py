"""Recompute indicator values for a set of windows, set-based in SQL (SPEC §5): one statement
per plan (an indicator, or indicators over the same rows) and window kind, however many windows
are dirty; one statement writes all the points."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, text

from services.aggregator.indicators import CUSTOMER, Indicator, all_indicators
from shared.db import rows_json
from shared.windows import window_end

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


Plan = tuple[Indicator, ...]


def plans(indicators: Sequence[Indicator]) -> list[Plan]:
    """Indicators grouped into statements: those taking one sample per row of the same rows,
    with the same dimensions, share one (one scan and one GROUPING SETS pass for all of them,
    instead of one each); every other indicator has its own."""
    shared: dict[tuple[str, tuple[str, ...]], list[Indicator]] = {}
    alone: list[Plan] = []
    for ind in indicators:
        if (
            ind.source
            and ind.aggregate != "weighted"
            and not ind.params
            and not ind.repeated_per_service  # its sample counts come with its own query
        ):
            shared.setdefault((ind.source, ind.dimensions), []).append(ind)
        else:
            alone.append((ind,))
    return [tuple(group) for group in shared.values()] + alone


def _aggregates(ind: Indicator, j: int) -> str:
    """The aggregate columns of the plan's j-th indicator over its samples `v{j}` (`w{j}`)."""
    if ind.repeated_per_service:
        return _once_per_entity(ind)
    v, w = f"v{j}", f"w{j}"
    # A weighted indicator is a ratio of sums (Σv / Σw); a sum adds its samples; a mean or a
    # ratio averages them; a count needs only count(). Sums of fractions in numeric: float
    # addition depends on the order rows arrive in, and a replay must give identical values
    # (SPEC §4), not values a last bit apart. A ratio's samples are 0 or 1, whose float sums
    # are exact, so it keeps the float average (numeric costs about three times as much).
    value = {
        "weighted": f"(sum({v}::numeric) / nullif(sum({w}::numeric), 0))::float8",
        "sum": f"sum({v}::numeric)::float8",
        "mean": f"avg({v}::numeric)::float8",
        "count": "NULL::float8",
    }.get(ind.aggregate, f"avg({v})")
    percentiles = (
        f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {v}), "
        f"percentile_cont(0.9) WITHIN GROUP (ORDER BY {v})"
        if ind.is_duration
        else "NULL::float8, NULL::float8"
    )
    return f"count({v}), {value}, {percentiles}"


def _once_per_entity(ind: Indicator) -> str:
    """count and Σv/Σw (w = 1 for a ratio) of an indicator whose samples repeat an entity once
    per service (`repeated_per_service`): per service as they are; per customer each sample
    weighs 1/k (k: the entity's samples in that customer's services), overall 1/k of all its
    samples."""
    if ind.aggregate not in ("weighted", "ratio") or ind.is_duration:
        raise ValueError(f"{ind.id}: repeated_per_service is for ratios")
    by_service = "GROUPING(service) = 0"
    by_customer = f"GROUPING({CUSTOMER}) = 0"

    def weighed(expr: str) -> str:
        return (
            f"CASE WHEN {by_service} THEN sum({expr}::numeric) "
            f"WHEN {by_customer} THEN sum({expr}::numeric / k_customer) "
            f"ELSE sum({expr}::numeric / k_all) END"
        )

    count = f"round({weighed('(v0 IS NOT NULL)::int')})::bigint"
    w = "w0" if ind.aggregate == "weighted" else "(v0 IS NOT NULL)::int"
    value = f"({weighed('v0')} / nullif({weighed(w)}, 0))::float8"
    return f"{count}, {value}, NULL::float8, NULL::float8"


@cache
def _statement(plan: Plan) -> Any:
    """Samples of every window in `w` (LEFT JOIN LATERAL keeps empty windows), aggregated over
    every dimension grouping (GROUPING SETS); per indicator of the plan, four columns: count,
    value, p50, p90."""
    first = plan[0]
    dims = first.all_dimensions
    sampled = first.dimensions
    inner = "".join(f"coalesce(s.{d}::text, '{UNKNOWN}') AS {d}, " for d in sampled)
    customer_join = ""
    if CUSTOMER in dims:
        inner += f"coalesce(cm.customer, '{UNKNOWN}') AS {CUSTOMER}, "
        customer_join = (
            "LEFT JOIN unnest(CAST(:svc_ids AS text[]), CAST(:svc_customers AS text[])) "
            "AS cm(service, customer) ON cm.service = s.service::text"
        )
    if len(plan) == 1:  # the indicator's own query, with columns v (and w)
        samples_sql = first.samples_sql
        columns = ["s.v AS v0", *(["s.w AS w0"] if first.aggregate == "weighted" else [])]
        if first.repeated_per_service:  # how many samples each entity has, overall and per
            entity = f"w.window_start, s.{first.repeated_per_service}"  # customer
            columns += [
                f"count(*) OVER (PARTITION BY {entity}) AS k_all",
                f"count(*) OVER (PARTITION BY {entity}, cm.customer) AS k_customer",
            ]
    else:
        exprs = [f"{ind.v} AS v{j}" for j, ind in enumerate(plan)]
        samples_sql = f"SELECT {', '.join([*sampled, *exprs])} {first.source}"
        columns = [f"s.v{j}" for j in range(len(plan))]
    dim_list = "".join(f"{d}, " for d in dims)
    grouping = f"GROUPING({', '.join(dims)})" if dims else "0"
    sets = ", ".join(f"({', '.join(('window_start', *gs))})" for gs in grouping_sets(sampled))
    aggregates = ", ".join(_aggregates(ind, j) for j, ind in enumerate(plan))
    return text(
        f"""
        WITH w AS (
            SELECT * FROM unnest(CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[]))
                AS w(window_start, window_end)
        )
        SELECT window_start, {dim_list}{grouping} AS grouping_mask, {aggregates}
        FROM (
            SELECT w.window_start, {inner}{", ".join(columns)}
            FROM w LEFT JOIN LATERAL ({samples_sql}) AS s ON true
            {customer_join}
        ) AS samples
        GROUP BY GROUPING SETS ({sets})
        """
    )


def points(plan: Plan, rows: Sequence[Any]) -> dict[str, list[dict[str, Any]]]:
    """Result rows → each indicator's points. A window without samples stores no point at all
    (so what is stored never depends on which windows happened to be recomputed); readers
    present a missing count as 0."""
    dims = plan[0].all_dimensions
    width = 3 + len(dims)  # window_start, the dimensions, grouping_mask; then 4 per indicator
    out: dict[str, list[dict[str, Any]]] = {ind.id: [] for ind in plan}
    for r in rows:
        mask = r.grouping_mask
        # GROUPING() sets bit (len-1-i) when dimension i is aggregated away ("all").
        grouped = {d: r[1 + i] for i, d in enumerate(dims) if not (mask >> (len(dims) - 1 - i)) & 1}
        dim_keys = ",".join(sorted(grouped))
        for j, ind in enumerate(plan):
            n, mean, p50, p90 = r[width - 1 + 4 * j : width + 3 + 4 * j]
            if n == 0 or (ind.aggregate != "count" and mean is None):
                continue
            out[ind.id].append(
                {
                    "window_start": r.window_start,
                    "dimensions": grouped,
                    "dim_keys": dim_keys,
                    "value": float(n) if ind.aggregate == "count" else float(mean),
                    "count": int(n),
                    "p50": None if p50 is None else float(p50),
                    "p90": None if p90 is None else float(p90),
                }
            )
    return out


_DELETE = text(
    """
    DELETE FROM indicator_values
    WHERE indicator = ANY(:indicators) AND window_kind = :kind AND window_start = ANY(:starts)
    """
)
# All points of a pass in one statement: PostgreSQL maps the JSON rows onto the table's types.
_INSERT = text(
    """
    INSERT INTO indicator_values (indicator, window_kind, window_start, dimensions, window_end,
                                  dim_keys, value, count, p50, p90, computed_at)
    SELECT indicator, :kind, window_start, dimensions, window_end, dim_keys, value, count, p50,
           p90, :now
    FROM jsonb_to_recordset(CAST(:points AS jsonb)) AS p(
        indicator text, window_start timestamptz, dimensions jsonb, window_end timestamptz,
        dim_keys text, value float8, count bigint, p50 float8, p90 float8)
    """
)


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
    inds = indicators if indicators is not None else all_indicators()
    ends = {s: window_end(kind, s, tz) for s in starts}
    begun = [s for s in starts if s < now]
    new_points: list[dict[str, Any]] = []
    for plan in plans(inds) if begun else []:
        bind = {
            **DEFAULT_PARAMS,
            **(params or {}),
            **dict(plan[0].params),
            "starts": begun,
            "ends": [ends[s] for s in begun],
        }
        for ind_id, pts in points(plan, conn.execute(_statement(plan), bind).all()).items():
            new_points.extend(
                {**p, "indicator": ind_id, "window_end": ends[p["window_start"]]} for p in pts
            )
    conn.execute(_DELETE, {"indicators": [i.id for i in inds], "kind": kind, "starts": starts})
    if new_points:
        conn.execute(
            _INSERT,
            {"kind": kind, "now": now, "points": rows_json(new_points)},
        )
    return len(new_points)
