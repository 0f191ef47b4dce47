"""The one statement behind every indicator point (SPEC §5): an indicator's samples in a set of
windows, aggregated over a set of dimension groupings (GROUPING SETS), in SQL.

Its rows carry, per indicator, window and grouping: `count` (samples), the exact sums
`sum_v`/`sum_w` a longer window adds up from (merge.py), `value` (a mean, ratio, sum or count,
from those sums alone, so a merged window and a computed one agree to the bit) and, for
durations, `p50`/`p90` (percentile_cont). The same statement

- writes stored points (`write_points`: INSERT … SELECT, so points never pass through Python),
- stages points for merging (`stage_points`),
- answers groupings that are not stored, at query time (`query_points`),
- refreshes the percentiles of merged windows (`update_percentiles`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, text

from services.aggregator import pending
from services.aggregator.indicators import CUSTOMER, Indicator
from services.aggregator.policy import Grouping, dim_keys
from services.catalog import Catalog

UNKNOWN = "unknown"  # dimension value of a sample that has none (kept apart from "all")


def catalog_params(catalog: Catalog, tz: ZoneInfo) -> dict[str, Any]:
    """The catalog's settings the indicators' SQL reads (SPEC §5.2, §6.1, §7.3): the
    first-contact window, the service → customer map behind the `customer` dimension, the review
    schedule (one scheduled review per index of the `rv_` arrays) and the reporting time zone
    `tz` its periods are aligned in."""
    reviews = catalog.reviews
    return {
        "fcr_seconds": catalog.settings.first_contact_resolution_minutes * 60,
        "svc_ids": [s.id for s in catalog.services],
        "svc_customers": [s.customer for s in catalog.services],
        "rv_kinds": [r.kind for r in reviews],
        "rv_services": [r.service for r in reviews],
        "rv_customers": [r.customer for r in reviews],
        "rv_groups": [r.assignment_group for r in reviews],
        "rv_every": [r.every for r in reviews],
        "rv_grace_days": [r.grace_days for r in reviews],
        "rv_since": [r.since for r in reviews],
        "tz": tz.key,
    }


# What the indicators' SQL reads when no catalog is given: the built-in default's, in UTC.
DEFAULT_PARAMS = catalog_params(Catalog.default(), ZoneInfo("UTC"))


Plan = tuple[Indicator, ...]
Window = tuple[datetime, datetime]  # [start, end)


def plans(indicators: Sequence[Indicator]) -> list[Plan]:
    """Indicators grouped into statements: those taking one sample per row of the same rows,
    with the same dimensions, share one (one scan and one GROUPING SETS pass for all of them,
    instead of one each); every other indicator has its own."""
    shared: dict[tuple[str, tuple[str, ...]], list[Indicator]] = {}  # by rows and columns
    alone: list[Plan] = []
    for ind in indicators:
        if (
            ind.source
            and ind.aggregate != "weighted"
            and not ind.params
            and not ind.repeated_per_service  # its sample counts come with its own query
        ):
            shared.setdefault((ind.source, ind.sample_dimensions), []).append(ind)
        else:
            alone.append((ind,))
    return [tuple(group) for group in shared.values()] + alone


# --- the statement --------------------------------------------------------------------------


def value_sql(ind: Indicator, n: str, sv: str, sw: str) -> str:
    """An indicator's value from its count and exact sums (SPEC §5): a count counts; a sum adds;
    a mean or ratio is Σv / n; a weighted indicator is Σv / Σw."""
    if ind.aggregate == "count":
        return f"{n}::float8"
    if ind.aggregate == "sum":
        return f"{sv}::float8"
    if ind.aggregate == "weighted":
        return f"({sv} / nullif({sw}, 0))::float8"
    return f"({sv} / nullif({n}, 0))::float8"


def _aggregates(ind: Indicator, j: int, grouped: set[str]) -> list[str]:
    """n, Σv, Σw, p50, p90 of the plan's j-th indicator over its samples `v{j}` (`w{j}`)."""
    if ind.repeated_per_service:
        return _once_per_entity(ind, grouped)
    return _sums(ind, j, "")


