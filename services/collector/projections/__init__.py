"""Pure projections: an entity's event history in, its current state out (no I/O)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, TypeAdapter

_TIMESTAMP: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)


@dataclass(frozen=True)
class Record:
    """One stored event of an entity, as the projections see it."""

    source: str
    id: str
    type: str
    time: datetime
    sequence: int | None
    data: dict[str, Any]


def ordered(records: Iterable[Record]) -> list[Record]:
    """SPEC §3 ordering: by `sequence` when the source sends one, else by `time`.

    Ties (and the arrival order the spec falls back to) are broken by (source, id) instead, so
    that the same set of events gives the same state whatever order it arrived in.
    """
    recs = list(records)
    if recs and all(r.sequence is not None for r in recs):
        return sorted(recs, key=lambda r: (r.sequence, r.time, r.source, r.id))
    return sorted(
        recs,
        key=lambda r: (r.time, r.sequence if r.sequence is not None else -1, r.source, r.id),
    )


def merge(snapshot: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Partial snapshot merge: absent keeps, present overwrites, `null` clears (kept as None)."""
    return {**snapshot, **data}


def parse_ts(value: Any) -> datetime | None:
    """A validated timestamp of an event's data (RFC 3339 text) as a datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:  # a spelling pydantic accepted and fromisoformat does not
        return _TIMESTAMP.validate_python(value)


def verb(event_type: str) -> str:
    """`itsm.change.approved` → `approved`."""
    return event_type.rsplit(".", 1)[-1]


def fold(history: Iterable[Record]) -> tuple[list[Record], dict[str, Any]]:
    """Order a history and merge its snapshots: (ordered events, merged snapshot)."""
    events = ordered(history)
    if not events:
        raise ValueError("a projection needs at least one event")
    snap: dict[str, Any] = {}
    for ev in events:
        snap = merge(snap, ev.data)
    return events, snap


def first_time(events: list[Record], *verbs: str) -> datetime | None:
    """Time of the first event of one of these verbs, in entity order."""
    return next((e.time for e in events if verb(e.type) in verbs), None)


def last_time(events: list[Record], *verbs: str) -> datetime | None:
    return next((e.time for e in reversed(events) if verb(e.type) in verbs), None)


def bookkeeping(events: list[Record], snap: dict[str, Any]) -> dict[str, Any]:
    """The columns every entity projection carries."""
    return {
        "sequence": max((e.sequence for e in events if e.sequence is not None), default=None),
        "last_event_time": events[-1].time,
        "event_count": len(events),
        "snapshot": snap,
    }
