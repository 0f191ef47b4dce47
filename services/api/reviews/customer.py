"""The customer review (SPEC §7.3, issue 11): one service or customer over one period, its
sections in the order of the domain notes' 客户回顾内容. Plain functions over a connection (the
caller owns the transaction).

One source of truth: every indicator number is read through `figures.Reader` (the indicator
API's own code) for the period's window and the scope's filter, so it is the number
`GET /v1/indicators/{id}` answers. The objectives and the key figures (availability, MTTR,
CSAT, tickets opened and resolved) carry their history, the last `history` periods, each
indicator read once over that span. Records (major incidents, changes, problems, action items,
improvements) are read from their tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from services.aggregator.objectives import catalog_objectives
from services.api.improvements import service as improvements
from services.api.improvements.schemas import Improvement
from services.api.indicators import Reading
from services.api.reviews import service as reviews
from services.api.reviews.customer_schemas import (
    ActionItems,
    ChangeRecord,
    Changes,
    CiOutages,
    CustomerReview,
    MajorIncident,
    ObjectivesMet,
    ProblemRecord,
    Problems,
    Satisfaction,
    ServicePerformance,
    SlaItem,
    SlaPoint,
    Status,
    TimelineStep,
    Workload,
)
from services.api.reviews.figures import Reader, trend
from services.catalog import Catalog
from shared.db import changes, config_items, objective_status, tickets
from shared.errors import InvalidRequest

# How many periods a history holds (the reviewed one included): by default, and at most.
HISTORY = 6
HISTORY_MAX = 12
# The ticket dimensions the workload is broken down by, where the indicator offers them (so
# `channel` appears once it is a dimension of ticket_opened_count).
WORKLOAD_DIMENSIONS = ("kind", "priority", "channel")


@dataclass(frozen=True)
class Scope:
    """What a review covers: `kind` is `service` or `customer`; `filters` the indicator API's."""

    kind: str
    id: str
    services: tuple[str, ...]

    @property
    def filters(self) -> dict[str, str]:
        return {self.kind: self.id}


def scope_of(catalog: Catalog, customer: str | None, service: str | None) -> Scope:
    """Exactly one of `customer` and `service`, known to the catalog when it lists any."""
    if (customer is None) == (service is None):
        raise InvalidRequest("give exactly one of customer and service")
    if service is not None:
        known = [s.id for s in catalog.services]
        if known and service not in known:
            listed = ", ".join(known)
            raise InvalidRequest(f"unknown service {service!r}: the catalog lists {listed}")
        return Scope("service", service, (service,))
    assert customer is not None
    known = [c.id for c in catalog.customers]
    if customer not in known:
        listed = ", ".join(known) or "no customers"
        raise InvalidRequest(f"unknown customer {customer!r}: the catalog lists {listed}")
    return Scope(
        "customer", customer, tuple(s.id for s in catalog.services if s.customer == customer)
    )


def review(
    conn: Connection,
    catalog: Catalog,
    *,
    customer: str | None,
    service: str | None,
    period_text: str,
    reading: Reading,
    now: datetime,
    history: int = HISTORY,
) -> CustomerReview:
    """The customer review of a service or customer for a month, an ISO week or a quarter, the
    key figures with the last `history` periods."""
    scope = scope_of(catalog, customer, service)
    period = reviews.period_of(period_text)
    r = Reader(conn, catalog, period, reading, now, history)
    sla = _sla(r, scope)
    previous, still_open = reviews.before_period(
        conn, "customer", scope.kind, scope.id, period, reading.tz
    )
    return CustomerReview(
        customer=customer,
        service=service,
        services=list(scope.services),
        **r.header(),
        sla=sla,
        objectives_met=_objectives_met(r, scope, sla),
        service_performance=_service_performance(r, scope),
        satisfaction=Satisfaction(csat=r.figure_with_history("csat_score", scope.filters)),
        workload=_workload(r, scope),
        changes=_changes(r, scope),
        problems=_problems(r, scope),
        action_items=ActionItems(open=still_open, previous_review=previous),
        improvements=_improvements(conn, scope),
    )


# --- sections --------------------------------------------------------------------------------


