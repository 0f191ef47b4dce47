"""Response model of the team review (SPEC §7.3, issue 11): one assignment group over one
period, for the team's own meeting — where per-ticket detail and (later) per-engineer values
belong, never in Prometheus."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from services.api.reviews.customer_schemas import Figure
from services.api.reviews.schemas import ActionItem, PreviousReview
from shared.periods import PeriodKind


class TicketLine(BaseModel):
    """One ticket of the group, with where to read it whole (`link`)."""

    ticket_id: str
    link: str = Field(description="the ticket in this API: /v1/tickets/{id}")
    kind: str
    service: str | None
    priority: int | None
    state: str
    opened_at: datetime
    resolved_at: datetime | None
    reassignments: int
    reopens: int
    age_days: float = Field(description="opened → resolved, or → the period's end if open then")


class DifficultTickets(BaseModel):
    """Tickets of the group touched in the period (opened, resolved, or open at some time in
    it), the `limit` worst by each measure."""

    most_reassigned: list[TicketLine] = Field(description="reassigned at least once, most first")
    longest_open: list[TicketLine] = Field(description="longest open, oldest first")
    reopened: list[TicketLine] = Field(description="reopened at least once, most first")


class Unresolved(BaseModel):
    """Tickets of the group open at the period's end, oldest first; `aged` those open longer
    than `aged_after_days`."""

    aged_after_days: int
    count: int
    aged: int
    tickets: list[TicketLine]


class GroupBrief(BaseModel):
    """The group's volumes and SLA over the period and the one before, as the indicator API
    answers them with `assignment_group=…`."""

    opened: Figure
    resolved: Figure
    backlog: Figure
    resolution_time: Figure
    sla_resolution_met: Figure
    reassignment: Figure
    reopen: Figure


class ProblemLine(BaseModel):
    ticket_id: str
    link: str
    service: str | None
    state: str
    opened_at: datetime
    resolved_at: datetime | None
    linked_incidents: int = Field(description="incidents naming it as their problem_id")


class Kpi(BaseModel):
    value: float | None
    count: int = Field(description="the samples behind the value")


class EngineerKpis(BaseModel):
    """One engineer's work for the group over the period (tickets whose current group and
    assignee these are), by the same statements as the indicators; `unknown`: tickets nobody
    took. Here and nowhere else: per-engineer values are never stored nor exported."""

    assignee: str
    resolved: Kpi = Field(description="ticket_resolved_count: tickets of every kind resolved")
    resolution_time: Kpi = Field(description="incident_resolution_time_seconds: the mean")
    resolution_time_p50: float | None
    resolution_time_p90: float | None
    sla_resolution_met: Kpi = Field(description="incident_sla_resolution_met_ratio")
    reopen: Kpi = Field(description="incident_reopen_ratio")


class Plan(BaseModel):
    """The previous period's plan (the items of the group's previous team review, with their
    progress, and every item still open) and the next one (the items recorded at this period's
    review, if it was held)."""

    previous_review: PreviousReview | None
    still_open: list[ActionItem]
    next_items: list[ActionItem]


class TeamReview(BaseModel):
    """The team review of one assignment group for one period (SPEC §7.3)."""

    assignment_group: str
    period: str
    period_kind: PeriodKind
    period_start: datetime
    period_end: datetime
    previous_period: str
    window: str = Field(description="the indicator window kind read for the period")
    generated_at: datetime
    plan: Plan
    brief: GroupBrief
    difficult: DifficultTickets
    unresolved: Unresolved
    problems: list[ProblemLine] = Field(
        description="problems of the group open at some time in the period, oldest first"
    )
    engineers: list[EngineerKpis] = Field(description="by assignee; `unknown` last")
