"""Realistic CloudEvents (SPEC §3) from the seeded world: tickets with lifecycles, and the
changes, alerts, calls, surveys and CIs around them. Every generator yields
(topic suffix, key, event) in time order; `mixed_events` merges them into one stream."""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks import realistic_world as rw

Emitted = tuple[str, str, dict[str, Any]]  # (topic suffix, key, CloudEvent)
_Timed = tuple[float, str, str, dict[str, Any]]  # (epoch, topic suffix, key, CloudEvent)

SOURCES = {
    "tickets": "servicenow://bench-prod",
    "changes": "servicenow://bench-prod",
    "config": "cmdb://bench-discovery",
    "monitoring": "alertmanager://bench",
    "servicedesk": "acd://bench-telephony",
    "feedback": "survey://bench",
}
KIND_PREFIX = {"incident": "INC", "service_request": "REQ", "problem": "PRB"}


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def ticket_number(prefix: str, start: datetime, number: int) -> str:
    """`INC2610` + 7 digits: months never collide (SQL spells it the same way)."""
    return f"{prefix}{start:%y%m}{number:07d}"


def _event(suffix: str, etype: str, eid: str, epoch: float, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": eid,
        "source": SOURCES[suffix],
        "type": etype,
        "time": iso(epoch),
        "data": data,
    }


def _normal(rng: random.Random) -> float:
    return rng.gauss(0.0, 1.0)


def _pick(rng: random.Random, weights: dict[Any, float]) -> Any:
    return list(weights)[rw.pick(rw.cdf(weights), rng.random())]


# --- tickets -------------------------------------------------------------------------------------


@dataclass
class _Lifecycle:
    """One ticket's life as (epoch, verb, state, fields that change) steps, cut at `as_of`."""

    ticket_id: str
    base: dict[str, Any]
    steps: list[tuple[float, str, str, dict[str, Any]]] = field(default_factory=list)
    resolved_at: float | None = None  # the final resolution, when before as_of