def _sla(r: Reader, scope: Scope) -> list[SlaItem]:
    """The catalog's objectives of the services in scope, and of the reviewed customer itself,
    on the period's window kind: the value and its history as the indicator API serves them per
    service (customer), each period's status as the aggregator stored it (no_data where it
    stored none: a window no event touched)."""
    customer = scope.id if scope.kind == "customer" else None
    wanted = [
        o
        for o in catalog_objectives(r.catalog)
        if (o.service in scope.services or (customer is not None and o.customer == customer))
        and o.window == r.window
    ]
    if not wanted:
        return []
    c = objective_status.c
    rows = r.conn.execute(
        select(c.service, c.customer, c.indicator, c.window_start, c.status).where(
            or_(c.service.in_(scope.services), c.customer == (customer or "")),
            c.window_kind == r.window,
            c.window_start >= r.since,
            c.window_start < r.end,
        )
    )
    statuses: dict[tuple[str, str, str, datetime], Status] = {
        (row.service, row.customer, row.indicator, row.window_start): row.status for row in rows
    }
    items = []
    for o in wanted:
        ind = r.indicator(o.indicator)
        f = r.figure_with_history(o.indicator, {o.grouping[0]: o.of})
        key = (o.service, o.customer, o.indicator)
        history = [
            SlaPoint(**p.model_dump(), status=statuses.get((*key, p.start), "no_data"))
            for p in f.history
        ]
        items.append(
            SlaItem(
                service=o.service,
                customer=o.customer,
                indicator=o.indicator,
                unit=ind.unit,
                direction=ind.direction,
                comparator=o.comparator,
                target=o.target,
                warning=o.warning,
                weight=o.weight,
                value=f.value,
                status=statuses.get((*key, r.start), "no_data"),
                previous=f.previous,
                previous_status=statuses.get((*key, r.previous_start), "no_data"),
                trend=trend(ind.direction, f.value, f.previous),
                history=history,
            )
        )
    return items


def _objectives_met(r: Reader, scope: Scope, sla: list[SlaItem]) -> ObjectivesMet:
    counts = {s: sum(i.status == s for i in sla) for s in ("met", "warning", "breached", "no_data")}
    return ObjectivesMet(
        **counts,
        total=len(sla),
        ratio=r.figure("service_objectives_met_ratio", scope.filters),
    )


def _service_performance(r: Reader, scope: Scope) -> ServicePerformance:
    return ServicePerformance(
        availability=r.figure_with_history("service_availability_ratio", scope.filters),
        major_incident_count=r.figure("major_incident_count", scope.filters),
        incident_resolution_time=r.figure_with_history(
            "incident_resolution_time_seconds", scope.filters
        ),
        incident_sla_resolution_met=r.figure("incident_sla_resolution_met_ratio", scope.filters),
        cis=_cis(r, scope),
        major_incidents=_major_incidents(r, scope),
    )


def _cis(r: Reader, scope: Scope) -> list[CiOutages]:
    """The CIs naming a service in scope and existing during the period, each with its outages
    and mean time to restore (ci_outage_count and ci_mttr_seconds of each CI alone)."""
    ci = config_items.c
    rows = r.conn.execute(
        select(ci.ci_id, ci.name)
        .where(
            ci.services.overlap(list(scope.services)),
            ci.created_at < r.end,
            or_(ci.deleted_at.is_(None), ci.deleted_at > r.start),
        )
        .order_by(ci.ci_id)
    ).all()
    return [
        CiOutages(
            ci=row.ci_id,
            name=row.name,
            outages=r.figure("ci_outage_count", {"ci": row.ci_id}),
            mttr_seconds=r.figure("ci_mttr_seconds", {"ci": row.ci_id}),
        )
        for row in rows
    ]


def _major_incidents(r: Reader, scope: Scope) -> list[MajorIncident]:
    """Major incidents of the services in scope opened in the period: the tickets
    major_incident_count counts, with their timeline of states."""
    t = tickets.c
    rows = r.conn.execute(
        select(tickets, t.snapshot["title"].astext.label("title"))
        .where(
            t.kind == "incident",
            t.major,
            t.service.in_(scope.services),
            t.opened_at >= r.start,
            t.opened_at < r.end,
        )
        .order_by(t.opened_at, t.ticket_id)
    ).all()
    return [
        MajorIncident(
            ticket_id=row.ticket_id,
            title=row.title,
            service=row.service,
            priority=row.priority,
            state=row.state,
            opened_at=row.opened_at,
            responded_at=row.responded_at,
            resolved_at=row.resolved_at,
            duration_seconds=None
            if row.resolved_at is None
            else (row.resolved_at - row.opened_at).total_seconds(),
            timeline=[TimelineStep(at=at, state=state) for at, state in row.transitions],
        )
        for row in rows
    ]


