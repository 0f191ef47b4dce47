"""What must hold after any fault, once the services are stopped (SPEC §4), measured: every event
sent is stored once; every projection row is what a re-fold of its entity's stored events gives;
every stored indicator value is what a full `itsm-metrics recompute --since` gives. Each check
returns the differences it found: the fault tests assert there are none
(tests/faults/invariants.py), the soak reports them with a verdict (benchmarks/soak.py).

The checks scale with the data: the keys sent are compared in SQL, and entities are re-folded
one page of a stream at a time, so a soak's hundreds of thousands of events fit."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from services.aggregator.indicators import all_indicators
from services.aggregator.jobs import Aggregator
from services.aggregator.metrics import AggregatorMetrics
from services.collector.projections import Record
from services.collector.projections.registry import PROJECTIONS, Projection
from shared.db import rows_json
from shared.settings import Settings

SCRATCH = "faults_scratch"  # a schema of the checked database, dropped when done
Key = tuple[str, str]  # (source, id): the dedup key (SPEC §3)


@dataclass(frozen=True)
class Storage:
    """The events table against the distinct events sent, and the projections' event counts."""

    sent: int
    stored: int
    missing: int  # sent and not stored
    unexpected: int  # stored and never sent
    projected: int  # events the projections count (event_count), measurements included
    examples: dict[str, list[Key]]  # a few keys of each kind of difference

    @property
    def doubled(self) -> int:
        """Events counted twice: (source, id) is the events table's key, so an event is never
        stored twice; what could count one twice is a projection folding it twice."""
        return max(0, self.projected - self.stored)

    def problems(self) -> list[str]:
        out, eg = [], self.examples
        if self.missing:
            out.append(f"{self.missing} events sent and not stored (e.g. {eg['missing']})")
        if self.unexpected:
            out.append(f"{self.unexpected} events stored and never sent (e.g. {eg['unexpected']})")
        if self.projected != self.stored:
            out.append(f"projections count {self.projected} events, {self.stored} stored")
        return out


def storage(engine: Engine, sent: Collection[Key]) -> Storage:
    """Compare the distinct keys `sent` with the events table, in SQL (the keys are copied into
    a temporary table)."""
    with engine.begin() as conn:
        conn.execute(
            text("CREATE TEMP TABLE sent_keys (source text, id text, PRIMARY KEY (source, id))")
        )
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor().copy("COPY sent_keys (source, id) FROM STDIN") as copy:
            for key in sent:
                copy.write_row(key)
        conn.execute(text("ANALYZE sent_keys"))
        r = conn.execute(_STORAGE).one()
        examples = {
            name: [(e.source, e.id) for e in conn.execute(text(query))]
            for name, query in _EXAMPLES.items()
        }
        conn.execute(text("DROP TABLE sent_keys"))
    return Storage(
        sent=len(sent),
        stored=int(r.stored),
        missing=int(r.missing),
        unexpected=int(r.unexpected),
        projected=int(r.projected),
        examples=examples,
    )


_MISSING = """FROM sent_keys s
    WHERE NOT EXISTS (SELECT FROM events e WHERE e.source = s.source AND e.id = s.id)"""
_UNEXPECTED = """FROM events e
    WHERE NOT EXISTS (SELECT FROM sent_keys s WHERE s.source = e.source AND s.id = e.id)"""
_PROJECTED = " + ".join(
    [f"(SELECT coalesce(sum(event_count), 0) FROM {p.table.name})" for p in PROJECTIONS.values()]
    + ["(SELECT count(*) FROM measurements)"]
)
_STORAGE = text(
    f"""
    SELECT (SELECT count(*) FROM events) AS stored,
           (SELECT count(*) {_MISSING}) AS missing,
           (SELECT count(*) {_UNEXPECTED}) AS unexpected,
           {_PROJECTED} AS projected
    """
)
_EXAMPLES = {
    "missing": f"SELECT s.source, s.id {_MISSING} ORDER BY 1, 2 LIMIT 3",
    "unexpected": f"SELECT e.source, e.id {_UNEXPECTED} ORDER BY 1, 2 LIMIT 3",
}


