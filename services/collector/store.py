"""Batched writes for one consumed batch: events, projections, dirty marks and dead letters in
the caller's transaction, a handful of statements per batch whatever its size (SPEC §4)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import ARRAY, Connection, Table, Text, any_, bindparam, select, text
from sqlalchemy.dialects.postgresql import insert

from services.collector.projections import Record
from services.collector.projections.registry import PROJECTIONS, Projection
from shared.db import dead_letters, measurements, rows_json
from shared.dirty import Span, changed_spans, mark_dirty, moved_periods
from shared.events import Event


class Incoming(NamedTuple):
    """A valid event and where it came from (topic/partition/offset are None for HTTP)."""

    event: Event
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    text: str | None = None  # the event's JSON text as received, stored without re-encoding


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    raw: bytes
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    source: str | None = None
    event_id: str | None = None
    event_type: str | None = None


@dataclass
class BatchResult:
    stored: Counter[tuple[str, str]] = field(default_factory=Counter)  # (topic, type) → n
    duplicate: Counter[tuple[str, str]] = field(default_factory=Counter)
    dead_letter: Counter[tuple[str, str]] = field(default_factory=Counter)
    dirty_marks: int = 0
    oldest_received: datetime | None = None


# A batch's events are copied into a temporary table (COPY: the cheapest way in), then inserted
# with one statement that skips the (source, id) already stored (SPEC §3.6 duplicates). `body`
# is the event's JSON text as received: `data` is stored as sent, not re-encoded.
_INCOMING = """
    CREATE TEMP TABLE IF NOT EXISTS incoming_events (
        ord int, source text, id text, type text, time timestamptz, subject text,
        entity_kind text, entity_id text, sequence bigint, body jsonb, topic text,
        partition int, "offset" bigint
    ) ON COMMIT DELETE ROWS
"""
_COPY_INCOMING = """
    COPY incoming_events (ord, source, id, type, time, subject, entity_kind, entity_id,
                          sequence, body, topic, partition, "offset") FROM STDIN
"""
# The first of duplicates within the batch wins (ORDER BY ord); one row comes back: the keys
# stored and the transaction's receipt time.
_INSERT_EVENTS = """
    WITH stored AS (
        INSERT INTO events (source, id, type, time, subject, entity_kind, entity_id, sequence,
                            data, topic, partition, "offset")
        SELECT source, id, type, time, subject, entity_kind, entity_id, sequence,
               body->'data', topic, partition, "offset"
        FROM incoming_events ORDER BY ord
        ON CONFLICT (source, id) DO NOTHING
        RETURNING source, id
    )
    SELECT array_agg(source), array_agg(id), now() FROM stored
