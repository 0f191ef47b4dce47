"""Pure projections: an entity's event history in, its current state out (no I/O)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


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
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))