def _ticket(
    rng: random.Random,
    w: rw.World,
    opened: float,
    number: int,
    month: datetime,
    n_changes: int,
    problems: list[str],
    as_of: float,
) -> _Lifecycle:
    kind = _pick(rng, rw.KIND_WEIGHTS)
    priority = _pick(rng, rw.PRIORITY_WEIGHTS)
    impact, urgency = rng.choice(rw.IMPACT_URGENCY[priority])
    service = rw.pick(w.service_cdf, rng.random())
    group0 = rw.pick(w.group_cdf, rng.random())
    tid = ticket_number(KIND_PREFIX[kind], month, number)
    cis = w.service_cis[service]
    n_cis = _pick(rng, rw.CI_COUNT_WEIGHTS)
    first = rng.randrange(len(cis))
    ci_ids = [rw.ci_id(cis[(first + k) % len(cis)]) for k in range(n_cis)]
    incident = kind == "incident"
    base: dict[str, Any] = {
        "ticket_id": tid,
        "kind": kind,
        "service": w.services[service],
        "ci_ids": ci_ids,
        "priority": priority,
        "impact": impact,
        "urgency": urgency,
        "channel": _pick(rng, rw.CHANNEL_WEIGHTS),
        "assignment_group": w.groups[group0],
        "opened_at": iso(opened),
        "major": incident and rng.random() < rw.MAJOR.get(priority, 0.0),
    }
    if incident and problems and rng.random() < rw.PROBLEM_LINKED:
        base["problem_id"] = rng.choice(problems)
    if incident and rng.random() < rw.CAUSED_BY_CHANGE:
        base["caused_by_change_id"] = change_number(month, 1 + rng.randrange(n_changes))
    if kind == "problem":
        problems.append(tid)

    quick = kind != "problem" and rng.random() < rw.QUICK_FIX
    if quick:
        resp = rng.randint(*rw.QUICK_RESPONSE_S)
        work = rng.randint(*rw.QUICK_WORK_S)
    else:
        resp = max(
            30,
            round(rw.lognormal_s(rw.RESPONSE_MEDIAN_S[priority], rw.RESPONSE_SIGMA, _normal(rng))),
        )
        median = rw.WORK_MEDIAN_S[priority] * rw.KIND_WORK_FACTOR[kind]
        work = round(rw.lognormal_s(median, rw.WORK_SIGMA, _normal(rng)))
        work = min(max(work, rw.WORK_BOUNDS_S[0]), rw.WORK_BOUNDS_S[1])
    reassigned = not quick and rng.random() < rw.REASSIGNED / rw.NON_QUICK
    pending = not quick and rng.random() < rw.PENDING / rw.NON_QUICK
    cancelled = not quick and rng.random() < rw.CANCELLED / rw.NON_QUICK
    reopened = not cancelled and rng.random() < rw.REOPENED
    articles = []
    if kind != "problem" and not cancelled and rng.random() < rw.KNOWLEDGE_USED:
        articles.append(rw.article_id(1 + rng.randrange(rw.N_ARTICLES)))
        if rng.random() < rw.SECOND_ARTICLE:
            articles.append(rw.article_id(1 + rng.randrange(rw.N_ARTICLES)))
    eng0 = rw.engineer_id(w.group_member(group0, rng.random()))

    life = _Lifecycle(tid, base)
    t_resp = opened + resp
    steps = life.steps
    steps.append((opened, "created", "new", {}))
    steps.append((t_resp, "updated", "assigned", {"assignee": eng0}))
    if reassigned:
        group1 = (group0 + 1 + rng.randrange(rw.N_GROUPS - 1)) % rw.N_GROUPS
        eng1 = rw.engineer_id(w.group_member(group1, rng.random()))
        steps.append(
            (
                t_resp + max(1, int(work * rw.REASSIGN_AT)),
                "updated",
                "assigned",
                {"assignment_group": w.groups[group1], "assignee": eng1},
            )
        )
    if pending:
        steps.append((t_resp + int(work * rw.PENDING_FROM), "updated", "pending", {}))
        steps.append((t_resp + int(work * rw.PENDING_TO), "updated", "in_progress", {}))
    t_res = t_resp + work
    done = {"knowledge_article_ids": articles} if articles else {}
    if cancelled:
        steps.append((t_res, "cancelled", "cancelled", {}))
    else:
        steps.append((t_res, "resolved", "resolved", done))
        if reopened:
            t_reop = t_res + max(
                60,
                round(
                    rw.lognormal_s(rw.REOPEN_AFTER_MEDIAN_S, rw.REOPEN_AFTER_SIGMA, _normal(rng))
                ),
            )
            t_res = t_reop + max(
                60, round(rw.lognormal_s(rw.REWORK_MEDIAN_S, rw.REWORK_SIGMA, _normal(rng)))
            )
            steps.append((t_reop, "reopened", "in_progress", {}))
            steps.append((t_res, "resolved", "resolved", {}))
        if rng.random() < rw.CONFIRMED:
            close = max(
                60, round(rw.lognormal_s(rw.CONFIRM_MEDIAN_S, rw.CONFIRM_SIGMA, _normal(rng)))
            )
        else:
            close = rw.AUTO_CLOSE_S
        steps.append((t_res + close, "closed", "closed", {}))
    life.steps = [s for s in steps if s[0] < as_of]
    if life.steps[-1][2] in ("resolved", "closed"):  # the latest resolution (SPEC §3.1)
        life.resolved_at = max(s[0] for s in life.steps if s[2] == "resolved")
    return life


def _ticket_events(life: _Lifecycle) -> list[_Timed]:
    """Full snapshots (SPEC §3: events are snapshots), fields absent until known."""
    out: list[_Timed] = []
    snap = {k: v for k, v in life.base.items() if v is not None and v != []}
    for k, (epoch, verb, state, changes) in enumerate(life.steps, start=1):
        snap = {**snap, **changes, "state": state, "sequence": k}
        event = _event("tickets", f"itsm.ticket.{verb}", f"{life.ticket_id}-{k}", epoch, snap)
        out.append((epoch, "tickets", life.ticket_id, event))
    return out