def _sums(ind: Indicator, j: int, only: str) -> list[str]:
    """The aggregates of `_aggregates`, each over the samples `only` keeps (a FILTER clause)."""
    v = f"v{j}"
    # Sums in numeric: float addition depends on the order rows arrive in, and a replay must
    # give identical values (SPEC §4). A ratio's or a count's samples are 0 or 1, whose float
    # sums are exact, so they are summed as floats (numeric costs about three times as much).
    sv = {"count": "NULL::numeric", "ratio": f"sum({v}){only}::numeric"}.get(
        ind.aggregate, f"sum({v}::numeric){only}"
    )
    sw = f"sum(w{j}::numeric){only}" if ind.aggregate == "weighted" else "NULL::numeric"
    if ind.is_duration:
        pct = [f"percentile_cont({q}) WITHIN GROUP (ORDER BY {v}){only}" for q in ("0.5", "0.9")]
    else:
        pct = ["NULL::float8", "NULL::float8"]
    return [f"count({v}){only}", sv, sw, *pct]


def _once_per_entity(ind: Indicator, grouped: set[str]) -> list[str]:
    """n, Σv, Σw, p50, p90 of an indicator whose samples repeat an entity once per service it
    belongs to (`repeated_per_service`: a CI, an outage of a CI): per service as they are; per
    customer and in every other grouping each entity once (its first sample there: an entity's
    samples differ in their service alone), so totals are never double counted."""
    # a dimension in no grouping set cannot be named here: it is never grouped by
    by_service = "service IS NOT NULL" if "service" in grouped else "false"
    by_customer = f"{CUSTOMER} IS NOT NULL" if CUSTOMER in grouped else "false"
    each = zip(
        _sums(ind, 0, ""),
        _sums(ind, 0, " FILTER (WHERE first_customer)"),
        _sums(ind, 0, " FILTER (WHERE first_all)"),
        strict=True,
    )
    return [
        plain
        if plain.startswith("NULL")
        else f"CASE WHEN {by_service} THEN {plain} WHEN {by_customer} THEN {per_customer} "
        f"ELSE {once} END"
        for plain, per_customer, once in each
    ]


@dataclass(frozen=True)
class Shape:
    """What one statement computes: which groupings, filtered on which dimensions."""

    groupings: tuple[Grouping, ...]
    filters: tuple[str, ...] = ()  # dimensions compared with bind parameters `f_<dimension>`


