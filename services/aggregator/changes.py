"""A recent hour kept by what changed in it (issue 10: freshness at real scale).

An hour of a recent day keeps partials (merge.py). Recomputing them costs a scan of the hour's
rows, and a busy current hour holds tens of thousands of tickets while a pass brings a few
hundred: at 1,000 events/s the hour's recompute, not the events, set the freshness. So for the
indicators whose samples are rows of tracked projections (`Indicator.rows_from`: the tickets,
or the SLA evaluations joined with them):

- every write to the projection leaves the row as it was before (`row_changes`, written by
  triggers of migration 0013 while the writer holds the row's lock: an entity's changes come in
  the order they committed), and the transaction that wrote it (`writer`);
- a staging from the rows records, in the same statement, the snapshot it read
  (`partial_snapshots`, compute.stage_points);
- the next time the hour is dirty, one statement takes the entities changed since that snapshot
  (their changes the snapshot does not see), computes their samples as they are now and as they
  were then (the earliest of those changes holds the row as the snapshot saw it, or nothing),
  and stages the difference, new minus old, at the day's groupings; in the same statement it
  records its own snapshot. merge.add_deltas adds the difference to the partials and to every
  window containing the hour. The same statement as the rows' (compute.select_sql) computes
  both sides, so the values stay exact: counts and exact numeric sums.

What an hour reads besides the tracked rows (a recompute command, the clock, another scope's
marks, a changed catalog) recomputes it from its rows; so does an hour whose snapshot is older
than FRESH (its changes are kept no longer than KEPT). Percentiles do not add up: an hour kept
by its changes has its exact p50/p90 recomputed on the `percentiles` lane."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Connection, text

from services.aggregator.compute import (
    HOLD_CHANGES,
    TAKE_SNAPSHOT,
    Plan,
    Shape,
    bind,
    select_sql,
)
from services.aggregator.indicators import Indicator
from services.aggregator.policy import Grouping

HOUR = timedelta(hours=1)

# The projections whose changes are kept (migration 0013 installs their triggers): table →
# (entity kind, key column).
TRACKED: Mapping[str, tuple[str, str]] = {
    "tickets": ("ticket", "ticket_id"),
    "ticket_sla": ("ticket_sla", "ticket_id"),
}
# How old a snapshot may be and still be used, and how long changes are kept for one.
FRESH = timedelta(minutes=5)
KEPT = timedelta(minutes=15)

# The changes a snapshot `:snap` does not see: those committed since it was taken (a writer
# at or above its xmin, and not visible in it).
CHANGED_SINCE = """
    writer >= pg_snapshot_xmin(CAST(:snap AS pg_snapshot))::text::bigint
    AND NOT pg_visible_in_snapshot(writer::text::xid8, CAST(:snap AS pg_snapshot))
"""

# What a source reads: `table [alias]`, then any `JOIN table alias USING (key)`.
_FROM = re.compile(r"(\w+)(?: (\w+))?((?: JOIN \w+ \w+ USING \(\w+\))*)")
_JOIN = re.compile(r" JOIN (\w+) (\w+) USING \((\w+)\)")


@dataclass(frozen=True)
class Rows:
    """What a plan's samples are made of: tracked tables joined on their one entity key."""

    rows_from: str  # as written in the indicators' source
    tables: tuple[tuple[str, str], ...]  # (table, alias or "")
    key: str


@cache
def rows_of(plan: Plan) -> Rows | None:
    """What the plan's samples are rows of, when those are tracked projections joined on their
    entity key (so that what changed in them is known); None otherwise."""
    froms = {i.rows_from for i in plan}
    m = _FROM.fullmatch(froms.pop()) if len(froms) == 1 else None
    if m is None:
        return None
    tables = [(m.group(1), m.group(2) or "")]
    keys = set()
    for table, alias, key in _JOIN.findall(m.group(3)):
        tables.append((table, alias))
        keys.add(key)
    if any(t not in TRACKED for t, _ in tables):
        return None
    keys |= {TRACKED[t][1] for t, _ in tables}
    return Rows(m.group(0), tuple(tables), keys.pop()) if len(keys) == 1 else None


