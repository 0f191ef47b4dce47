"""Monitoring alert (as an interval) and registered check projections (SPEC §3.4)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.collector.projections import (
    Record,
    bookkeeping,
    first_time,
    fold,
    last_time,
    parse_ts,
    verb,
)


def project_alert(history: Iterable[Record]) -> dict[str, Any]:
    events, snap = fold(history)
    state = "resolved" if verb(events[-1].type) == "resolved" else "firing"
    severity = snap.get("severity")
    outage = snap.get("outage")
    started = parse_ts(snap.get("started_at")) or first_time(events, "firing") or events[0].time
    ended = None
    if state == "resolved":
        ended = parse_ts(snap.get("ended_at")) or last_time(events, "resolved")
        if ended is not None and ended < started:
            ended = started  # a clock skew must not make a negative interval
    return {
        "alert_id": snap["alert_id"],
        "ci_id": snap.get("ci_id"),
        "service": snap.get("service"),
        "check": snap.get("check"),
        "severity": severity,
        # SPEC §3.4: the CI is down while a critical alert fires, unless the source says not.
        "outage": bool(outage) if outage is not None else severity == "critical",
        "threshold": snap.get("threshold"),
        "value": snap.get("value"),
        "state": state,
        "started_at": started,
        "ended_at": ended,
        **bookkeeping(events, snap),
    }


def project_check(history: Iterable[Record]) -> dict[str, Any]:
    events, snap = fold(history)
    removed = verb(events[-1].type) == "removed"
    return {
        "check_id": snap["check_id"],
        "ci_id": snap.get("ci_id"),
        "metric": snap.get("metric"),
        "threshold": snap.get("threshold"),
        "registered_at": first_time(events, "registered") or events[0].time,
        "removed_at": events[-1].time if removed else None,
        **bookkeeping(events, snap),
    }
