"""Response and request models of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class Rejected(BaseModel):
    index: int = Field(description="position in the submitted batch (0 for a single event)")
    id: str | None = None
    reason: str


class IngestResult(BaseModel):
    accepted: list[str]
    rejected: list[Rejected]


class IndicatorInfo(BaseModel):
    id: str
    family: str
    unit: str
    direction: str
    definition: str
    dimensions: list[str]
    metric: str


class IndicatorList(BaseModel):
    indicators: list[IndicatorInfo]


class Point(BaseModel):
    window_start: datetime
    window_end: datetime
    dimensions: dict[str, str]
    value: float | None
    count: int
    p50: float | None = None
    p90: float | None = None


class IndicatorSeries(BaseModel):
    indicator: str
    unit: str
    window: str
    points: list[Point]


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


class DeadLetterItem(BaseModel):
    id: int
    received_at: datetime
    reason: str
    topic: str | None
    partition: int | None
    offset: int | None
    event_source: str | None
    event_id: str | None
    event_type: str | None
    replayed_at: datetime | None
    raw_text: str | None = Field(
        description="the raw bytes decoded as UTF-8; null when they are not valid UTF-8"
    )
    raw_base64: str = Field(description="the raw bytes, base64 (always present)")


class DeadLetterList(BaseModel):
    items: list[DeadLetterItem] = Field(description="newest first")
    next_before_id: int | None = Field(
        description="pass as `before_id` for the next, older page; null on the last page"
    )


class ObjectiveWindow(BaseModel):
    window_start: datetime
    value: float | None = Field(
        description="the indicator's value for the service, the customer or the organisation; "
        "null: none"
    )
    status: str = Field(description="met | warning | breached | no_data")


class ObjectiveItem(BaseModel):
    scope: Literal["service", "customer", "organisation"]
    service: str = Field(description="the service of a service's objective, else ''")
    customer: str = Field(description="the customer of a customer's objective, else ''")
    indicator: str
    window: str
    comparator: str
    target: float
    warning: float | None
    weight: float
    current: ObjectiveWindow
    previous: ObjectiveWindow
    drift_score: float | None = Field(
        description="drift of the service's, customer's or total series in the previous (last "
        "complete) window against the windows before it (SPEC §6.4; a partial window is never "
        "scored); null until the drift job has scored it"
    )
    drifting: bool | None = Field(
        default=None,
        description="|drift_score| at or above the catalog's drift_threshold in the direction "
        "worse for the indicator",
    )


class ObjectiveList(BaseModel):
    objectives: list[ObjectiveItem]


class SlaTarget(BaseModel):
    target_seconds: float = Field(description="the policy's target, in SLA-clock seconds")
    due: datetime | None = Field(
        description="when the target passes; null while an open-ended pause stops the clock"
    )
    met: bool | None = Field(description="null while the target can still be met")
    decided_at: datetime | None = Field(
        description="when it was met (the response or resolution) or breached (its due instant)"
    )
    seconds_left: float | None = Field(
        description="SLA-clock seconds left at the time of the request (calendar hours outside "
        "pauses), ≤ 0 once breached; null when the work is done or the ticket is not open"
    )


class TicketSla(BaseModel):
    policy_id: str | None = Field(description="null: no policy applies to the ticket")
    calendar: str | None
    paused: bool | None = Field(
        description="the ticket is open in one of the policy's pause states"
    )
    clock_running: bool | None = Field(
        description="the clock counts right now: the ticket is open, not paused, and inside the "
        "calendar's hours"
    )
    response: SlaTarget | None
    resolution: SlaTarget | None


class TicketInfo(BaseModel):
    ticket_id: str
    kind: str
    state: str
    priority: int | None
    impact: int | None
    urgency: int | None
    service: str | None
    channel: str | None
    assignment_group: str | None
    assignee: str | None
    ci_ids: list[str]
    major: bool
    problem_id: str | None
    caused_by_change_id: str | None
    knowledge_article_ids: list[str]
    opened_at: datetime
    responded_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    reassignments: int
    reopens: int
    paused_seconds: float = Field(description="wall-clock seconds spent in `pending`")
    first_contact_resolution: bool | None
    last_event_time: datetime
    sla: TicketSla | None = Field(
        description="SLA of an incident (SPEC §6.2), evaluated when the request is made; null "
        "for other kinds, which no SLA is evaluated for"
    )


class TicketList(BaseModel):
    tickets: list[TicketInfo] = Field(description="newest opened first (then ticket id)")
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null on the last page"
    )


class ServicePolicy(BaseModel):
    id: str
    priorities: list[int] = Field(description="the priorities it governs for this service")
    response_target_seconds: float
    resolution_target_seconds: float
    calendar: str
    pause_states: list[str]


class ServiceHealth(BaseModel):
    window: str
    window_start: datetime
    window_end: datetime
    service_health_score: float | None = Field(description="0–100; null: not computed yet")
    service_objectives_met_ratio: float | None


class ServiceInfo(BaseModel):
    id: str
    name: str | None
    customer: str
    customer_name: str | None
    sla_policies: list[ServicePolicy]
    health: list[ServiceHealth] = Field(
        description="the current window of each window kind its objectives use"
    )
    objectives: list[ObjectiveItem]


class ServiceList(BaseModel):
    services: list[ServiceInfo]


class ChangeInfo(BaseModel):
    change_id: str
    change_type: str | None
    service: str | None
    ci_ids: list[str]
    risk: str | None
    state: str
    approved: bool
    requested_at: datetime | None
    approved_at: datetime | None
    rejected_at: datetime | None
    planned_start: datetime | None
    planned_end: datetime | None
    actual_start: datetime | None
    actual_end: datetime | None
    implemented_at: datetime | None
    outcome: str | None
    release_id: str | None
    last_event_time: datetime


class ConfigItemInfo(BaseModel):
    ci_id: str
    ci_type: str | None
    name: str | None
    services: list[str]
    owner: str | None
    depends_on: list[str]
    critical: bool = Field(description="its outage takes its services down")
    attributes: dict[str, Any]
    created_at: datetime
    deleted_at: datetime | None = Field(description="set once the CI was deleted")
    last_event_time: datetime
