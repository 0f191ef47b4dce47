"""Change projection (SPEC §3.2)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.collector.projections import Record, bookkeeping, first_time, fold, parse_ts, verb


def project_change(history: Iterable[Record]) -> dict[str, Any]:
    events, snap = fold(history)
    # The state is the source's when it sends one, else the verb of the latest event.
    state = snap.get("state") or verb(events[-1].type)
    approved_at = parse_ts(snap.get("approved_at")) or first_time(events, "approved")
    rejected_at = first_time(events, "rejected")
    actual_end = parse_ts(snap.get("actual_end"))
    implemented_event = first_time(events, "implemented")
    # Implemented: the source said so, or it reports when the work ended or how it went.
    was_implemented = (
        implemented_event is not None
        or snap.get("outcome") is not None
        or (state in ("implemented", "closed") and actual_end is not None)
    )
    return {
        "change_id": snap["change_id"],
        "change_type": snap.get("change_type"),
        "service": snap.get("service"),
        "ci_ids": list(snap.get("ci_ids") or []),
        "risk": snap.get("risk"),
        "state": state,
        "requested_at": parse_ts(snap.get("requested_at"))
        or first_time(events, "requested")
        or events[0].time,
        "approved_at": approved_at,
        "rejected_at": rejected_at,
        "planned_start": parse_ts(snap.get("planned_start")),
        "planned_end": parse_ts(snap.get("planned_end")),
        "actual_start": parse_ts(snap.get("actual_start")),
        "actual_end": actual_end,
        # Placed in its window by when the work ended, else by when the source said so.
        "implemented_at": (actual_end or implemented_event or events[-1].time)
        if was_implemented
        else None,
        "outcome": snap.get("outcome"),
        "release_id": snap.get("release_id"),
        "approved": approved_at is not None and state != "rejected",
        **bookkeeping(events, snap),
    }