def _related(rng: random.Random, life: _Lifecycle, as_of: float) -> list[_Timed]:
    """The call that logged a phone ticket, and the survey after a resolution."""
    out: list[_Timed] = []
    opened = life.steps[0][0]
    if life.base["channel"] == "phone":
        call_id = f"CALL{life.ticket_id}"
        data = {
            "call_id": call_id,
            "answered": True,
            "wait_seconds": round(rw.lognormal_s(rw.WAIT_MEDIAN_S, rw.WAIT_SIGMA, _normal(rng))),
            "handle_seconds": round(
                rw.lognormal_s(rw.HANDLE_MEDIAN_S, rw.HANDLE_SIGMA, _normal(rng))
            ),
            "ticket_id": life.ticket_id,
            "agent": rw.engineer_id(rng.randrange(rw.N_ENGINEERS)),
        }
        at = opened + rng.randrange(60)
        if at < as_of:
            ev = _event("servicedesk", "itsm.servicedesk.call.completed", call_id, at, data)
            out.append((at, "servicedesk", call_id, ev))
    if life.resolved_at is not None and rng.random() < rw.SURVEYED:
        at = life.resolved_at + round(
            rw.lognormal_s(rw.SURVEY_AFTER_MEDIAN_S, rw.SURVEY_AFTER_SIGMA, _normal(rng))
        )
        sid = f"SRV{life.ticket_id}"
        data = {
            "survey_id": sid,
            "ticket_id": life.ticket_id,
            "service": life.base["service"],
            "score": _pick(rng, rw.SCORE_WEIGHTS),
        }
        if at < as_of:
            out.append(
                (
                    at,
                    "feedback",
                    sid,
                    _event("feedback", "itsm.feedback.survey.completed", sid, at, data),
                )
            )
    return out


def _ticket_stream(
    n_tickets: int, start: datetime, end: datetime, seed: int, related: bool
) -> Iterator[Emitted]:
    w = rw.world(seed)
    rng = random.Random(f"tickets-{seed}-{start.isoformat()}")
    arr = rw.arrivals(start, end)
    opened = sorted(arr.at(rng.random(), rng.random()) for _ in range(n_tickets))
    n_changes = max(1, round(n_tickets * rw.CHANGES_PER_TICKET))
    problems: list[str] = []
    as_of = end.timestamp()

    def lives() -> Iterator[tuple[float, list[_Timed]]]:
        for number, t in enumerate(opened, start=1):
            if related:
                yield t, ticket(rng, w, t, number, start, n_changes, problems, as_of)
            else:
                life = _ticket(rng, w, t, number, start, n_changes, problems, as_of)
                yield t, _ticket_events(life)

    return _in_time_order(lives())


def ticket(
    rng: random.Random,
    w: rw.World,
    opened: float,
    number: int,
    month: datetime,
    n_changes: int,
    problems: list[str],
    as_of: float,
) -> list[_Timed]:
    """One ticket opened at `opened`: its lifecycle's events, the call that logged it (phone)
    and the survey after its resolution, all cut at `as_of`."""
    life = _ticket(rng, w, opened, number, month, n_changes, problems, as_of)
    return _ticket_events(life) + _related(rng, life, as_of)


def _in_time_order(entities: Iterable[tuple[float, list[_Timed]]]) -> Iterator[Emitted]:
    """Entities in order of their first instant, each with its events: one stream in time
    order, holding only the events of entities still in flight."""
    heap: list[tuple[float, int, str, str, dict[str, Any]]] = []
    counter = itertools.count()
    for first, events in entities:
        while heap and heap[0][0] <= first:
            _, _, suffix, key, ev = heapq.heappop(heap)
            yield suffix, key, ev
        for epoch, suffix, key, ev in events:
            heapq.heappush(heap, (epoch, next(counter), suffix, key, ev))
    while heap:
        _, _, suffix, key, ev = heapq.heappop(heap)
        yield suffix, key, ev


def ticket_events(
    n_tickets: int, start: datetime, end: datetime, seed: int = 1
) -> Iterator[Emitted]:
    """~4 events per ticket (created, assigned, maybe reassigned, paused or reopened, resolved,
    closed), openings spread over [start, end) with business-hour and weekday seasonality,
    lifecycles cut at `end`; in time order. Keys are ticket ids."""
    return _ticket_stream(n_tickets, start, end, seed, related=False)


# --- changes, alerts, calls, CIs -----------------------------------------------------------------


def change_number(month: datetime, number: int) -> str:
    return f"CHG{month:%y%m}{number:06d}"


