"""Request and response models of the improvement register, with the OpenAPI examples."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.api.improvements.states import Element, Source, State
from services.api.params import STORABLE, Day
from shared.windows import WindowKind

Text = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=300, pattern=STORABLE),
]
LongText = Annotated[str, StringConstraints(max_length=10_000, pattern=STORABLE)]
Target = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Windows = Annotated[int, Field(strict=True, ge=1, le=366)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Links(_Request):
    """Where the improvement came from: ids of the review, its action item, the objective."""

    review: Text | None = None
    action_item: Text | None = None
    objective: Text | None = None


class Action(_Request):
    description: Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=STORABLE)]
    owner: Text | None = None
    due_date: Day | None = None
    done: bool = False


_CREATE_EXAMPLE: dict[str, Any] = {
    "title": "Fewer major e-mail incidents through mailbox quota alerts",
    "description": "Quota exhaustion caused most major e-mail incidents last quarter.",
    "service": "email",
    "indicator": "major_incident_count",
    "window": "week",
    "target": 0.5,
    "elements": ["technology", "process"],
    "source": "review_action_item",
    "links": {"review": "R-2026-10", "action_item": "R-2026-10-3"},
    "actions": [{"description": "Alert at 90 % quota", "owner": "messaging team"}],
    "owner": "Head of messaging",
    "due_date": "2026-12-31",
    "verification_windows": 4,
    "by": "service manager",
}


class ImprovementCreate(_Request):
    """A proposed improvement. `service` or `customer` (or neither: the whole organisation)
    says at which scope the indicator is measured; `window` is the window kind of its baseline
    and verification; `verification_windows` how many whole windows after `implemented` are
    verified; `by` who proposes it (the owner when not given)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_CREATE_EXAMPLE]})

    title: Text
    description: LongText = ""
    service: Text | None = None
    customer: Text | None = None
    indicator: Text
    window: WindowKind
    target: Target
    elements: Annotated[list[Element], Field(min_length=1, max_length=4)]
    source: Source
    links: Links = Links()
    actions: Annotated[list[Action], Field(max_length=100)] = []
    owner: Text
    due_date: Day | None = None
    verification_windows: Windows = 1
    by: Text | None = None


class ImprovementPatch(_Request):
    """Fields to change (only those given). Allowed while the improvement is `proposed`,
    `approved` or `in_progress`; `service`, `customer`, `indicator` and `window` only while
    `proposed` (the baseline is captured for them on approval). States change through
    `POST /v1/improvements/{id}/transitions`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"target": 0.25, "owner": "Messaging lead"}]},
    )

    title: Text | None = None
    description: LongText | None = None
    service: Text | None = None
    customer: Text | None = None
    indicator: Text | None = None
    window: WindowKind | None = None
    target: Target | None = None
    elements: Annotated[list[Element], Field(min_length=1, max_length=4)] | None = None
    source: Source | None = None
    links: Links | None = None
    actions: Annotated[list[Action], Field(max_length=100)] | None = None
    owner: Text | None = None
    due_date: Day | None = None
    verification_windows: Windows | None = None


class TransitionRequest(_Request):
    """Move the improvement to state `to`. A person's decision on the outcome (`verified`,
    `not_achieved`) needs a reason in `note`; it is kept beside the automatic evidence."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"to": "approved", "by": "change advisory board", "note": "budget agreed"},
                {
                    "to": "not_achieved",
                    "by": "service manager",
                    "note": "the quarter's numbers were distorted by the data-centre move",
                },
            ]
        },
    )

    to: State
    by: Text
    note: LongText = ""


class Transition(BaseModel):
    from_state: State | None
    to_state: State
    by: str
    note: str
    at: datetime


class WindowValue(BaseModel):
    window_start: datetime
    window_end: datetime
    value: float | None
    count: int


class Measured(BaseModel):
    """The indicator over some windows, read as `GET /v1/indicators/{id}` answers them (`query`
    is that request): each window's value and count, and `value`, their summary (counts: the
    windows' mean; ratios and means: the count-weighted mean). `reason` says why `value` is
    null."""

    value: float | None
    reason: str | None = None
    windows: list[WindowValue]
    query: dict[str, Any]
    at: datetime


class Evidence(Measured):
    """The verification: the indicator over the verification period against the baseline and
    the target, in the indicator's better direction."""

    direction: str
    baseline: float | None
    target: float
    outcome: State
    target_met: bool | None
    better_than_baseline: bool | None
    reasons: list[str]


class Decision(BaseModel):
    """A person's decision on the outcome, with its reason."""

    state: State
    by: str
    reason: str
    at: datetime


class Improvement(BaseModel):
    id: int
    title: str
    description: str
    service: str | None
    customer: str | None
    indicator: str
    window: str
    target: float
    elements: list[str]
    source: str
    links: dict[str, Any]
    actions: list[dict[str, Any]]
    owner: str
    due_date: date | None
    verification_windows: int
    state: State
    allowed_transitions: list[State]
    baseline: Measured | None
    verify_from: datetime | None
    verify_until: datetime | None
    evidence: Evidence | None
    decision: Decision | None
    created_at: datetime
    updated_at: datetime
    transitions: list[Transition] | None = Field(
        default=None, description="every transition, oldest first (GET of one improvement)"
    )


class ImprovementList(BaseModel):
    improvements: list[Improvement]


class Report(BaseModel):
    """One improvement's outcome in numbers: its indicator, baseline, target, what was observed
    over the verification period, the change, the evidence and the decision."""

    improvement: Improvement
    unit: str
    direction: str
    baseline: float | None
    target: float
    observed: float | None
    change: float | None = Field(description="observed − baseline")
    change_ratio: float | None = Field(description="(observed − baseline) / |baseline|")
    outcome: State
