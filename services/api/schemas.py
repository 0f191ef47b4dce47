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