def projection_differences(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Re-fold every entity from its events in the events table with the collector's pure
    projections, into copies of the projection tables in a scratch schema, and compare them
    with the stored projections row for row (every column but `updated_at`, the write's time):
    a few differing rows of each table that has any."""
    mismatches: dict[str, list[tuple[Any, ...]]] = {}
    with engine.begin() as conn, engine.connect() as reader:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCRATCH} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {SCRATCH}"))
        for kind, proj in PROJECTIONS.items():
            table, scratch = proj.table.name, f"{SCRATCH}.{proj.table.name}"
            conn.execute(text(f"CREATE TABLE {scratch} AS SELECT * FROM {table} WITH NO DATA"))
            for rows in _refolded(reader, kind, proj):
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
    return mismatches


def _refolded(
    reader: Connection, kind: str, proj: Projection, page: int = 2000
) -> Iterator[list[dict[str, Any]]]:
    """The projection rows of every entity of `kind`, `page` entities at a time, from its events
    streamed in entity order (each history is sorted by the projection itself)."""
    rows: list[dict[str, Any]] = []
    history: list[Record] = []
    current = None
    for r in reader.execution_options(yield_per=5000).execute(_HISTORIES, {"kind": kind}):
        if r.entity_id != current and history:
            rows.append(proj.project(history))
            history = []
            if len(rows) >= page:
                yield rows
                rows = []
        current = r.entity_id
        history.append(Record(r.source, r.id, r.type, r.time, r.sequence, r.data))
    if history:
        rows.append(proj.project(history))
    if rows:
        yield rows


_HISTORIES = text(
    """
    SELECT entity_id, source, id, type, time, sequence, data
    FROM events WHERE entity_kind = :kind ORDER BY entity_id
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


@dataclass(frozen=True)
class Recompute:
    compared: int  # points stored by the services, compared with a full recompute's
    differences: list[tuple[Any, ...]]  # a few differing points (indicator, window, dims, …)


def recompute_differences(
    engine: Engine, settings: Settings, since: datetime, now: datetime | None = None
) -> Recompute:
    """Compare the stored indicator points with a full recompute (`itsm-metrics recompute
    --since`: mark every window from `since`, then compute), on one clock (`now`, default the
    real one): first what the services left due is finished, the running windows refreshed at
    `now` as a running aggregator's clock refresh does (in this process, with the aggregator's
    own code), and every point copied; after the recompute the two must hold the same points
    with the same count, value, p50 and p90 (floats to 1e-9, relative).

    One difference is allowed: a full recompute stores points of a time share or a state
    (availability, the backlog) for windows no event or interval touched, which an aggregator
    fed by events never computes (a replay neither), when no point of that indicator and
    window was stored."""
    at = now or datetime.now(UTC)
    agg = _aggregator(engine, settings, at)
    agg.refresh_current(at - timedelta(minutes=1), at)
    with engine.begin() as conn:  # the slower cadence's parts (percentiles, states) come due
        conn.execute(
            text("UPDATE window_queue SET due_at = :at WHERE due_at > :at AND parked_at IS NULL"),
            {"at": at},
        )
    _aggregate(engine, settings, at)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCRATCH} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {SCRATCH}"))
        conn.execute(  # the points as readers see them: rows plus pending differences
            text(f"CREATE TABLE {SCRATCH}.before AS SELECT * FROM indicator_points")
        )
    agg.mark_since(since)
    _aggregate(engine, settings, at)
    instant = [i.id for i in all_indicators() if i.placement == "instant"]
    with engine.begin() as conn:
        compared = conn.execute(text(f"SELECT count(*) FROM {SCRATCH}.before")).scalar_one()
        diff = conn.execute(_POINT_DIFF, {"instant": instant}).all()
        conn.execute(text(f"DROP SCHEMA {SCRATCH} CASCADE"))
    return Recompute(int(compared), [tuple(r) for r in diff])


def _aggregator(engine: Engine, settings: Settings, at: datetime) -> Aggregator:
    """An aggregator of this process (its own metrics registry) whose clock stays at `at`."""
    return Aggregator(settings, engine, AggregatorMetrics(CollectorRegistry()), clock=lambda: at)


def _aggregate(engine: Engine, settings: Settings, at: datetime) -> None:
    """Every dirty window recomputed at `at`, the SLA evaluated first as the scheduled job
    does."""
    agg = _aggregator(engine, settings, at)
    agg.evaluate_sla()
    while agg.recompute_dirty() > 0:
        pass


def _differ(column: str) -> str:
    """SQL: the stored (`b`) and recomputed (`a`) `column` differ (both NULL is equal; floats
    to 1e-9, relative)."""
    a, b = f"a.{column}", f"b.{column}"
    return (
        f"({a} IS DISTINCT FROM {b} AND ({a} IS NULL OR {b} IS NULL "
        f"OR abs({a} - {b}) > 1e-9 * greatest(abs({a}), abs({b}))))"
    )


# Points stored before (b) and after (a) the recompute that differ, or that one side lacks, but
# for the allowed difference (recompute_differences); a few of them.
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