@cache
def select_sql(plan: Plan, shape: Shape) -> str:
    """Rows (window_start, window_end, indicator, dimensions, dim_keys, count, sum_v, sum_w,
    value, p50, p90) of every window in `:starts`/`:ends` (LEFT JOIN LATERAL keeps empty ones),
    each grouping of `shape`, each indicator of `plan`; only rows with samples."""
    first = plan[0]
    dims = first.selectable_dimensions  # a private one is grouped only when a shape names it
    inner = "".join(f"coalesce(s.{d}::text, '{UNKNOWN}') AS {d}, " for d in first.sample_dimensions)
    customer_join = ""
    customer = f"s.{CUSTOMER}"  # the samples' own, unless derived from their service
    if first.derives_customer:
        customer = f"cm.{CUSTOMER}"
        inner += f"coalesce(cm.customer, '{UNKNOWN}') AS {CUSTOMER}, "
        customer_join = (
            "LEFT JOIN unnest(CAST(:svc_ids AS text[]), CAST(:svc_customers AS text[])) "
            "AS cm(service, customer) ON cm.service = s.service::text"
        )
    if len(plan) == 1:  # the indicator's own query, with columns v (and w)
        samples_sql = first.samples_sql
        columns = ["s.v AS v0", *(["s.w AS w0"] if first.aggregate == "weighted" else [])]
        if first.repeated_per_service:  # each entity's first sample, overall and per customer
            entity = f"w.window_start, s.{first.repeated_per_service}"
            columns += [
                f"row_number() OVER (PARTITION BY {entity} ORDER BY s.service) = 1 AS first_all",
                f"row_number() OVER (PARTITION BY {entity}, {customer} ORDER BY s.service) = 1 "
                "AS first_customer",
            ]
    else:
        exprs = [f"{ind.v} AS v{j}" for j, ind in enumerate(plan)]
        samples_sql = f"SELECT {', '.join([*first.sample_dimensions, *exprs])} {first.source}"
        columns = [f"s.v{j}" for j in range(len(plan))]
    where = " AND ".join(f"{d} = :f_{d}" for d in shape.filters)
    grouped = {d for g in shape.groupings for d in g}  # a dimension in no set is never grouped
    sets = ", ".join(f"({', '.join(('window_start', 'window_end', *g))})" for g in shape.groupings)
    aggregates = ", ".join(
        f"{sql} AS {name}{j}"
        for j, ind in enumerate(plan)
        for name, sql in zip(
            ("n", "sv", "sw", "pa", "pb"), _aggregates(ind, j, grouped), strict=True
        )
    )
    # The grouped-away dimensions are NULL in a row (a sample's own are never: see UNKNOWN).
    pairs = ", ".join(f"'{d}', a.{d}" for d in sorted(dims))
    dimensions = f"jsonb_build_object({pairs})"
    keys = (
        "concat_ws(',', "
        + ", ".join(f"CASE WHEN a.{d} IS NOT NULL THEN '{d}' END" for d in sorted(dims))
        + ")"
        if dims
        else "''"
    )
    dim_list = "".join(f"{d}, " if d in grouped else f"NULL::text AS {d}, " for d in dims)
    filtered = f"WHERE {where}" if where else ""
    # Sums are kept only where windows add up from them (a time share's depend on the clock).
    unpivot = ", ".join(
        f"('{ind.id}', a.n{j}, "
        + (f"a.sv{j}, a.sw{j}, " if ind.mergeable else "NULL::numeric, NULL::numeric, ")
        + f"{value_sql(ind, f'a.n{j}', f'a.sv{j}', f'a.sw{j}')}, a.pa{j}, a.pb{j})"
        for j, ind in enumerate(plan)
    )
    return f"""
        WITH w AS (
            SELECT * FROM unnest(CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[]))
                AS w(window_start, window_end)
        ),
        a AS (
            SELECT window_start, window_end, {dim_list}{aggregates}
            FROM (
                SELECT w.window_start, w.window_end, {inner}{", ".join(columns)}
                FROM w LEFT JOIN LATERAL ({samples_sql}) AS s ON true
                {customer_join}
            ) AS samples
            {filtered}
            GROUP BY GROUPING SETS ({sets})
        )
        SELECT a.window_start, a.window_end, x.indicator,
               jsonb_strip_nulls({dimensions}) AS dimensions, {keys} AS dim_keys,
               x.n AS count, x.sv AS sum_v, x.sw AS sum_w, x.value, x.p50, x.p90
        FROM a CROSS JOIN LATERAL (VALUES {unpivot})
            AS x(indicator, n, sv, sw, value, p50, p90)
        WHERE x.n > 0
    """