"""


def insert_events(conn: Connection, items: list[Incoming]) -> tuple[set[tuple[str, str]], datetime]:
    """Store the events not stored yet; returns their (source, id) and the receipt time."""
    driver = conn.connection.driver_connection  # psycopg, in the caller's transaction
    assert driver is not None
    with driver.cursor() as cursor:
        cursor.execute(_INCOMING)
        with cursor.copy(_COPY_INCOMING) as copy:
            for n, item in enumerate(items):
                ev = item.event
                body = item.text if item.text is not None else json.dumps(ev.to_cloudevent())
                copy.write_row(
                    (
                        n,
                        ev.source,
                        ev.id,
                        ev.type,
                        ev.time,
                        ev.subject,
                        ev.entity_kind,
                        ev.entity_id,
                        ev.sequence,
                        body,
                        item.topic,
                        item.partition,
                        item.offset,
                    )
                )
        cursor.execute(_INSERT_EVENTS)
        sources, ids, received = cursor.fetchone()
    return set(zip(sources or [], ids or [], strict=True)), received


_HISTORIES = text(
    """
    SELECT e.entity_kind, e.entity_id, e.source, e.id, e.type, e.time, e.sequence, e.data
    FROM unnest(CAST(:kinds AS text[]), CAST(:ids AS text[])) AS k(kind, entity_id)
    JOIN events e ON e.entity_kind = k.kind AND e.entity_id = k.entity_id
    """
)


# Per-entity serialisation: collectors fold the same entity from different topics (a type may
# arrive on another topic), each reading the entity's history and state and writing its
# re-fold; unserialised, the later commit would overwrite the other's projection with a fold
# missing the other's events. A transaction-level advisory lock per (entity kind, entity id),
# taken in key order (no deadlock between two batches) before anything of the entities is read
# or written, makes the second batch wait for the first one's commit, and under READ COMMITTED
# its reads then see it. Taken before the events are inserted: a duplicate delivered to two
# collectors belongs to an entity both lock, so their inserts never wait on each other in
# opposite orders. A hash collision between two entities only serialises them needlessly.
# (Single-bigint keys; the aggregator's window locks are in the two-int4 key space.)
_LOCK_ENTITIES = text(
    """
    SELECT count(pg_advisory_xact_lock(key)) FROM (
        SELECT DISTINCT hashtextextended(kind || '/' || entity_id, 0) AS key
        FROM unnest(CAST(:kinds AS text[]), CAST(:ids AS text[])) AS e(kind, entity_id)
        ORDER BY key
    ) AS keys
    """
)


def lock_entities(conn: Connection, items: list[Incoming]) -> None:
    """Hold the batch's entities until the caller's transaction ends (one statement)."""
    keys = {(i.event.entity_kind, i.event.entity_id) for i in items}
    conn.execute(_LOCK_ENTITIES, {"kinds": [k for k, _ in keys], "ids": [i for _, i in keys]})


def store_batch(
    conn: Connection,
    items: list[Incoming],
    dead: list[DeadLetter],
    *,
    topic_label: str = "http",
) -> BatchResult:
    """Store a batch in the caller's transaction; returns what happened to each event."""
    result = BatchResult()
    if items:
        lock_entities(conn, items)
        new_keys, received = insert_events(conn, items)
        new_items: list[Incoming] = []
        for item in items:
            key = (item.event.source, item.event.id)
            label = (item.topic or topic_label, item.event.type)
            if key in new_keys:
                new_keys.discard(key)  # a second copy in the batch is a duplicate
                result.stored[label] += 1
                new_items.append(item)
            else:
                result.duplicate[label] += 1
        if new_items:
            result.oldest_received = received
            result.dirty_marks = _project(conn, new_items, received)
    if dead:
        _store_dead_letters(conn, dead)
        for d in dead:
            result.dead_letter[(d.topic or topic_label, d.event_type or "unknown")] += 1
    return result


def _store_dead_letters(conn: Connection, dead: list[DeadLetter]) -> None:
    conn.execute(
        insert(dead_letters).on_conflict_do_nothing(),
        [
            {
                "reason": d.reason,
                "raw": d.raw,
                "topic": d.topic,
                "partition": d.partition,
                "offset": d.offset,
                "event_source": d.source,
                "event_id": d.event_id,
                "event_type": d.event_type,
            }
            for d in dead
        ],
    )


def _project(conn: Connection, items: list[Incoming], received: datetime) -> int:
    """Re-fold every touched entity from its whole history, upsert, and mark windows dirty."""
    marks: dict[str, tuple[set[datetime], list[Span]]] = defaultdict(lambda: (set(), []))
    touched: dict[str, set[str]] = defaultdict(set)
    for item in items:
        ev = item.event
        marks[ev.entity_kind][0].add(ev.time)  # every event's own time (per-event facts)
        if ev.entity_kind == "measurement":
            continue
        touched[ev.entity_kind].add(ev.entity_id)

    facts = [i.event for i in items if i.event.entity_kind == "measurement"]
    if facts:
        marks["measurement"][1].extend(_store_measurements(conn, facts, received))

    old_rows = {
        kind: _old_rows(conn, PROJECTIONS[kind], sorted(ids)) for kind, ids in touched.items()
    }
    histories = _histories(conn, items, old_rows)
    for kind, ids in touched.items():
        proj = PROJECTIONS[kind]
        stamps, spans = marks[kind]
        new_rows = [proj.project(histories[(kind, eid)]) for eid in sorted(ids)]
        _upsert(conn, proj, new_rows, received)
        for row in new_rows:
            old = old_rows[kind].get(row[proj.key])
            for col in proj.stamps:
                stamps.update(v for v in (row[col], old[col] if old else None) if v is not None)
            moved = old is not None and any(old[d] != row[d] for d in proj.dims)
            for start, end in proj.spans:
                before = (old[start], old[end]) if old else None
                after = (row[start], row[end])
                if moved:  # counted under other dimensions: wherever it was and is
                    spans.extend(changed_spans(None, before, received))
                    spans.extend(changed_spans(None, after, received))
                else:
                    spans.extend(changed_spans(before, after, received))
            if proj.periods is not None:
                spans.extend(
                    moved_periods(proj.periods(old) if old else [], proj.periods(row), received)
                )
    return mark_dirty(conn, marks, received)


