"""The simulated organisation over time: every event family of SPEC §3 as one time-ordered
stream. Pure: a seeded random, a start time and a rate in, timed events out (no clock, no I/O).

A stream may begin with weeks of *history* (what `make run` shows at its first look: drift
baselines, previous periods, trends): the same company at a quieter, realistic pace (HISTORY:
about 150 tickets a day, audits daily, measurements every 6 hours), so that weeks of it are
generated and ingested in seconds; at the end of the history it goes on at the live `rate`.

Time is real time (event `time` = start + simulated seconds, produced when it comes due), and
lifecycles are compressed to minutes so that a few minutes of `make run` move every indicator.
SLA targets are hours, so compressed tickets would always meet them; breaches come from the two
ways they happen in a real desk: incidents *recorded late* (opened hours before their first
event: `opened_at` in the snapshot, e.g. a night-shift call logged the next morning) and a few
*long-running* incidents worked for about their resolution target in real time. Whether a ticket
breached is the SLA clock's decision (calendars, pauses), never the simulator's."""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from services.local.company import SEASONAL_PEAK, Ci, Company, cmdb, seasonality
from services.local.lifecycles import (
    CHANNELS,
    KIND_WEIGHTS,
    PRIORITY_WEIGHTS,
    Change,
    Ticket,
    change_steps,
    pick,
    ticket_steps,
)

LATE_SHARE = 0.08  # incidents recorded late
LONG_SHARE = 0.01  # incidents worked for about their resolution target
# Long-running incidents open at once, per priority: a P4 one stays open about two weeks (its
# 100 office hours), so at the live rate they would pile up by the thousand, each holding its
# pending snapshots in the queue. Past the cap a would-be long-running incident is an ordinary
# one; the P1 and P2 ones, which close within hours, keep coming.
LONG_OPEN_MAX = 20
PROBLEMS_KEPT = 5  # a service's recent problems, which incidents get linked to
ARTICLES_MAX = 40  # a service's published articles: past it, publishing retires the oldest
FIRST_OUTAGE_S = 10.0  # after the live stream begins
UNMONITORED = {"backup-01"}  # no check ever: monitoring coverage stays below 100 %
METRICS = {  # CI type → (check metric, threshold)
    "server": ("node_cpu_busy_ratio", 0.9),
    "database": ("pg_replication_lag_seconds", 30),
    "load_balancer": ("haproxy_backend_up", 1),
    "switch": ("ifOperStatus", 1),
    "storage": ("san_latency_ms", 20),
    "firewall": ("fw_sessions_ratio", 0.85),
}


@dataclass(frozen=True)
class Pace:
    """How busy the company is: tickets opened a second (every other process scales with it)
    and the cadence of CMDB audits and of the custom measurements."""

    rate: float
    audit_every: float = 300.0
    measure_every: float = 60.0
    lifecycle: float = 1.0  # stretches the compressed lives of tickets and changes


# The history's pace: a realistic desk of the six example services, ~150 tickets a day
# (~1,200 events a day with their calls, alerts, changes…), audited daily; its tickets and
# changes live 12 times longer than the live stream's compressed ones (half the incidents
# resolved within ~15 minutes, about 65 % at first contact; changes approved within hours).
HISTORY = Pace(rate=150 / 86400, audit_every=86400.0, measure_every=6 * 3600.0, lifecycle=12)
# Training hours a service's team receives, an hour (a measurement reports its period's share).
TRAINING_PER_HOUR = 0.07
# Per second at --rate 1 (one ticket a second); every process scales with the rate.
PER_TICKET = {
    "call": 0.5,
    "alert": 0.3,
    "outage": 0.004,
    "change": 0.05,
    "drift": 0.01,
    "decommission": 0.002,
    "check_churn": 0.005,
    "article": 0.03,
}


class SimEvent(NamedTuple):
    time: datetime
    type: str
    data: dict[str, Any]