def snapshots(
    conn: Connection, plans: Sequence[Plan], hours: Sequence[datetime]
) -> dict[datetime, dict[Plan, str]]:
    """The hours whose partials of every indicator of these plans reflect a snapshot taken less
    than FRESH ago, one per plan, with each plan's snapshot (one query for them all)."""
    rows = conn.execute(
        text(
            """
            SELECT indicator, window_start, snap FROM partial_snapshots
            WHERE indicator = ANY(:ids) AND window_start = ANY(:hours)
              AND taken_at > now() - CAST(:fresh AS interval)
            """
        ),
        {"ids": [i.id for p in plans for i in p], "hours": list(hours), "fresh": FRESH},
    ).all()
    taken: dict[tuple[str, datetime], str] = {(r.indicator, r.window_start): r.snap for r in rows}
    out: dict[datetime, dict[Plan, str]] = {}
    for h in hours:
        per_plan = {p: {taken.get((i.id, h), "") for i in p} for p in plans}
        if all(len(snaps) == 1 and "" not in snaps for snaps in per_plan.values()):
            out[h] = {p: next(iter(snaps)) for p, snaps in per_plan.items()}
    return out


def stage_deltas(
    conn: Connection,
    plan: Plan,
    hour: datetime,
    snap: str,
    groupings: tuple[Grouping, ...],
    *,
    now: datetime,
    params: Mapping[str, Any] | None = None,
) -> None:
    """Stage into `deltas` (merge.start_deltas) what the rows changed since `snap` made of the
    plan's points in `hour`, at these groupings, and record the snapshot read."""
    rows = rows_of(plan)
    assert rows is not None, "a plan over tracked projections"
    conn.execute(HOLD_CHANGES)
    conn.execute(
        text(_delta_sql(plan, rows, groupings)),
        {
            **bind([(hour, hour + HOUR)], now, params, plan),
            "snap": snap,
            "entity_kinds": [TRACKED[t][0] for t, _ in rows.tables],
            "snap_ids": [i.id for i in plan],
            "snap_hours": [hour],
        },
    )


@cache
def _delta_sql(plan: Plan, rows: Rows, groupings: tuple[Grouping, ...]) -> str:
    # One row per changed entity with each table's row as it is (`now_rows`), and as the
    # snapshot saw it (`then_rows`: the earliest change since holds the row before it, or
    # nothing; a table in which the entity did not change has it as it is), read by key and
    # materialized: the window's bounds must not lead the planner to read the hour's rows and
    # keep the changed ones, and two tables are never joined as CTEs (no statistics: it took
    # a nested loop over both, 18 s for 10,000 tickets).
    key, tables = rows.key, rows.tables
    per_table = ", ".join(
        f"bool_or(entity_kind = '{TRACKED[t][0]}') AS in_{n}, "
        f"(array_agg(old) FILTER (WHERE entity_kind = '{TRACKED[t][0]}'))[1] AS old_{n}"
        for n, (t, _) in enumerate(tables)
    )
    # by key, one lookup per changed entity (LIMIT 1 keeps the planner from turning the lookups
    # into a join that reads every row of the table, as a guess of how many changed may make it)
    now_joins = " ".join(
        f"CROSS JOIN LATERAL (SELECT x AS r FROM {t} x WHERE x.{key} = c.entity_id LIMIT 1) AS x{n}"
        for n, (t, _) in enumerate(tables)
    )
    then_joins = " ".join(
        f"LEFT JOIN LATERAL (SELECT x AS r FROM {t} x WHERE NOT c.in_{n} AND x.{key} = c.entity_id "
        f"LIMIT 1) AS x{n} ON true"
        for n, (t, _) in enumerate(tables)
    )
    then_pick = ", ".join(
        f"CASE WHEN c.in_{n} THEN jsonb_populate_record(NULL::{t}, c.old_{n}) "
        f"ELSE x{n}.r END AS r{n}"
        for n, (t, _) in enumerate(tables)
    )
    present = " AND ".join(f"(v.r{n}).{key} IS NOT NULL" for n in range(len(tables)))
    now_columns = ", ".join(f"x{n}.r AS r{n}" for n in range(len(tables)))
    then_columns = ", ".join(f"v.r{n}" for n in range(len(tables)))
    shape = Shape(groupings)
    new = select_sql(_over(plan, rows, "now_rows"), shape)
    old = select_sql(_over(plan, rows, "then_rows"), shape)
    sides = "indicator, window_start, dimensions, dim_keys"
    return f"""
        WITH first_changes AS MATERIALIZED (
            SELECT DISTINCT ON (entity_kind, entity_id) entity_kind, entity_id, old
            FROM row_changes
            WHERE entity_kind = ANY(CAST(:entity_kinds AS text[])) AND {CHANGED_SINCE}
            ORDER BY entity_kind, entity_id, id
        ),
        changed_rows AS MATERIALIZED (
            SELECT entity_id, {per_table} FROM first_changes GROUP BY entity_id
        ),
        now_rows AS MATERIALIZED (SELECT {now_columns} FROM changed_rows c {now_joins}),
        then_rows AS MATERIALIZED (
            SELECT {then_columns}
            FROM changed_rows c {then_joins} CROSS JOIN LATERAL (SELECT {then_pick}) AS v
            WHERE {present}
        ),
        {TAKE_SNAPSHOT}
        INSERT INTO deltas (indicator, key_start, dimensions, dim_keys, count, sum_v, sum_w)
        SELECT {sides}, sum(count), sum(sum_v), sum(sum_w)
        FROM (
            SELECT {sides}, count, sum_v, sum_w FROM ({new}) AS n
            UNION ALL
            SELECT {sides}, -count, -sum_v, -sum_w FROM ({old}) AS o
        ) AS d
        GROUP BY {sides}
        HAVING sum(count) <> 0 OR sum(sum_v) <> 0 OR sum(sum_w) <> 0
    """