def change_events(
    n_changes: int, start: datetime, end: datetime, seed: int = 1
) -> Iterator[Emitted]:
    """Changes requested over [start, end): approved (standard ones at once), implemented at
    their planned start with an outcome, closed a day later; some rejected. Cut at `end`."""
    w = rw.world(seed)
    rng = random.Random(f"changes-{seed}-{start.isoformat()}")
    arr = rw.arrivals(start, end)
    requested = sorted(arr.at(rng.random(), rng.random()) for _ in range(n_changes))
    as_of = end.timestamp()

    def lives() -> Iterator[tuple[float, list[_Timed]]]:
        for number, t in enumerate(requested, start=1):
            yield t, change(rng, w, t, change_number(start, number), as_of)

    return _in_time_order(lives())


def change(rng: random.Random, w: rw.World, t: float, cid: str, as_of: float) -> list[_Timed]:
    """One change requested at `t`: approved (standard ones at once) or rejected, implemented
    at its planned start with an outcome, closed a day later; cut at `as_of`."""
    ctype = _pick(rng, rw.CHANGE_TYPE_WEIGHTS)
    service = rw.pick(w.service_cdf, rng.random())
    cis = w.service_cis[service]
    first = rng.randrange(len(cis))
    n_cis = _pick(rng, rw.CHANGE_CI_WEIGHTS)
    data: dict[str, Any] = {
        "change_id": cid,
        "change_type": ctype,
        "service": w.services[service],
        "ci_ids": [rw.ci_id(cis[(first + k) % len(cis)]) for k in range(min(n_cis, len(cis)))],
        "risk": _pick(rng, rw.RISK_WEIGHTS),
        "requested_at": iso(t),
    }
    if ctype == "normal" and rng.random() < rw.IN_RELEASE:
        data["release_id"] = f"REL-{datetime.fromtimestamp(t, UTC):%y%m}-{1 + rng.randrange(12)}"
    approve = t + max(
        60, round(rw.lognormal_s(rw.APPROVAL_MEDIAN_S[ctype], rw.APPROVAL_SIGMA, _normal(rng)))
    )
    rejected = ctype == "normal" and rng.random() < rw.REJECTED
    planned_start = approve + round(
        rw.lognormal_s(rw.LEAD_MEDIAN_S[ctype], rw.LEAD_SIGMA, _normal(rng))
    )
    planned_end = planned_start + max(
        600,
        round(rw.lognormal_s(rw.CHANGE_DURATION_MEDIAN_S, rw.CHANGE_DURATION_SIGMA, _normal(rng))),
    )
    actual_start = planned_start + rng.randrange(900)
    actual_end = actual_start + round((planned_end - planned_start) * rng.uniform(0.7, 1.3))
    outcome = _pick(rng, rw.OUTCOME_WEIGHTS)
    steps: list[tuple[float, str, dict[str, Any]]] = [(t, "requested", {})]
    if rejected:
        steps.append((approve, "rejected", {}))
    else:
        planned = {
            "approved_at": iso(approve),
            "planned_start": iso(planned_start),
            "planned_end": iso(planned_end),
        }
        steps.append((approve, "approved", planned))
        done = {
            "actual_start": iso(actual_start),
            "actual_end": iso(actual_end),
            "outcome": outcome,
        }
        steps.append((actual_end, "implemented", done))
        steps.append((actual_end + rw.CHANGE_CLOSE_S, "closed", {}))
    out: list[_Timed] = []
    for k, (epoch, verb, changes) in enumerate(s for s in steps if s[0] < as_of):
        data = {**data, **changes, "sequence": k + 1}
        ev = _event("changes", f"itsm.change.{verb}", f"{cid}-{k + 1}", epoch, data)
        out.append((epoch, "changes", cid, ev))
    return out


def alert_events(n_alerts: int, start: datetime, end: datetime, seed: int = 1) -> Iterator[Emitted]:
    """Alerts on CIs (a few noisy CIs fire most), any hour: firing, then resolved after minutes
    to hours; critical ones are outages (SPEC §3.4 default). Cut at `end`."""
    w = rw.world(seed)
    rng = random.Random(f"alerts-{seed}-{start.isoformat()}")
    t0, span, as_of = start.timestamp(), (end - start).total_seconds(), end.timestamp()
    started = sorted(float(math.floor(t0 + rng.random() * span)) for _ in range(n_alerts))

    def lives() -> Iterator[tuple[float, list[_Timed]]]:
        for number, t in enumerate(started, start=1):
            yield t, alert(rng, w, t, f"ALR{start:%y%m}{number:07d}", as_of)

    return _in_time_order(lives())