def _histories(
    conn: Connection, items: list[Incoming], old_rows: dict[str, dict[str, Any]]
) -> dict[tuple[str, str], list[Record]]:
    """Every touched entity's whole history. An entity with no row yet has no stored events
    before this batch, so its history is the batch's new events and needs no read."""
    histories: dict[tuple[str, str], list[Record]] = defaultdict(list)
    known = [(kind, eid) for kind, rows in old_rows.items() for eid in rows]
    if known:
        params = {"kinds": [k for k, _ in known], "ids": [i for _, i in known]}
        for r in conn.execute(_HISTORIES, params):
            histories[(r.entity_kind, r.entity_id)].append(
                Record(r.source, r.id, r.type, r.time, r.sequence, r.data)
            )
    for item in items:
        ev = item.event
        key = (ev.entity_kind, ev.entity_id)
        if ev.entity_kind != "measurement" and ev.entity_id not in old_rows[ev.entity_kind]:
            histories[key].append(Record(ev.source, ev.id, ev.type, ev.time, ev.sequence, ev.data))
    return histories


def _old_rows(conn: Connection, proj: Projection, ids: list[str]) -> dict[str, Any]:
    return {
        r._mapping[proj.key]: r._mapping for r in conn.execute(_old_rows_query(proj), {"ids": ids})
    }


@cache
def _old_rows_query(proj: Projection) -> Any:
    """What marking dirty windows compares, of the rows with these keys (one array parameter,
    whatever the batch's size)."""
    cols = {
        proj.key,
        *proj.stamps,
        *(c for span in proj.spans for c in span),
        *proj.dims,
        *proj.period_columns,
    }
    table = proj.table
    return select(*(table.c[c] for c in sorted(cols))).where(
        table.c[proj.key] == any_(bindparam("ids", type_=ARRAY(Text)))
    )


@cache
def _upsert_statement(table: Table, key: str) -> Any:
    # One statement per kind and batch: PostgreSQL maps the JSON rows onto the table's types.
    cols = [c.name for c in table.columns]
    quoted = ", ".join(f'"{c}"' for c in cols)
    updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in cols if c != key)
    return text(
        f"""
        INSERT INTO {table.name} ({quoted})
        SELECT {quoted} FROM jsonb_populate_recordset(NULL::{table.name}, CAST(:rows AS jsonb))
        ON CONFLICT ("{key}") DO UPDATE SET {updates}
        """
    )


def _upsert(
    conn: Connection, proj: Projection, rows: list[dict[str, Any]], received: datetime
) -> None:
    stamped = [{**row, "updated_at": received} for row in rows]
    conn.execute(_upsert_statement(proj.table, proj.key), {"rows": rows_json(stamped)})


def _store_measurements(conn: Connection, facts: list[Event], received: datetime) -> list[Span]:
    rows = [
        {
            "source": ev.source,
            "id": ev.id,
            "indicator": ev.data["indicator"],
            "service": ev.data.get("service"),
            "value": float(ev.data["value"]),
            "unit": ev.data.get("unit"),
            "period_start": datetime.fromisoformat(ev.data["period_start"]),
            "period_end": datetime.fromisoformat(ev.data["period_end"]),
            "recorded_at": ev.time,
        }
        for ev in facts
    ]
    conn.execute(insert(measurements).on_conflict_do_nothing(), rows)
    return [(r["period_start"], r["period_end"]) for r in rows]
