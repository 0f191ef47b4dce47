"""Ticket projection (SPEC §3.1): merged snapshot plus the derived facts the indicators use."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from services.collector.projections import Record, bookkeeping, merge, ordered, parse_ts

OPEN_STATES = frozenset({"new", "assigned", "in_progress", "pending"})
DONE_STATES = frozenset({"resolved", "closed"})


def project_ticket(history: Iterable[Record]) -> dict[str, Any]:
    """Fold a ticket's whole event history (any arrival order) into its projection row."""
    events = ordered(history)
    if not events:
        raise ValueError("a ticket projection needs at least one event")
    snap: dict[str, Any] = {}
    prev_state: str | None = None
    responded_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    reopens = 0
    reassignments = 0
    group: str | None = None
    pending_since: datetime | None = None
    paused = 0.0
    transitions: list[tuple[datetime, str]] = []  # (time, state) at every change of state

    for ev in events:
        snap = merge(snap, ev.data)
        state = snap["state"]
        t = ev.time
        if responded_at is None and state != "new":
            responded_at = t  # first transition out of `new`
        if state != prev_state:
            transitions.append((t, state))
            if state == "resolved" or (state == "closed" and prev_state != "resolved"):
                resolved_at = t  # latest transition into resolved (or closed without resolved)
            if state == "closed":
                closed_at = t
            if prev_state in DONE_STATES and state in OPEN_STATES:
                reopens += 1
            if prev_state == "pending" and pending_since is not None:
                paused += max(0.0, (t - pending_since).total_seconds())
                pending_since = None
            if state == "pending":
                pending_since = t
        new_group = snap.get("assignment_group")
        if new_group:
            if group is not None and new_group != group:
                reassignments += 1  # a change after the first non-empty group
            group = new_group
        prev_state = state

    state = snap["state"]
    done = state in DONE_STATES
    explicit_resolved = parse_ts(snap.get("resolved_at"))
    explicit_closed = parse_ts(snap.get("closed_at"))
    return {
        "ticket_id": snap["ticket_id"],
        "kind": snap.get("kind") or "incident",
        "state": state,
        "service": snap.get("service"),
        "priority": snap.get("priority"),
        "impact": snap.get("impact"),
        "urgency": snap.get("urgency"),
        "channel": snap.get("channel"),
        "assignment_group": snap.get("assignment_group"),
        "assignee": snap.get("assignee"),
        "ci_ids": list(snap.get("ci_ids") or []),
        "opened_at": parse_ts(snap.get("opened_at")) or events[0].time,
        "responded_at": parse_ts(snap.get("responded_at")) or responded_at,
        # A reopened ticket that is open again has no resolution time until it resolves again.
        "resolved_at": (explicit_resolved or resolved_at) if done else None,
        "closed_at": (explicit_closed or closed_at) if state == "closed" else None,
        "major": bool(snap.get("major") or False),
        "problem_id": snap.get("problem_id"),
        "caused_by_change_id": snap.get("caused_by_change_id"),
        "knowledge_article_ids": list(snap.get("knowledge_article_ids") or []),
        "reassignments": _count(snap.get("reassignment_count"), reassignments),
        "reopens": _count(snap.get("reopen_count"), reopens),
        "paused_seconds": paused,
        # For the SLA clock, whose pause states are the policy's (SPEC §6.2).
        "transitions": [[when.isoformat(), st] for when, st in transitions],
        "open_periods": multirange(open_periods(transitions)),
        "first_contact_resolution": snap.get("first_contact_resolution"),
        **bookkeeping(events, snap),
    }


def _count(source_value: Any, derived: int) -> int:
    # SPEC §3.1: source counters, when present, are used instead of derived counts.
    return int(source_value) if source_value is not None else derived


def open_periods(
    transitions: list[tuple[datetime, str]],
) -> list[tuple[datetime, datetime | None]]:
    """The intervals a ticket spent in an open state (SPEC §3.1); the last one open-ended while
    the ticket is open."""
    periods: list[tuple[datetime, datetime | None]] = []
    since: datetime | None = None
    for when, state in transitions:
        if state in OPEN_STATES and since is None:
            since = when
        elif state not in OPEN_STATES and since is not None:
            if when > since:
                periods.append((since, when))
            since = None
    if since is not None:
        periods.append((since, None))
    return periods


def multirange(periods: list[tuple[datetime, datetime | None]]) -> str:
    """PostgreSQL's text form of a tstzmultirange, e.g. `{["…","…"),["…",)}`."""

    def bound(ts: datetime | None) -> str:
        return f'"{ts.isoformat()}"' if ts is not None else ""  # empty: unbounded

    return "{" + ",".join(f"[{bound(start)},{bound(end)})" for start, end in periods) + "}"