def alert(rng: random.Random, w: rw.World, t: float, aid: str, as_of: float) -> list[_Timed]:
    """One alert firing at `t` on a CI (noisy ones most), resolved minutes to hours later
    unless that is after `as_of`."""
    ci = w.cis[noisy_ci(rng.random()) - 1]
    severity = _pick(rng, rw.SEVERITY_WEIGHTS)
    duration = min(
        rw.ALERT_MAX_S,
        max(30, round(rw.lognormal_s(rw.ALERT_MEDIAN_S[severity], rw.ALERT_SIGMA, _normal(rng)))),
    )
    threshold = float(rng.choice((80, 90, 95, 99)))
    data: dict[str, Any] = {
        "alert_id": aid,
        "ci_id": ci.ci_id,
        "service": w.services[ci.services[0]],
        "check": rw.CHECKS[rng.randrange(len(rw.CHECKS))],
        "severity": severity,
        "threshold": threshold,
        "value": round(threshold + rng.random() * 10, 1),
        "started_at": iso(t),
    }
    firing = _event("monitoring", "itsm.monitor.alert.firing", f"{aid}-1", t, data)
    events: list[_Timed] = [(t, "monitoring", aid, firing)]
    if t + duration < as_of:
        done = {**data, "ended_at": iso(t + duration)}
        ev = _event("monitoring", "itsm.monitor.alert.resolved", f"{aid}-2", t + duration, done)
        events.append((t + duration, "monitoring", aid, ev))
    return events


def noisy_ci(u: float) -> int:
    """A CI index (1-based) from u: a few noisy CIs fire most alerts (SQL spells it the same)."""
    return 1 + (int(u * u * rw.N_CIS) * 2654435761) % rw.N_CIS


def call_events(n_calls: int, start: datetime, end: datetime, seed: int = 1) -> Iterator[Emitted]:
    """Service-desk calls not logged as tickets (answered information calls and abandoned ones)
    over business hours; calls that logged a ticket come with the tickets in `mixed_events`."""
    rng = random.Random(f"calls-{seed}-{start.isoformat()}")
    arr = rw.arrivals(start, end)
    for number, t in enumerate(
        sorted(arr.at(rng.random(), rng.random()) for _ in range(n_calls)), start=1
    ):
        cid = f"CALL{start:%y%m}X{number:07d}"
        yield "servicedesk", cid, unlogged_call(rng, t, cid)


# Of the calls not logged as tickets, the share answered (the others were abandoned).
_ANSWERED_UNLOGGED = (rw.ANSWERED * (1 - rw.LOGGED)) / (1 - rw.ANSWERED * rw.LOGGED)


def unlogged_calls(n_tickets: float) -> float:
    """How many calls the service desk takes beside `n_tickets` tickets that no ticket logs:
    the phone-channel tickets are the answered calls' logged share."""
    phone = rw.CHANNEL_WEIGHTS["phone"] / sum(rw.CHANNEL_WEIGHTS.values())
    logged = n_tickets * phone
    return logged / (rw.ANSWERED * rw.LOGGED) - logged


def unlogged_call(rng: random.Random, t: float, cid: str) -> dict[str, Any]:
    """A call at `t` that logged no ticket: answered (an information call) or abandoned."""
    answered = rng.random() < _ANSWERED_UNLOGGED
    data: dict[str, Any] = {"call_id": cid, "answered": answered}
    if answered:
        data["wait_seconds"] = round(rw.lognormal_s(rw.WAIT_MEDIAN_S, rw.WAIT_SIGMA, _normal(rng)))
        data["handle_seconds"] = round(
            rw.lognormal_s(rw.HANDLE_MEDIAN_S, rw.HANDLE_SIGMA, _normal(rng))
        )
        data["agent"] = rw.engineer_id(rng.randrange(rw.N_ENGINEERS))
    else:
        data["wait_seconds"] = round(
            rw.lognormal_s(rw.ABANDON_WAIT_MEDIAN_S, rw.WAIT_SIGMA, _normal(rng))
        )
    return _event("servicedesk", "itsm.servicedesk.call.completed", cid, t, data)


