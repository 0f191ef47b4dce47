"""Batched writes for one consumed batch: events, projections, dirty marks and dead letters in
the caller's transaction, a handful of statements per batch whatever its size (SPEC §4)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select, text
from sqlalchemy.dialects.postgresql import insert

from services.aggregator.windows import windows_of, windows_overlapping
from services.collector.projections import Record
from services.collector.projections.registry import PROJECTIONS, Projection
from shared.db import dead_letters, dirty_windows, measurements
from shared.events import Event

Span = tuple[datetime, datetime]


@dataclass(frozen=True)
class Incoming:
    """A valid event and where it came from (topic/partition/offset are None for HTTP)."""

    event: Event
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None


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


_INSERT_EVENTS = text(
    """
    INSERT INTO events (source, id, type, time, subject, entity_kind, entity_id, sequence, data,
                        topic, partition, "offset")
    SELECT r->>'source', r->>'id', r->>'type', (r->>'time')::timestamptz, r->>'subject',
           r->>'entity_kind', r->>'entity_id', (r->>'sequence')::bigint, r->'data',
           r->>'topic', (r->>'partition')::int, (r->>'offset')::bigint
    FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS r
    ON CONFLICT (source, id) DO NOTHING
    RETURNING source, id, received_at
    """
)

_HISTORIES = text(
    """
    SELECT e.entity_kind, e.entity_id, e.source, e.id, e.type, e.time, e.sequence, e.data
    FROM unnest(CAST(:kinds AS text[]), CAST(:ids AS text[])) AS k(kind, entity_id)
    JOIN events e ON e.entity_kind = k.kind AND e.entity_id = k.entity_id
    """
)


def _event_row(item: Incoming) -> dict[str, Any]:
    ev = item.event
    return {
        "source": ev.source,
        "id": ev.id,
        "type": ev.type,
        "time": ev.time.isoformat(),
        "subject": ev.subject,
        "entity_kind": ev.entity_kind,
        "entity_id": ev.entity_id,
        "sequence": ev.sequence,
        "data": ev.data,
        "topic": item.topic,
        "partition": item.partition,
        "offset": item.offset,
    }


def store_batch(
    conn: Connection,
    items: list[Incoming],
    dead: list[DeadLetter],
    tz: ZoneInfo,
    *,
    topic_label: str = "http",
) -> BatchResult:
    """Store a batch in the caller's transaction; returns what happened to each event."""
    result = BatchResult()
    if items:
        inserted = conn.execute(
            _INSERT_EVENTS, {"rows": json.dumps([_event_row(i) for i in items])}
        ).all()
        new_keys = {(r.source, r.id): r.received_at for r in inserted}
        seen: set[tuple[str, str]] = set()
        new_items: list[Incoming] = []
        for item in items:
            key = (item.event.source, item.event.id)
            label = (item.topic or topic_label, item.event.type)
            if key in new_keys and key not in seen:
                result.stored[label] += 1
                new_items.append(item)
            else:
                result.duplicate[label] += 1
            seen.add(key)
        if new_items:
            received = min(new_keys.values())
            result.oldest_received = received
            result.dirty_marks = _project(conn, new_items, tz, received)
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


def _project(conn: Connection, items: list[Incoming], tz: ZoneInfo, received: datetime) -> int:
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

    pairs = [(kind, eid) for kind, ids in touched.items() for eid in sorted(ids)]
    histories: dict[tuple[str, str], list[Record]] = defaultdict(list)
    if pairs:
        rows = conn.execute(
            _HISTORIES, {"kinds": [k for k, _ in pairs], "ids": [i for _, i in pairs]}
        )
        for r in rows:
            histories[(r.entity_kind, r.entity_id)].append(
                Record(r.source, r.id, r.type, r.time, r.sequence, r.data)
            )
    for kind, ids in touched.items():
        proj = PROJECTIONS[kind]
        stamps, spans = marks[kind]
        new_rows = [proj.project(histories[(kind, eid)]) for eid in sorted(ids)]
        old_rows = _old_rows(conn, proj, sorted(ids))
        _upsert(conn, proj, new_rows, received)
        for row in new_rows:
            old = old_rows.get(row[proj.key])
            for col in proj.stamps:
                stamps.update(v for v in (row[col], old[col] if old else None) if v is not None)
            for start, end in proj.spans:
                before = (old[start], old[end]) if old else None
                spans.extend(changed_spans(before, (row[start], row[end]), received))
    return mark_dirty(conn, marks, tz, received)


def _old_rows(conn: Connection, proj: Projection, ids: list[str]) -> dict[str, Any]:
    cols = {proj.key, *proj.stamps, *(c for span in proj.spans for c in span)}
    table = proj.table
    query = select(*(table.c[c] for c in sorted(cols))).where(table.c[proj.key].in_(ids))
    return {r._mapping[proj.key]: r._mapping for r in conn.execute(query)}


def _upsert(
    conn: Connection, proj: Projection, rows: list[dict[str, Any]], received: datetime
) -> None:
    stmt = insert(proj.table)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[proj.table.c[proj.key]],
            set_={c.name: stmt.excluded[c.name] for c in proj.table.columns if c.name != proj.key},
        ),
        [{**row, "updated_at": received} for row in rows],
    )


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


def changed_spans(
    old: tuple[datetime | None, datetime | None] | None,
    new: tuple[datetime | None, datetime | None],
    now: datetime,
) -> list[Span]:
    """Where an interval changed: the ranges between its old and new bounds. Pure.

    An absent start means no interval; an absent end means open until `now`. A new interval
    changes everything it covers.
    """

    def bounds(span: tuple[datetime | None, datetime | None] | None) -> Span | None:
        if span is None or span[0] is None:
            return None
        return span[0], span[1] if span[1] is not None else max(now, span[0])

    a, b = bounds(old), bounds(new)
    if a == b:
        return []
    if a is None or b is None:
        return [s for s in (a, b) if s is not None]
    return [(min(a[0], b[0]), max(a[0], b[0])), (min(a[1], b[1]), max(a[1], b[1]))]


def mark_dirty(
    conn: Connection,
    marks: dict[str, tuple[set[datetime], list[Span]]],
    tz: ZoneInfo,
    received: datetime,
) -> int:
    """Insert one dirty mark per (scope, window) that a timestamp or a span touches."""
    windows: set[tuple[str, str, datetime]] = set()
    for scope, (stamps, spans) in marks.items():
        windows.update((scope, k, s) for ts in stamps for k, s in windows_of(ts, tz))
        for start, end in spans:
            windows.update((scope, k, s) for k, s in windows_overlapping(start, end, tz))
    if not windows:
        return 0
    conn.execute(
        insert(dirty_windows),
        [
            {"scope": scope, "window_kind": k, "window_start": s, "first_received_at": received}
            for scope, k, s in sorted(windows)
        ],
    )
    return len(windows)