class Simulation:
    """`events()` is the endless, time-ordered stream from `start`; the same seed, start, rate,
    history and run id give the same stream. `run` keeps ids apart between runs into the same
    database. With `history` (seconds), the stream begins that long before `start` at the
    HISTORY pace and goes on at `rate` from `start`."""

    def __init__(
        self,
        rng: random.Random,
        company: Company,
        *,
        start: datetime,
        rate: float,
        run: str,
        history: float = 0.0,
    ) -> None:
        self.rng, self.company, self.run = rng, company, run
        self.start = start - timedelta(seconds=history)  # `at` counts seconds from here
        self.live_at = history
        self._live = Pace(rate)
        self._queue: list[tuple[float, int, Any]] = []
        self._order = itertools.count()
        self._counters: dict[str, int] = {}
        self.cis: dict[str, Ci] = {}
        self.checks: dict[str, str] = {}  # check_id → ci_id
        self.articles: dict[str, list[str]] = {s: [] for s in company.services}
        self.problems: dict[str, deque[str]] = {
            s: deque(maxlen=PROBLEMS_KEPT) for s in company.services
        }
        self.unrecorded: set[str] = set()  # CIs changed without a change since their last audit
        self.long_open: dict[int, list[float]] = {}  # priority → when its long ones close (heap)
        self._measured_at = 0.0
        self._setup()

    def pace(self, at: float) -> Pace:
        return HISTORY if at < self.live_at else self._live

    @property
    def pending(self) -> int:
        """Scheduled snapshots and actions: what the simulation holds in memory."""
        return len(self._queue)

    def events(self) -> Iterator[SimEvent]:
        while self._queue:
            at, _, item = heapq.heappop(self._queue)
            if callable(item):
                item(at)
            else:
                yield SimEvent(self.start + timedelta(seconds=at), *item)

    # --- scheduling --------------------------------------------------------------------------
    def _emit(self, at: float, etype: str, data: dict[str, Any]) -> None:
        heapq.heappush(self._queue, (at, next(self._order), (etype, data)))

    def _call_at(self, at: float, action: Callable[[float], None]) -> None:
        heapq.heappush(self._queue, (at, next(self._order), action))

    def _arrivals(
        self, per_ticket: float, action: Callable[[float], None], busy: bool = False
    ) -> None:
        """A Poisson process of `action`s at `per_ticket` × the pace's rate; `busy`: as busy as
        the service desk (that mean rate, thinned from the peak by company.seasonality).

        Each process draws from a random stream of its own (seeded from the simulation's), which
        `self.rng` is while its action runs: what the office hours do to the tickets then moves
        no other process, so a seed gives the same changes, decommissions, check changes and
        articles whenever the stream starts (its rare events, say a rejected change, are there
        for a seed or not, whatever the day)."""
        own = random.Random(self.rng.getrandbits(64))

        def schedule(after: float) -> None:
            peak = self.pace(after).rate * per_ticket * (SEASONAL_PEAK if busy else 1.0)
            at = after + own.expovariate(peak)
            if after < self.live_at <= at:  # memoryless: draw again at the live pace
                self._call_at(self.live_at, schedule)
            else:
                self._call_at(at, arrive)

        def arrive(at: float) -> None:
            when = self.start + timedelta(seconds=at)
            if not busy or own.random() * SEASONAL_PEAK < seasonality(when, self.company.tz):
                shared, self.rng = self.rng, own
                try:
                    action(at)
                finally:
                    self.rng = shared
            schedule(at)

        schedule(0.0)

    def _every(self, period: Callable[[Pace], float], action: Callable[[float], None]) -> None:
        """`action` every `period` of the pace; the first tick of the live pace comes one live
        period after the history's end."""

        def next_tick(at: float) -> float:
            then = at + period(self.pace(at))
            return self.live_at + period(self._live) if at < self.live_at < then else then

        def tick(at: float) -> None:
            action(at)
            self._call_at(next_tick(at), tick)

        self._call_at(next_tick(0.0), tick)

    def _id(self, prefix: str) -> str:
        n = self._counters[prefix] = self._counters.get(prefix, 0) + 1
        return f"{prefix}-{self.run}-{n:06d}"

    def _ts(self, at: float) -> str:
        return (self.start + timedelta(seconds=at)).isoformat()

    def _setup(self) -> None:
        for ci in cmdb(self.company.services):
            self._upsert(0.0, ci)
            if ci.ci_id not in UNMONITORED and self.rng.random() < 0.9:
                self._register_check(0.0, ci.ci_id)
        for service in self.company.services:
            for _ in range(3):
                self._publish(0.0, service)
        self._arrivals(1.0, self._new_ticket, busy=True)
        self._arrivals(PER_TICKET["call"], self._call, busy=True)
        self._arrivals(PER_TICKET["alert"], self._alert)
        self._arrivals(PER_TICKET["outage"], self._outage)
        # Outages are rare, and a window without one has no MTTR or MTBF: the live stream's
        # first comes within a minute, so the first look shows every technical indicator.
        self._call_at(self.live_at + FIRST_OUTAGE_S, lambda at: self._outage(at, lasts=20.0))
        self._arrivals(PER_TICKET["change"], self._change)
        self._arrivals(PER_TICKET["drift"], self._drift)
        self._arrivals(PER_TICKET["decommission"], self._decommission)
        self._arrivals(PER_TICKET["check_churn"], self._check_churn)
        self._arrivals(PER_TICKET["article"], self._knowledge)
        self._every(lambda pace: pace.audit_every, self._audit)
        self._every(lambda pace: pace.measure_every, self._measure)

    # --- tickets, calls, surveys -------------------------------------------------------------
    def _new_ticket(self, at: float, **given: Any) -> None:
        rng = self.rng
        t = Ticket(
            self._id("SIM"),
            service=given.get("service") or pick(rng, self.company.volumes),
            kind=given.get("kind") or pick(rng, KIND_WEIGHTS),
            priority=given.get("priority") or pick(rng, PRIORITY_WEIGHTS),
            channel=given.get("channel") or rng.choice(CHANNELS),
            ci_ids=given.get("ci_ids", ()),
            caused_by_change_id=given.get("caused_by_change_id"),
        )
        if t.kind == "problem":
            self.problems[t.service].append(t.ticket_id)
        if t.kind == "incident":
            self._incident_extras(t, at)
        scale = self.pace(at).lifecycle
        steps = ticket_steps(rng, t, self.start, at, scale)
        for step in steps:
            self._emit(*step)
        if t.work:
            heapq.heappush(self.long_open[t.priority], steps[-1][0])
        if t.channel == "phone":  # the call that was logged as this ticket
            self._call(at, ticket_id=t.ticket_id)
        closed = steps[-1]
        if closed[1] == "itsm.ticket.closed" and rng.random() < 0.2:
            self._survey(closed[0] + rng.uniform(60, 600) * scale, t)

    def _long_room(self, priority: int, at: float) -> bool:
        """Whether another long-running incident of `priority` may open (LONG_OPEN_MAX)."""
        closing = self.long_open.setdefault(priority, [])
        while closing and closing[0] <= at:
            heapq.heappop(closing)
        return len(closing) < LONG_OPEN_MAX

    def _incident_extras(self, t: Ticket, at: float) -> None:
        rng = self.rng
        if rng.random() < 0.4 and self.articles[t.service]:
            t.knowledge_article_ids = (rng.choice(self.articles[t.service]),)
        if rng.random() < 0.1 and self.problems[t.service]:
            t.problem_id = rng.choice(list(self.problems[t.service]))
        target = self.company.target(t.service, t.priority)
        if target is None:
            return
        response, resolution = (d.total_seconds() for d in target)
        if rng.random() < LATE_SHARE:  # most past their response target, some past resolution
            late = (
                response * rng.uniform(0.5, 3)
                if rng.random() < 0.6
                else resolution * rng.uniform(0.6, 2)
            )
            t.backdate = late
        elif rng.random() < LONG_SHARE and self._long_room(t.priority, at):
            t.work = resolution * rng.uniform(0.8, 1.5)

    def _call(self, at: float, ticket_id: str | None = None) -> None:
        rng = self.rng
        answered = ticket_id is not None or rng.random() < 0.88
        data: dict[str, Any] = {"call_id": self._id("CALL"), "answered": answered}
        if answered:
            data |= {
                "wait_seconds": round(rng.expovariate(1 / 25), 1),
                "handle_seconds": round(30 + rng.expovariate(1 / 200), 1),
                "agent": f"agent-{rng.randint(1, 12):02d}",
            }
            if ticket_id is not None:
                data["ticket_id"] = ticket_id
        else:
            data["wait_seconds"] = round(20 + rng.expovariate(1 / 90), 1)
        self._emit(at, "itsm.servicedesk.call.completed", data)

    def _survey(self, at: float, t: Ticket) -> None:
        unhappy = t.backdate or t.work
        weights = (
            {1: 10, 2: 15, 3: 30, 4: 30, 5: 15} if unhappy else {1: 2, 2: 3, 3: 10, 4: 35, 5: 50}
        )
        self._emit(
            at,
            "itsm.feedback.survey.completed",
            {
                "survey_id": self._id("SURVEY"),
                "ticket_id": t.ticket_id,
                "service": t.service,
                "score": pick(self.rng, weights),
            },
        )

    # --- monitoring --------------------------------------------------------------------------
    def _register_check(self, at: float, ci_id: str) -> None:
        metric, threshold = METRICS.get(self.cis[ci_id].ci_type, ("up", 1))
        check_id = f"{ci_id}/{metric}"
        if check_id in self.checks:
            return
        self.checks[check_id] = ci_id
        data = {"check_id": check_id, "ci_id": ci_id, "metric": metric, "threshold": threshold}
        self._emit(at, "itsm.monitor.check.registered", data)

    def _remove_check(self, at: float, check_id: str) -> None:
        ci_id = self.checks.pop(check_id)
        self._emit(at, "itsm.monitor.check.removed", {"check_id": check_id, "ci_id": ci_id})

    def _check_churn(self, at: float) -> None:
        if self.checks and self.rng.random() < 0.5:
            self._remove_check(at, self.rng.choice(sorted(self.checks)))
        monitored = sorted(set(self.cis) - UNMONITORED)
        self._register_check(at, self.rng.choice(monitored))

    def _alert(self, at: float) -> None:
        """An alert that does not take its CI down: info, warning, or a critical one such as a
        disk almost full (`outage: false`)."""
        rng = self.rng
        ci = self.cis[rng.choice(sorted(self.cis))]
        severity = pick(rng, {"info": 45, "warning": 40, "critical": 15})
        self._fire(at, ci, severity, outage=False, lasts=rng.uniform(30, 900))

    def _outage(self, at: float, lasts: float | None = None) -> None:
        """A critical CI goes down for a few minutes: its services with it (SPEC §5.3), and
        monitoring opens an incident for the first affected service."""
        rng = self.rng
        critical = sorted(c for c, ci in self.cis.items() if ci.critical)
        ci = self.cis[rng.choice(critical)]
        lasts = rng.uniform(20, 240) if lasts is None else lasts
        self._fire(at, ci, "critical", outage=True, lasts=lasts)
        service = ci.services[0] if ci.services else rng.choice(self.company.services)
        self._new_ticket(
            at + rng.uniform(5, 30),
            kind="incident",
            service=service,
            priority=1 if not ci.services else 2,
            channel="monitoring",
            ci_ids=(ci.ci_id,),
        )

    def _fire(self, at: float, ci: Ci, severity: str, *, outage: bool, lasts: float) -> None:
        metric, threshold = METRICS.get(ci.ci_type, ("up", 1))
        data: dict[str, Any] = {
            "alert_id": self._id("ALERT"),
            "ci_id": ci.ci_id,
            "check": "HostDown" if outage else metric,
            "severity": severity,
            "outage": outage,
            "threshold": threshold,
            "value": 0 if outage else round(threshold * self.rng.uniform(1.05, 1.5), 3),
            "started_at": self._ts(at),
        }
        if ci.services:
            data["service"] = ci.services[0]
        self._emit(at, "itsm.monitor.alert.firing", data)
        ended = {**data, "ended_at": self._ts(at + lasts)}
        self._emit(at + lasts, "itsm.monitor.alert.resolved", ended)

    # --- configuration -----------------------------------------------------------------------
    def _upsert(self, at: float, ci: Ci, change_id: str | None = None, **attributes: Any) -> None:
        self.cis[ci.ci_id] = ci
        data = ci.data()
        if attributes:
            data["attributes"] = attributes
        if change_id is not None:
            data["change_id"] = change_id
        self._emit(at, "itsm.config.ci.upserted", data)

    def _drift(self, at: float) -> None:
        """Someone changed a CI without a change: an unauthorised upsert the next audit finds."""
        ci = self.cis[self.rng.choice(sorted(self.cis))]
        self.unrecorded.add(ci.ci_id)
        self._upsert(at, ci, None, patched=self._ts(at))

    def _decommission(self, at: float) -> None:
        """An application server retired and replaced by a new one (a new CI needs no change)."""
        service = self.rng.choice(self.company.services)
        apps = sorted(
            c for c, ci in self.cis.items() if ci.services == (service,) and ci.ci_type == "server"
        )
        if len(apps) < 2:
            return
        old = self.cis.pop(apps[0])
        self.unrecorded.discard(old.ci_id)
        for check_id in sorted(k for k, v in self.checks.items() if v == old.ci_id):
            self._remove_check(at, check_id)
        self._emit(at, "itsm.config.ci.deleted", {"ci_id": old.ci_id})
        new = Ci(
            self._id(f"{service}-app"), old.ci_type, old.services, old.depends_on, owner=old.owner
        )
        self._upsert(at + 1, new)
        self._register_check(at + 2, new.ci_id)

    def _audit(self, at: float) -> None:
        """A CMDB audit of one service's CIs or the whole data centre (SPEC §3.3)."""
        rng = self.rng
        scope = rng.choice([*self.company.services, "datacenter-1"])
        checked = sorted(c for c, ci in self.cis.items() if scope in (*ci.services, "datacenter-1"))
        found = [c for c in checked if c in self.unrecorded or rng.random() < 0.01]
        self.unrecorded -= set(found)
        data = {
            "audit_id": self._id("AUDIT"),
            "scope": scope,
            "cis_checked": len(checked),
            "discrepancies": len(found),
            "ci_ids_with_discrepancy": found,
        }
        self._emit(at, "itsm.config.audit.completed", data)

    # --- changes -----------------------------------------------------------------------------
    def _change(self, at: float) -> None:
        rng = self.rng
        service = pick(rng, self.company.volumes)
        own = sorted(c for c, ci in self.cis.items() if service in ci.services) or sorted(self.cis)
        cis = tuple(rng.sample(own, min(len(own), rng.randint(1, 2))))
        change = Change(self._id("CHG"), service, cis)
        steps, done = change_steps(rng, change, self.start, at, self.pace(at).lifecycle)
        for step in steps:
            self._emit(*step)
        if done is None:
            return
        self._call_at(
            done.implemented_at, lambda when: self._implemented(when, change, done.outcome)
        )

    def _implemented(self, at: float, change: Change, outcome: str) -> None:
        rng = self.rng
        if outcome in ("successful", "partially_successful"):
            for ci_id in change.ci_ids:
                if ci_id in self.cis:
                    self._upsert(at, self.cis[ci_id], change.change_id, version=change.change_id)
        if rng.random() < (0.3 if outcome in ("failed", "rolled_back") else 0.04):
            self._new_ticket(
                at + rng.uniform(10, 300) * self.pace(at).lifecycle,
                kind="incident",
                service=change.service,
                priority=rng.choice([2, 3]),
                ci_ids=change.ci_ids,
                caused_by_change_id=change.change_id,
            )

    # --- knowledge, measurements -------------------------------------------------------------
    def _publish(self, at: float, service: str) -> None:
        if len(self.articles[service]) >= ARTICLES_MAX:  # the oldest one is outdated by now
            retired = self.articles[service].pop(0)
            self._emit(
                at, "itsm.knowledge.article.retired", {"article_id": retired, "service": service}
            )
        article_id = self._id("KB")
        self.articles[service].append(article_id)
        title = f"{service}: how to fix issue {self._counters['KB']}"
        data = {"article_id": article_id, "service": service, "title": title}
        self._emit(at, "itsm.knowledge.article.published", data)

    def _knowledge(self, at: float) -> None:
        rng = self.rng
        service = rng.choice(self.company.services)
        articles = self.articles[service]
        what = pick(rng, {"published": 3, "updated": 5, "retired": 1})
        if what == "published" or len(articles) < 3:
            self._publish(at, service)
            return
        article_id = rng.choice(articles)
        if what == "retired":
            articles.remove(article_id)
        data = {"article_id": article_id, "service": service}
        self._emit(at, f"itsm.knowledge.article.{what}", data)

    def _measure(self, at: float) -> None:
        """Custom measurements per service of the time since the last ones (SPEC §3.5): training
        hours delivered (a `sum` in the example catalog: about TRAINING_PER_HOUR an hour,
        whatever the cadence) and the staffing level (a `mean`)."""
        hours = (at - self._measured_at) / 3600
        period = {"period_start": self._ts(self._measured_at), "period_end": self._ts(at)}
        self._measured_at = at
        for service in self.company.services:
            training = self.rng.uniform(0, 2 * TRAINING_PER_HOUR) * hours
            for indicator, unit, value in (
                ("training_hours", "hours", round(training, 4)),
                ("staffing_level", "people", self.rng.randint(3, 8)),
            ):
                data = {"indicator": indicator, "value": value, "unit": unit, "service": service}
                self._emit(at, "itsm.measurement.recorded", data | period)