def _over(plan: Plan, rows: Rows, cte: str) -> Plan:
    """The plan's indicators reading the rows of `cte` (one column per table, `r0`, `r1`, …)
    in place of the tables, each under its own alias."""
    own = f"FROM {rows.rows_from} WHERE"
    swapped = (
        f"FROM {cte} AS j"
        + "".join(
            f" CROSS JOIN LATERAL (SELECT (j.r{n}).*) AS {alias or table}"
            for n, (table, alias) in enumerate(rows.tables)
        )
        + " WHERE"
    )

    def over(ind: Indicator) -> Indicator:
        assert ind.source.startswith(own) and own in ind.samples_sql, ind.id
        return replace(
            ind,
            source=ind.source.replace(own, swapped, 1),
            samples_sql=ind.samples_sql.replace(own, swapped, 1),
        )

    return tuple(over(i) for i in plan)


_FORGET_SNAPSHOTS = text(
    "DELETE FROM partial_snapshots WHERE taken_at <= now() - CAST(:kept AS interval)"
)
# Below it, the changes every snapshot still kept sees (written before the oldest one's xmin),
# or, with no snapshot kept, every change of a transaction that ended. A snapshot taken later
# has an xmin at least the oldest transaction running now: it sees them too.
_BOUND = text(
    """
    SELECT coalesce(min(pg_snapshot_xmin(snap::pg_snapshot)::text::bigint),
                    pg_snapshot_xmin(pg_current_snapshot())::text::bigint)
    FROM partial_snapshots
    """
)
_FORGET_CHANGES = text("DELETE FROM row_changes WHERE writer < :bound")


_FORGETTING = text("SELECT pg_try_advisory_xact_lock(hashtext('itsm-row-changes'))")


def forget_bound(conn: Connection) -> int | None:
    """Delete the snapshots older than KEPT and return the writer below which no snapshot kept
    or taken later needs a change; None while a transaction recording a snapshot has not
    committed (its snapshot is not seen yet). Under the exclusive lock, tried, never waited
    for: the caller should commit at once, since every pass recording a snapshot waits for it
    (deleting a million-ticket month's changes under it took 1.5–2 s, and every point-lane pass
    waited that long)."""
    if not conn.execute(_FORGETTING).scalar_one():
        return None
    conn.execute(_FORGET_SNAPSHOTS, {"kept": KEPT})
    return int(conn.execute(_BOUND).scalar_one())


def forget_before(conn: Connection, bound: int) -> int:
    """Delete the changes written before `bound` (forget_bound); no lock needed: no snapshot
    needs them, whenever taken."""
    return int(conn.execute(_FORGET_CHANGES, {"bound": bound}).rowcount or 0)