def ci_created(ci: rw.Ci, start: datetime) -> float:
    """When discovery registered the CI: spread over the week before `start`, in index order."""
    week = 7 * 86400
    return math.floor(start.timestamp() - week + ci.index * week / (rw.N_CIS + 1))


def ci_data(w: rw.World, ci: rw.Ci) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ci_id": ci.ci_id,
        "ci_type": ci.ci_type,
        "name": f"{ci.ci_type} {ci.index}",
        "services": [w.services[s] for s in ci.services],
        "owner": w.groups[ci.owner],
        "depends_on": [rw.ci_id(d) for d in ci.depends_on],
        "critical": ci.critical,
        "attributes": {"datacenter": f"dc-{1 + ci.index % 3}", "layer": ci.layer},
    }
    return data


def ci_events(start: datetime, seed: int = 1) -> Iterator[Emitted]:
    """The 5,000 CIs upserted by a discovery run in the week before `start`, each with its
    monitoring checks registered an hour later."""
    w = rw.world(seed)
    by_ci: dict[int, list[str]] = {}
    for index, metric in rw.checks(seed):
        by_ci.setdefault(index, []).append(metric)

    def lives() -> Iterator[tuple[float, list[_Timed]]]:
        for ci in w.cis:
            t = ci_created(ci, start)
            ev = _event("config", "itsm.config.ci.upserted", f"{ci.ci_id}-1", t, ci_data(w, ci))
            events: list[_Timed] = [(t, "config", ci.ci_id, ev)]
            for metric in by_ci.get(ci.index, []):
                check_id = f"{ci.ci_id}/{metric}"
                data = {"check_id": check_id, "ci_id": ci.ci_id, "metric": metric, "threshold": 90}
                etype = "itsm.monitor.check.registered"
                check = _event("monitoring", etype, check_id, t + 3600, data)
                events.append((t + 3600, "monitoring", check_id, check))
            yield t, events

    return _in_time_order(lives())


def article_events(start: datetime, end: datetime, seed: int = 1) -> Iterator[Emitted]:
    """The knowledge base: articles published over the two years before `start`, a tenth
    updated in [start, end)."""
    w = rw.world(seed)

    def lives() -> Iterator[tuple[float, list[_Timed]]]:
        for a in sorted(rw.articles(seed, start, end), key=lambda a: a.published):
            data = {
                "article_id": a.article_id,
                "service": w.services[a.service],
                "title": f"How to fix {w.services[a.service]} issue {a.article_id[-4:]}",
            }
            published = _event(
                "servicedesk", "itsm.knowledge.article.published", f"{a.article_id}-1",
                a.published, data,
            )  # fmt: skip
            events: list[_Timed] = [(a.published, "servicedesk", a.article_id, published)]
            if a.updated is not None:
                etype = "itsm.knowledge.article.updated"
                ev = _event("servicedesk", etype, f"{a.article_id}-2", a.updated, data)
                events.append((a.updated, "servicedesk", a.article_id, ev))
            yield a.published, events

    return _in_time_order(lives())


def mixed_events(
    n_tickets: int, start: datetime, end: datetime, seed: int = 1
) -> Iterator[Emitted]:
    """Everything at once, in time order: CIs, checks and articles (from before `start`),
    tickets with their calls and surveys, changes, alerts and unlogged calls, at the world's
    ratios to tickets."""
    streams = [
        ci_events(start, seed),
        article_events(start, end, seed),
        _ticket_stream(n_tickets, start, end, seed, related=True),
        change_events(max(1, round(n_tickets * rw.CHANGES_PER_TICKET)), start, end, seed),
        alert_events(round(n_tickets * rw.ALERTS_PER_TICKET), start, end, seed),
        call_events(round(unlogged_calls(n_tickets)), start, end, seed),
    ]
    return heapq.merge(*streams, key=lambda item: item[2]["time"])


def month_end(start: datetime) -> datetime:
    """The first instant of the next calendar month."""
    nxt = (start.replace(day=1) + timedelta(days=32)).replace(day=1)
    return nxt