def _workload(r: Reader, scope: Scope) -> Workload:
    opened = r.indicator("ticket_opened_count")
    return Workload(
        opened=r.figure_with_history("ticket_opened_count", scope.filters),
        resolved=r.figure_with_history("ticket_resolved_count", scope.filters),
        backlog=r.figure("incident_backlog_count", scope.filters),
        opened_by=[
            r.breakdown(opened.id, d, scope.filters)
            for d in WORKLOAD_DIMENSIONS
            if d in opened.all_dimensions
        ],
    )


def _changes(r: Reader, scope: Scope) -> Changes:
    """Change figures, and the changes implemented in the period (change_count's samples) with
    their outcome and the incidents they caused."""
    c, t = changes.c, tickets.c
    rows = r.conn.execute(
        select(c.change_id, c.change_type, c.service, c.risk, c.outcome, c.implemented_at)
        .where(c.service.in_(scope.services), c.implemented_at >= r.start, c.implemented_at < r.end)
        .order_by(c.implemented_at, c.change_id)
    ).all()
    caused: dict[str, list[str]] = {}
    if rows:
        for change_id, ticket_id in r.conn.execute(
            select(t.caused_by_change_id, t.ticket_id)
            .where(t.kind == "incident", t.caused_by_change_id.in_([x.change_id for x in rows]))
            .order_by(t.ticket_id)
        ):
            caused.setdefault(change_id, []).append(ticket_id)
    records = [
        ChangeRecord(**row._mapping, caused_incidents=caused.get(row.change_id, [])) for row in rows
    ]
    by_outcome: dict[str, int] = {}
    for rec in records:
        by_outcome[rec.outcome or "none"] = by_outcome.get(rec.outcome or "none", 0) + 1
    return Changes(
        count=r.figure("change_count", scope.filters),
        by_type=r.breakdown("change_count", "change_type", scope.filters),
        success=r.figure("change_success_ratio", scope.filters),
        failure=r.figure("change_failure_ratio", scope.filters),
        by_outcome=dict(sorted(by_outcome.items())),
        caused_incidents=len({i for ids in caused.values() for i in ids}),
        changes=records,
    )


def _problems(r: Reader, scope: Scope) -> Problems:
    """Problem figures, and the problem records of the services in scope open at some time in
    the period (opened before its end, not resolved before its start, not cancelled)."""
    t = tickets.c
    linked = tickets.alias("linked")
    incidents = (
        select(func.count())
        .where(linked.c.problem_id == t.ticket_id, linked.c.kind == "incident")
        .scalar_subquery()
    )
    rows = r.conn.execute(
        select(
            t.ticket_id,
            t.snapshot["title"].astext.label("title"),
            t.service,
            t.priority,
            t.state,
            t.opened_at,
            t.resolved_at,
            incidents.label("linked_incidents"),
        )
        .where(
            and_(
                t.kind == "problem",
                t.service.in_(scope.services),
                t.state != "cancelled",
                t.opened_at < r.end,
                or_(t.resolved_at.is_(None), t.resolved_at >= r.start),
            )
        )
        .order_by(t.opened_at, t.ticket_id)
    ).all()
    records = [ProblemRecord(**row._mapping) for row in rows]
    return Problems(
        resolution_time=r.figure("problem_resolution_time_seconds", scope.filters),
        incident_problem_linked=r.figure("incident_problem_linked_ratio", scope.filters),
        problems=records,
        note=None if records else "no problem records of these services open in the period",
    )


def _improvements(conn: Connection, scope: Scope) -> list[Improvement]:
    """The improvements of the scope: a service's, or a customer's and its services'."""
    found: dict[int, Improvement] = {}
    queries: list[dict[str, Any]] = [{"service": s, "customer": None} for s in scope.services]
    if scope.kind == "customer":
        queries.append({"service": None, "customer": scope.id})
    for q in queries:
        for imp in improvements.list_all(conn, state=None, **q).improvements:
            found[imp.id] = imp
    return [found[i] for i in sorted(found)]
