"""What must hold after any fault, once the services are stopped (SPEC §4): every event sent is
stored once; every projection row is what a re-fold of its entity's stored events gives; every
stored indicator value is what a full `itsm-metrics recompute --since` gives."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from services.aggregator.indicators import all_indicators
from services.collector.projections import Record
from services.collector.projections.registry import PROJECTIONS
from shared.db import rows_json
from shared.settings import Settings
from tests.helpers import aggregate, aggregator

SCRATCH = "faults_scratch"  # a schema of the test's database, dropped when done


def assert_nothing_lost_nor_doubled(
    engine: Engine, settings: Settings, sent: set[tuple[str, str]], since: datetime
) -> None:
    """What every fault test ends with: the events sent stored once, the projections as a
    re-fold gives them, the indicator points as a full recompute from `since` gives them."""
    assert_stored_once(engine, sent)
    assert_projections_match_refold(engine)
    assert_indicators_match_recompute(engine, settings, since=since)


def assert_stored_once(engine: Engine, sent: set[tuple[str, str]]) -> None:
    """The events table holds exactly the distinct events sent ((source, id) is its key, so
    none is there twice), and each projection counts each of its entity's events once."""
    with engine.connect() as conn:
        stored = {(r.source, r.id) for r in conn.execute(text("SELECT source, id FROM events"))}
        projected = conn.execute(
            text(
                "SELECT "
                + " + ".join(
                    f"(SELECT coalesce(sum(event_count), 0) FROM {p.table.name})"
                    for p in PROJECTIONS.values()
                )
                + " + (SELECT count(*) FROM measurements)"
            )
        ).scalar_one()
    missing, unexpected = sent - stored, stored - sent
    assert not missing and not unexpected, (
        f"{len(missing)} events sent and not stored (e.g. {sorted(missing)[:3]}), "
        f"{len(unexpected)} stored and never sent (e.g. {sorted(unexpected)[:3]})"
    )
    assert projected == len(sent), f"projections count {projected} events, {len(sent)} stored"


def assert_projections_match_refold(engine: Engine) -> None:
    """Re-fold every entity from its events in the events table with the collector's pure
    projections, into copies of the projection tables in a scratch schema, and compare them
    with the stored projections row for row (every column but `updated_at`, the write's time)."""
    mismatches: dict[str, list[Any]] = {}
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCRATCH} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {SCRATCH}"))
        for kind, proj in PROJECTIONS.items():
            table, scratch = proj.table.name, f"{SCRATCH}.{proj.table.name}"
            conn.execute(text(f"CREATE TABLE {scratch} AS SELECT * FROM {table} WITH NO DATA"))
            histories: dict[str, list[Record]] = defaultdict(list)
            for r in conn.execute(_HISTORIES, {"kind": kind}):
                histories[r.entity_id].append(
                    Record(r.source, r.id, r.type, r.time, r.sequence, r.data)
                )
            rows = [proj.project(history) for _, history in sorted(histories.items())]
            if rows:
                conn.execute(
                    text(
                        f"INSERT INTO {scratch} SELECT * FROM "
                        f"jsonb_populate_recordset(NULL::{scratch}, CAST(:rows AS jsonb))"
                    ),
                    {"rows": rows_json(rows)},
                )
            diff = conn.execute(text(_ROW_DIFF.format(stored=table, refolded=scratch))).all()
            if diff:
                mismatches[table] = [tuple(r) for r in diff]
        conn.execute(text(f"DROP SCHEMA {SCRATCH} CASCADE"))
    assert not mismatches, f"projections differ from a re-fold of their events: {mismatches}"


_HISTORIES = text(
    """
    SELECT entity_id, source, id, type, time, sequence, data
    FROM events WHERE entity_kind = :kind
    """
)
# Rows of one side that the other lacks, a few of each, without `updated_at`.
_ROW_DIFF = """
    (SELECT 'stored only' AS side, r FROM (
        SELECT to_jsonb(s) - 'updated_at' AS r FROM {stored} s
        EXCEPT SELECT to_jsonb(f) - 'updated_at' FROM {refolded} f) AS d LIMIT 3)
    UNION ALL
    (SELECT 'refolded only', r FROM (
        SELECT to_jsonb(f) - 'updated_at' AS r FROM {refolded} f
        EXCEPT SELECT to_jsonb(s) - 'updated_at' FROM {stored} s) AS d LIMIT 3)
"""


