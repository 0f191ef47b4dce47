"""Response and request models of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
    value: float | None = Field(description="the indicator's value for the service; null: none")
    status: str = Field(description="met | warning | breached | no_data")


class ObjectiveItem(BaseModel):
    service: str
    indicator: str
    window: str
    comparator: str
    target: float
    warning: float | None
    weight: float
    current: ObjectiveWindow
    previous: ObjectiveWindow
    drift_score: float | None = Field(
        description="drift of the service's series in the current window (SPEC §6.4); "
        "null until the drift job has scored it"
    )
    drifting: bool | None = None


class ObjectiveList(BaseModel):
    objectives: list[ObjectiveItem]