def bind(
    windows: Sequence[Window],
    now: datetime,
    params: Mapping[str, Any] | None,
    plan: Plan,
    filters: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The statement's parameters: the windows, the clock, the catalog's settings, the plan's
    own (a custom indicator's id) and the filter values."""
    return {
        **DEFAULT_PARAMS,
        **(params or {}),
        **dict(plan[0].params),
        "starts": [s for s, _ in windows],
        "ends": [e for _, e in windows],
        "lo": min((s for s, _ in windows), default=now),
        "hi": max((e for _, e in windows), default=now),
        "now": now,
        **{f"f_{d}": v for d, v in (filters or {}).items()},
    }


# --- its uses -------------------------------------------------------------------------------

_COLUMNS = "window_start, window_end, indicator, dimensions, dim_keys, count, sum_v, sum_w, value"


def delete_points(
    conn: Connection,
    indicators: Sequence[Indicator],
    kind: str,
    starts: Sequence[datetime],
    *,
    now: datetime,
) -> None:
    """Delete these windows' points. Those of indicators that add up (`mergeable`) in a day or
    longer may have pending differences (pending.py): what is pending is folded first, under the
    fold's lock held to the end of the transaction, so none is added to what replaces them."""
    params = {"indicators": [i.id for i in indicators], "kind": kind, "starts": list(starts)}
    if kind != "hour" and any(i.mergeable for i in indicators):
        pending.fold(conn, now=now, wait=True)
    conn.execute(
        text(
            "DELETE FROM indicator_values WHERE indicator = ANY(:indicators) "
            "AND window_kind = :kind AND window_start = ANY(:starts)"
        ),
        params,
    )


def write_points(
    conn: Connection,
    plan: Plan,
    kind: str,
    windows: Sequence[Window],
    groupings: tuple[Grouping, ...],
    *,
    now: datetime,
    params: Mapping[str, Any] | None = None,
) -> int:
    """Compute and store the plan's points for these windows (the caller deleted the old
    ones); returns how many. A window without samples stores no point at all, and neither does
    a grouping whose value is undefined (a weighted one with Σw = 0)."""
    if not windows:
        return 0
    result = conn.execute(
        text(
            f"""
            INSERT INTO indicator_values ({_COLUMNS}, window_kind, p50, p90, computed_at)
            SELECT {_COLUMNS}, :kind, p50, p90, :now FROM ({select_sql(plan, Shape(groupings))}) p
            WHERE value IS NOT NULL
            """
        ),
        {**bind(windows, now, params, plan), "kind": kind},
    )
    return int(result.rowcount or 0)


STAGED = """
    CREATE TEMP TABLE IF NOT EXISTS staged_points (
        window_start timestamptz, window_end timestamptz, indicator text, dimensions jsonb,
        dim_keys text, count bigint, sum_v numeric, sum_w numeric, value float8, p50 float8,
        p90 float8
    ) ON COMMIT DROP
"""


# A CTE recording the snapshot its statement reads as the one each of `:snap_ids`
# (indicators, or the SLA job's key) in `:snap_hours` now reflects: in the same statement, so
# the same snapshot (changes.py adds what changed since). The staging of partials, the
# differences added to them and the SLA job's passes each record theirs with it.
TAKE_SNAPSHOT = """
    taken AS (
        INSERT INTO partial_snapshots (indicator, window_start, snap, taken_at)
        SELECT i, h, pg_current_snapshot()::text, now()
        FROM unnest(CAST(:snap_ids AS text[])) AS i, unnest(CAST(:snap_hours AS timestamptz[])) AS h
        ON CONFLICT (indicator, window_start) DO UPDATE
            SET snap = excluded.snap, taken_at = excluded.taken_at
    )
"""


# Held by a transaction recording snapshots (shared) until it commits, so that the bound of the
# changes no snapshot needs (changes.forget_bound, exclusive, never waiting) sees every snapshot.
HOLD_CHANGES = text("SELECT pg_advisory_xact_lock_shared(hashtext('itsm-row-changes'))")


def stage_points(
    conn: Connection,
    plan: Plan,
    windows: Sequence[Window],
    groupings: tuple[Grouping, ...],
    *,
    now: datetime,
    params: Mapping[str, Any] | None = None,
    snapshot_of: Sequence[datetime] = (),
) -> None:
    """Compute the plan's points into the transaction's `staged_points` (merge.py reads them);
    the hours `snapshot_of` (partials the staging renews) remember the snapshot read."""
    if not windows:
        return
    conn.execute(text(STAGED))
    taken = ""
    if snapshot_of:
        conn.execute(HOLD_CHANGES)
        taken = f"WITH {TAKE_SNAPSHOT}"
    conn.execute(
        text(
            f"{taken} INSERT INTO staged_points ({_COLUMNS}, p50, p90) "
            f"SELECT {_COLUMNS}, p50, p90 FROM ({select_sql(plan, Shape(groupings))}) p"
        ),
        {
            **bind(windows, now, params, plan),
            "snap_ids": [i.id for i in plan],
            "snap_hours": list(snapshot_of),
        },
    )


def apply_percentiles(conn: Connection, kind: str) -> None:
    """Set the exact p50/p90 of stored points of merged windows from the staged points (their
    counts and sums come from their days; percentiles cannot). The staging is the long part and
    locks nothing; the rows are then locked in key order (as merge.py adds to them) and updated
    at once, so differences added by another unit wait a moment, never a deadlock."""
    conn.execute(
        text(
            """
            WITH locked AS (
                SELECT iv.indicator, iv.window_start, iv.dimensions, p.p50, p.p90
                FROM indicator_values iv
                JOIN staged_points p ON iv.indicator = p.indicator AND iv.window_kind = :kind
                 AND iv.window_start = p.window_start AND iv.dimensions = p.dimensions
                WHERE p.p50 IS NOT NULL
                ORDER BY iv.indicator, iv.window_start, iv.dimensions
                FOR UPDATE OF iv
            )
            UPDATE indicator_values iv SET p50 = l.p50, p90 = l.p90
            FROM locked l
            WHERE iv.indicator = l.indicator AND iv.window_kind = :kind
              AND iv.window_start = l.window_start AND iv.dimensions = l.dimensions
            """
        ),
        {"kind": kind},
    )
    if kind not in pending.KINDS:
        return  # an hour's points take their differences in place
    # A point only pending so far (pending.py) gets a row holding its percentiles and nothing
    # else (count 0, sums 0): the fold adds its differences to it.
    conn.execute(
        text(
            f"""
            INSERT INTO indicator_values AS iv (indicator, window_kind, window_start, dimensions,
                window_end, dim_keys, count, sum_v, sum_w, value, p50, p90)
            SELECT p.indicator, :kind, p.window_start, p.dimensions, p.window_end, p.dim_keys, 0,
                   CASE WHEN p.sum_v IS NOT NULL THEN 0 END,
                   CASE WHEN p.sum_w IS NOT NULL THEN 0 END, NULL, p.p50, p.p90
            FROM staged_points p
            WHERE p.p50 IS NOT NULL
              AND NOT EXISTS (
                SELECT 1 FROM indicator_values v
                WHERE v.indicator = p.indicator AND v.window_kind = :kind
                  AND v.window_start = p.window_start AND v.dimensions = p.dimensions)
              AND EXISTS (
                SELECT 1 FROM indicator_pending d
                WHERE d.indicator = p.indicator AND d.dim_keys = p.dim_keys
                  AND d.{kind}_start = p.window_start AND d.dimensions = p.dimensions)
            ORDER BY p.indicator, p.window_start, p.dimensions
            ON CONFLICT (indicator, window_kind, window_start, dimensions) DO UPDATE
                SET p50 = excluded.p50, p90 = excluded.p90
            """
        ),
        {"kind": kind},
    )


@dataclass(frozen=True)
class QueryPoint:
    window_start: datetime
    window_end: datetime
    dimensions: dict[str, Any]
    value: float | None
    count: int
    p50: float | None
    p90: float | None


def query_points(
    conn: Connection,
    ind: Indicator,
    windows: Sequence[Window],
    grouping: Grouping,
    filters: Mapping[str, str],
    *,
    now: datetime,
    params: Mapping[str, Any] | None = None,
) -> list[QueryPoint]:
    """A grouping that is not stored, answered now by the same statement over the projections.
    The filtered dimensions are part of the grouping, as in stored points."""
    if not windows:
        return []
    keys = tuple(sorted(set(grouping) | set(filters)))
    shape = Shape((keys,), tuple(sorted(filters)))
    rows = conn.execute(
        text(
            f"SELECT * FROM ({select_sql((ind,), shape)}) p WHERE value IS NOT NULL "
            "ORDER BY window_start, dimensions"
        ),
        bind(windows, now, params, (ind,), filters),
    ).all()
    assert all(r.dim_keys == dim_keys(keys) for r in rows)
    return [
        QueryPoint(
            r.window_start, r.window_end, r.dimensions, r.value, r._mapping["count"], r.p50, r.p90
        )
        for r in rows
    ]
