"""Response model of the customer review (SPEC §7.3, issue 11), its sections in the order of the
domain notes' 客户回顾内容, with an OpenAPI example."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.api.improvements.schemas import Improvement
from services.api.reviews.customer_example import EXAMPLE
from services.api.reviews.schemas import ActionItem, PreviousReview
from shared.periods import PeriodKind

# better/worse by the indicator's direction; up/down for a neutral one (a volume).
Trend = Literal["better", "worse", "same", "up", "down"]
Status = Literal["met", "warning", "breached", "no_data"]


class Figure(BaseModel):
    """One indicator over the period and the one before, read as `GET /v1/indicators/{id}`
    answers it for that window and these filters (`count`: the samples behind the value)."""

    indicator: str
    unit: str
    direction: str
    filters: dict[str, str]
    value: float | None
    count: int
    previous: float | None
    previous_count: int
    trend: Trend | None = Field(description="value against previous; null when either is null")


class HistoryPoint(BaseModel):
    """One period of a figure's history: the indicator's value for that period's window, as
    `GET /v1/indicators/{id}` answers it (null without a point; a count with nothing to count
    is 0, as the indicator API fills it)."""

    period: str
    start: datetime
    end: datetime
    value: float | None
    count: int


class SlaPoint(HistoryPoint):
    status: Status = Field(description="as the aggregator stored it; no_data when it stored none")


class FigureWithHistory(Figure):
    """A key figure, with the periods before it to draw its trend line."""

    history: list[HistoryPoint] = Field(
        description="the last `history` periods of the review's kind, oldest first, ending with "
        "the reviewed one"
    )


class Group(BaseModel):
    key: str
    value: float | None
    count: int
    previous: float | None
    previous_count: int
    trend: Trend | None


class Breakdown(BaseModel):
    """One indicator grouped by one dimension (`group_by` of the indicator API)."""

    indicator: str
    dimension: str
    groups: list[Group] = Field(description="every key with a point in either period, sorted")


class SlaItem(BaseModel):
    """One catalog objective of a service in scope, or of the reviewed customer itself, on the
    period's window kind: the indicator's value (as the indicator API serves it per service or
    per customer) and the stored status."""

    service: str = Field(description="the service of a service's objective, else ''")
    customer: str = Field(
        default="", description="the customer of a customer's own objective, else ''"
    )
    indicator: str
    unit: str
    direction: str
    comparator: str
    target: float
    warning: float | None
    weight: float
    value: float | None
    status: Status
    previous: float | None
    previous_status: Status
    trend: Trend | None
    history: list[SlaPoint] = Field(
        description="the last `history` periods of the review's kind, oldest first, ending with "
        "the reviewed one, each with the objective's stored status"
    )

    @property
    def of(self) -> str:
        """Whom the objective is of, as a review shows it."""
        return self.service or f"{self.customer} (customer)"


class ObjectivesMet(BaseModel):
    """Counts of the `sla` items by status this period; `ratio` is the indicator
    `service_objectives_met_ratio` for the scope (met / objectives with data)."""

    met: int
    warning: int
    breached: int
    no_data: int
    total: int
    ratio: Figure


class TimelineStep(BaseModel):
    at: datetime
    state: str


class MajorIncident(BaseModel):
    ticket_id: str
    title: str | None = Field(description="the source's `title` when its events carried one")
    service: str | None
    priority: int | None
    state: str
    opened_at: datetime
    responded_at: datetime | None
    resolved_at: datetime | None
    duration_seconds: float | None = Field(description="resolved_at − opened_at; null if open")
    timeline: list[TimelineStep] = Field(description="every change of state, from its events")


class CiOutages(BaseModel):
    """Outages of one CI of a service in scope (the technical indicators are per CI)."""

    ci: str
    name: str | None
    outages: Figure
    mttr_seconds: Figure


class ServicePerformance(BaseModel):
    availability: FigureWithHistory
    major_incident_count: Figure
    incident_resolution_time: FigureWithHistory = Field(
        description="mean time to resolve incidents (MTTR)"
    )
    incident_sla_resolution_met: Figure
    cis: list[CiOutages] = Field(description="CIs naming a service in scope, by id")
    major_incidents: list[MajorIncident] = Field(description="major incidents opened in period")


class Satisfaction(BaseModel):
    csat: FigureWithHistory = Field(
        description="mean survey score; `count` is the number of responses"
    )


class Workload(BaseModel):
    opened: FigureWithHistory = Field(description="tickets of every kind opened in the period")
    resolved: FigureWithHistory
    backlog: Figure = Field(description="incidents open at the period's end")
    opened_by: list[Breakdown] = Field(
        description="opened tickets by each of kind, priority, channel the indicator offers"
    )


class ChangeRecord(BaseModel):
    change_id: str
    change_type: str | None
    service: str | None
    risk: str | None
    outcome: str | None
    implemented_at: datetime
    caused_incidents: list[str] = Field(description="incidents naming it caused_by_change_id")


class Changes(BaseModel):
    count: Figure
    by_type: Breakdown
    success: Figure
    failure: Figure
    by_outcome: dict[str, int] = Field(
        description="the listed changes by outcome (`none` when not reported yet); the "
        "indicator API has no outcome dimension, so these are counts of the records below"
    )
    caused_incidents: int = Field(description="distinct incidents caused by the listed changes")
    changes: list[ChangeRecord] = Field(description="changes implemented in the period")


class ProblemRecord(BaseModel):
    ticket_id: str
    title: str | None
    service: str | None
    priority: int | None
    state: str
    opened_at: datetime
    resolved_at: datetime | None
    linked_incidents: int = Field(description="incidents naming it as their problem_id")


class Problems(BaseModel):
    resolution_time: Figure
    incident_problem_linked: Figure
    problems: list[ProblemRecord] = Field(
        description="problems open at some time in the period (not cancelled), oldest first"
    )
    note: str | None = Field(description="why the list is empty, when it is")


class ActionItems(BaseModel):
    open: list[ActionItem] = Field(
        description="items still open (open, in_progress) of the scope's customer reviews of "
        "earlier periods, oldest first, as they are now"
    )
    previous_review: PreviousReview | None = Field(
        description="the scope's customer review of the latest earlier period, with every one "
        "of its items and their history"
    )


class CustomerReview(BaseModel):
    """The customer review of one service or customer for one period (SPEC §7.3), its sections
    in the order of the domain notes. Every indicator number is the one `GET /v1/indicators`
    answers for the same window (`window`), filters and period."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE]})

    customer: str | None
    service: str | None
    services: list[str] = Field(description="the services in scope")
    period: str
    period_kind: PeriodKind
    period_start: datetime
    period_end: datetime
    previous_period: str
    window: str = Field(description="the indicator window kind read for the period")
    generated_at: datetime
    sla: list[SlaItem]
    objectives_met: ObjectivesMet
    service_performance: ServicePerformance
    satisfaction: Satisfaction
    workload: Workload
    changes: Changes
    problems: Problems
    action_items: ActionItems
    improvements: list[Improvement]
