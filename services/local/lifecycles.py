"""One simulated entity's life as timed snapshots: a ticket (SPEC §3.1) and a change (§3.2).
Pure: seeded random in, (seconds after the start, event type, data) out."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.local.company import GROUPS

Step = tuple[float, str, dict[str, Any]]
PRIORITY_WEIGHTS = {1: 2, 2: 10, 3: 48, 4: 40}
KIND_WEIGHTS = {"incident": 70, "service_request": 27, "problem": 3}
CHANNELS = ["portal", "email", "phone", "chat", "monitoring"]
CHANGE_TYPES = {"standard": 60, "normal": 32, "emergency": 8}
OUTCOMES = {  # change type → outcome weights: emergencies fail more often
    "standard": {"successful": 95, "failed": 2, "rolled_back": 2, "partially_successful": 1},
    "normal": {"successful": 88, "failed": 4, "rolled_back": 5, "partially_successful": 3},
    "emergency": {"successful": 72, "failed": 10, "rolled_back": 12, "partially_successful": 6},
}


def pick(rng: random.Random, weights: dict[Any, int]) -> Any:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


@dataclass
class Ticket:
    """What a ticket is opened with; `work` stretches its working time (long-running ones),
    `backdate` is how long before its first event it was opened (recorded late)."""

    ticket_id: str
    service: str
    kind: str = "incident"
    priority: int = 3
    channel: str = "portal"
    ci_ids: tuple[str, ...] = ()
    caused_by_change_id: str | None = None
    problem_id: str | None = None
    knowledge_article_ids: tuple[str, ...] = ()
    work: float = 0.0
    backdate: float = 0.0


def ticket_steps(
    rng: random.Random, t: Ticket, start: datetime, at: float, scale: float = 1.0
) -> list[Step]:
    """A ticket's life from `at`: assignment, work, the odd reassignment, pause, cancellation
    and reopen, resolution and closure. Compressed to minutes (`scale` stretches them), except
    `work` and `backdate`."""
    base = _opening(rng, t, start, at)
    speed = {1: 0.3, 2: 0.6, 3: 1.0, 4: 1.5}[t.priority] * scale

    def wait(low: float, high: float) -> float:
        return rng.uniform(low, high) * scale

    steps: list[Step] = [(at, "itsm.ticket.created", {**base, "state": "new"})]
    now = at + rng.uniform(1, 15) * speed
    group = rng.choice(GROUPS)
    steps.append(
        (now, "itsm.ticket.updated", {**base, "state": "assigned", "assignment_group": group})
    )
    if rng.random() < 0.15:  # dispatched to the wrong team first
        now += wait(2, 20)
        group = rng.choice([g for g in GROUPS if g != group])
        steps.append(
            (now, "itsm.ticket.updated", {**base, "state": "assigned", "assignment_group": group})
        )
    base["assignment_group"] = group
    if rng.random() < 0.02:  # a duplicate, or the caller withdrew it
        steps.append((now + wait(5, 60), "itsm.ticket.cancelled", {**base, "state": "cancelled"}))
        return _sequenced(steps)
    now += wait(1, 10)
    steps.append((now, "itsm.ticket.updated", {**base, "state": "in_progress"}))
    if rng.random() < 0.2:  # waiting for the caller
        now += wait(5, 30)
        steps.append((now, "itsm.ticket.updated", {**base, "state": "pending"}))
        now += wait(10, 60)
        steps.append((now, "itsm.ticket.updated", {**base, "state": "in_progress"}))
    now += rng.expovariate(1 / 60) * speed + 5 * scale + t.work
    if t.knowledge_article_ids:
        base["knowledge_article_ids"] = list(t.knowledge_article_ids)
    if t.problem_id:
        base["problem_id"] = t.problem_id
    steps.append((now, "itsm.ticket.resolved", {**base, "state": "resolved"}))
    if rng.random() < 0.05:  # the fix did not hold
        now += wait(10, 60)
        steps.append((now, "itsm.ticket.reopened", {**base, "state": "in_progress"}))
        now += wait(20, 90)
        steps.append((now, "itsm.ticket.resolved", {**base, "state": "resolved"}))
    now += wait(30, 120)
    steps.append((now, "itsm.ticket.closed", {**base, "state": "closed"}))
    return _sequenced(steps)


def _opening(rng: random.Random, t: Ticket, start: datetime, at: float) -> dict[str, Any]:
    """The fields a ticket keeps all its life."""
    base: dict[str, Any] = {
        "ticket_id": t.ticket_id,
        "kind": t.kind,
        "service": t.service,
        "priority": t.priority,
        "channel": t.channel,
        "major": t.priority == 1 and rng.random() < 0.3,
    }
    if t.ci_ids:
        base["ci_ids"] = list(t.ci_ids)
    if t.caused_by_change_id:
        base["caused_by_change_id"] = t.caused_by_change_id
    if t.backdate:
        base["opened_at"] = (start + timedelta(seconds=at - t.backdate)).isoformat()
    return base


@dataclass
class Change:
    change_id: str
    service: str
    ci_ids: tuple[str, ...]


@dataclass
class ChangeOutcome:
    """What the simulation needs to know of an implemented change; None when rejected."""

    implemented_at: float
    outcome: str


def change_steps(
    rng: random.Random, c: Change, start: datetime, at: float, scale: float = 1.0
) -> tuple[list[Step], ChangeOutcome | None]:
    """A change from request to closure (SPEC §3.2): standard ones pre-approved, normal ones
    through the CAB (a few rejected), emergency ones fast and riskier. Compressed to minutes
    (`scale` stretches them)."""

    def wait(low: float, high: float) -> float:
        return rng.uniform(low, high) * scale

    change_type = pick(rng, CHANGE_TYPES)
    risk = {
        "standard": "low",
        "normal": rng.choice(["low", "medium", "high"]),
        "emergency": rng.choice(["medium", "high"]),
    }[change_type]

    def ts(seconds: float) -> str:
        return (start + timedelta(seconds=seconds)).isoformat()

    data: dict[str, Any] = {
        "change_id": c.change_id,
        "change_type": change_type,
        "service": c.service,
        "ci_ids": list(c.ci_ids),
        "risk": risk,
        "requested_at": ts(at),
    }
    steps: list[Step] = [(at, "itsm.change.requested", {**data, "state": "requested"})]
    if change_type == "normal" and rng.random() < 0.08:
        steps.append((at + wait(30, 300), "itsm.change.rejected", {**data, "state": "rejected"}))
        return _sequenced(steps), None
    lag = {"standard": (0, 5), "normal": (30, 300), "emergency": (5, 30)}[change_type]
    now = at + wait(*lag)
    data["approved_at"] = ts(now)
    steps.append((now, "itsm.change.approved", {**data, "state": "approved"}))
    now += wait(5, 60)
    planned_start = now + (wait(5, 30) if change_type == "emergency" else wait(30, 300))
    planned = wait(60, 600)
    data |= {"planned_start": ts(planned_start), "planned_end": ts(planned_start + planned)}
    steps.append((now, "itsm.change.scheduled", {**data, "state": "scheduled"}))
    actual_start = planned_start + wait(0, 30)
    actual_end = actual_start + planned * rng.uniform(0.6, 1.2)
    outcome = pick(rng, OUTCOMES[change_type])
    data |= {"actual_start": ts(actual_start), "actual_end": ts(actual_end), "outcome": outcome}
    steps.append((actual_end, "itsm.change.implemented", {**data, "state": "implemented"}))
    steps.append((actual_end + wait(60, 600), "itsm.change.closed", {**data, "state": "closed"}))
    return _sequenced(steps), ChangeOutcome(actual_end, outcome)


def _sequenced(steps: list[Step]) -> list[Step]:
    """Number an entity's snapshots in order (SPEC §3: `sequence` orders them)."""
    return [(at, etype, {**data, "sequence": n}) for n, (at, etype, data) in enumerate(steps, 1)]