def assert_indicators_match_recompute(
    engine: Engine, settings: Settings, since: datetime, now: datetime | None = None
) -> int:
    """The stored indicator points are what a full recompute gives (`itsm-metrics recompute
    --since`: mark every window from `since`, then compute), on one clock (`now`, default the
    real one): first what the services left due is finished, the running windows refreshed at
    `now` as a running aggregator's clock refresh does (in this process, with the aggregator's
    own code), and every point copied; after the recompute the two must hold the same points with
    the same count, value, p50 and p90 (floats to 1e-9, relative).

    One difference is allowed: a full recompute stores points of a time share or a state
    (availability, the backlog) for windows no event or interval touched, which an aggregator
    fed by events never computes (a replay neither), when no point of that indicator and
    window was stored. Returns how many points were compared."""
    at = now or datetime.now(UTC)

    def clock() -> datetime:
        return at

    agg = aggregator(engine, settings, clock)
    agg.refresh_current(at - timedelta(minutes=1), at)
    with engine.begin() as conn:  # the slower cadence's parts (percentiles, states) come due
        conn.execute(
            text("UPDATE window_queue SET due_at = :at WHERE due_at > :at AND parked_at IS NULL"),
            {"at": at},
        )
    aggregate(engine, settings, clock)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCRATCH} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {SCRATCH}"))
        conn.execute(  # the points as readers see them: rows plus pending differences
            text(f"CREATE TABLE {SCRATCH}.before AS SELECT * FROM indicator_points")
        )
    agg.mark_since(since)
    aggregate(engine, settings, clock)
    instant = [i.id for i in all_indicators() if i.placement == "instant"]
    with engine.begin() as conn:
        compared = conn.execute(text(f"SELECT count(*) FROM {SCRATCH}.before")).scalar_one()
        diff = conn.execute(_POINT_DIFF, {"instant": instant}).all()
        conn.execute(text(f"DROP SCHEMA {SCRATCH} CASCADE"))
    assert compared > 0, "no indicator point was computed"
    assert not diff, "stored points differ from a full recompute:\n" + "\n".join(
        str(tuple(r)) for r in diff
    )
    return int(compared)


def _differ(column: str) -> str:
    """SQL: the stored (`b`) and recomputed (`a`) `column` differ (both NULL is equal; floats
    to 1e-9, relative)."""
    a, b = f"a.{column}", f"b.{column}"
    return (
        f"({a} IS DISTINCT FROM {b} AND ({a} IS NULL OR {b} IS NULL "
        f"OR abs({a} - {b}) > 1e-9 * greatest(abs({a}), abs({b}))))"
    )


# Points stored before (b) and after (a) the recompute that differ, or that one side lacks, but
# for the allowed difference (assert_indicators_match_recompute); a few of them.
_POINT_DIFF = text(
    f"""
    SELECT indicator, window_kind, window_start, dimensions,
           b.count AS count_before, a.count AS count_after,
           b.value AS value_before, a.value AS value_after,
           b.p50 AS p50_before, a.p50 AS p50_after, b.p90 AS p90_before, a.p90 AS p90_after
    FROM indicator_points a
    FULL JOIN {SCRATCH}.before b USING (indicator, window_kind, window_start, dimensions)
    WHERE (a.count IS NULL OR b.count IS NULL OR a.count <> b.count
           OR {_differ("value")} OR {_differ("p50")} OR {_differ("p90")})
      AND NOT (b.count IS NULL AND a.indicator <> ALL(CAST(:instant AS text[]))
               AND NOT EXISTS (SELECT FROM {SCRATCH}.before o
                               WHERE o.indicator = a.indicator
                                 AND o.window_kind = a.window_kind
                                 AND o.window_start = a.window_start))
    ORDER BY 1, 2, 3
    LIMIT 10
    """
)
