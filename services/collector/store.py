"""Batched writes for one consumed batch: events, projections, dirty marks and dead letters in
the caller's transaction, a handful of statements per batch whatever its size (SPEC §4)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select, text
from sqlalchemy.dialects.postgresql import insert

from services.aggregator.windows import windows_of
from services.collector.projections import Record
from services.collector.projections.tickets import project_ticket
from shared.db import dead_letters, dirty_windows, tickets
from shared.events import Event


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

_TICKET_HISTORY = text(
    """
    SELECT entity_id, source, id, type, time, sequence, data FROM events
    WHERE entity_kind = 'ticket' AND entity_id = ANY(:ids)
    """
)

# Timestamps of a ticket that place it in indicator windows.
_WINDOW_FIELDS = ("opened_at", "responded_at", "resolved_at", "closed_at")


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
        rows = [_event_row(i) for i in items]
        inserted = conn.execute(_INSERT_EVENTS, {"rows": json.dumps(rows)}).all()
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
        received = min(new_keys.values()) if new_keys else None
        ticket_ids = sorted(
            {i.event.entity_id for i in new_items if i.event.entity_kind == "ticket"}
        )
        if ticket_ids and received is not None:
            result.dirty_marks += _project_tickets(conn, ticket_ids, tz, received)
    if dead:
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
        for d in dead:
            result.dead_letter[(d.topic or topic_label, d.event_type or "unknown")] += 1
    return result


def _project_tickets(conn: Connection, ids: list[str], tz: ZoneInfo, received: datetime) -> int:
    """Re-fold the touched tickets from their full history, upsert, and mark windows dirty."""
    histories: dict[str, list[Record]] = {}
    for r in conn.execute(_TICKET_HISTORY, {"ids": ids}):
        histories.setdefault(r.entity_id, []).append(
            Record(r.source, r.id, r.type, r.time, r.sequence, r.data)
        )
    old = {
        r.ticket_id: r
        for r in conn.execute(
            select(tickets.c.ticket_id, *(tickets.c[f] for f in _WINDOW_FIELDS)).where(
                tickets.c.ticket_id.in_(ids)
            )
        )
    }
    rows = [project_ticket(histories[tid]) for tid in ids]
    stmt = insert(tickets)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[tickets.c.ticket_id],
            set_={c.name: stmt.excluded[c.name] for c in tickets.columns if c.name != "ticket_id"},
        ),
        [{**row, "updated_at": received} for row in rows],
    )
    stamps: set[datetime] = set()
    for row in rows:
        prev = old.get(row["ticket_id"])
        for f in _WINDOW_FIELDS:
            # Old values too: a late event that moves a resolution empties the old window.
            for value in (row[f], getattr(prev, f, None)):
                if value is not None:
                    stamps.add(value)
    return mark_dirty(conn, "ticket", stamps, tz, received)


def mark_dirty(
    conn: Connection, scope: str, stamps: set[datetime], tz: ZoneInfo, received: datetime
) -> int:
    windows = {w for ts in stamps for w in windows_of(ts, tz)}
    if not windows:
        return 0
    conn.execute(
        insert(dirty_windows),
        [
            {"scope": scope, "window_kind": k, "window_start": s, "first_received_at": received}
            for k, s in sorted(windows)
        ],
    )
    return len(windows)
