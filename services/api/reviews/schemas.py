"""Request and response models of the review records and the schedule, with OpenAPI examples."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.api.params import STORABLE, Day, Instant
from services.api.reviews.items import ItemState
from services.api.reviews.schedule import ScheduleState
from services.catalog.model import ReviewKind
from shared.periods import PeriodKind

Text = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=300, pattern=STORABLE),
]
LongText = Annotated[str, StringConstraints(max_length=10_000, pattern=STORABLE)]
Level = Annotated[int, Field(strict=True, ge=1, le=4)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ActionItemCreate(_Request):
    title: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=2000, pattern=STORABLE),
    ]
    owner: Text
    due: Day | None = None
    state: ItemState = "open"
    note: LongText = ""


_CREATE_EXAMPLE: dict[str, Any] = {
    "kind": "customer",
    "level": 2,
    "customer": "acme",
    "period": "2026-10",
    "held_at": "2026-11-04T10:00:00Z",
    "participants": ["service manager", "ACME IT lead", "service desk lead"],
    "notes": "SLA met except for two P2 e-mail incidents; satisfaction steady at 4.3.",
    "decisions": ["Quota alerts for mailboxes before the year-end closing"],
    "action_items": [
        {"title": "Alert at 90 % mailbox quota", "owner": "messaging team", "due": "2026-11-30"},
        {"title": "Share the major incident report of 14 Oct", "owner": "service manager"},
    ],
    "recorded_by": "service manager",
}


class ReviewCreate(_Request):
    """A review that took place. A `customer` review is of a `service` or a `customer`, a `team`
    review of an `assignment_group`; `level` 1-4 of the review mechanism; `period` the month
    (`2026-10`), ISO week (`2026-W41`) or quarter (`2026-Q4`) reviewed; `held_at` when it took
    place (default: now; not in the future)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_CREATE_EXAMPLE]})

    kind: ReviewKind
    level: Level
    service: Text | None = None
    customer: Text | None = None
    assignment_group: Text | None = None
    period: Annotated[str, StringConstraints(strip_whitespace=True, max_length=20)]
    held_at: Instant | None = None
    participants: Annotated[list[Text], Field(min_length=1, max_length=200)]
    notes: LongText = ""
    decisions: Annotated[list[LongText], Field(max_length=200)] = []
    action_items: Annotated[list[ActionItemCreate], Field(max_length=200)] = []
    recorded_by: Text


class ActionItemPatch(_Request):
    """What changed about an action item (only the fields given) and who says so (`by`). `state`
    moves `open ↔ in_progress → done | dropped`; a `done` or `dropped` item is final (409, with
    the allowed states). `note` replaces the item's note and is kept with a state change."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"state": "in_progress", "note": "alert rule drafted", "by": "messaging team"},
                {"owner": "messaging lead", "due": "2026-12-15", "by": "service manager"},
            ]
        },
    )

    state: ItemState | None = None
    note: LongText | None = None
    owner: Text | None = None
    due: Day | None = None
    by: Text


class ItemChange(BaseModel):
    from_state: ItemState | None
    to_state: ItemState
    by: str
    note: str
    at: datetime


class ActionItem(BaseModel):
    id: int
    review_id: int
    period: str = Field(description="the period of the review that recorded the item")
    title: str
    owner: str
    due: date | None
    state: ItemState
    allowed_states: list[ItemState]
    note: str
    updated_at: datetime
    updated_by: str
    history: list[ItemChange] = Field(description="every change of state, oldest first")


class PreviousReview(BaseModel):
    """The review of the same kind and scope held just before, with its items' progress."""

    id: int
    level: int
    period: str
    held_at: datetime
    action_items: list[ActionItem]


class Review(BaseModel):
    id: int
    kind: ReviewKind
    level: int
    service: str | None
    customer: str | None
    assignment_group: str | None
    period: str
    period_kind: PeriodKind
    period_start: datetime
    period_end: datetime
    held_at: datetime
    participants: list[str]
    notes: str
    decisions: list[str]
    recorded_by: str
    created_at: datetime
    action_items: list[ActionItem]
    previous: PreviousReview | None = Field(
        default=None, description="GET of one review: the one held before it (same kind, scope)"
    )
    carried_items: list[ActionItem] | None = Field(
        default=None,
        description=(
            "GET of one review: the action items still open (open, in_progress) of every "
            "review of the same kind and scope held before it, oldest first, as they are now"
        ),
    )


class ReviewList(BaseModel):
    reviews: list[Review]


class ScheduledPeriod(BaseModel):
    period: str
    start: datetime
    end: datetime
    due_until: datetime = Field(description="the period's end plus the grace days")
    state: ScheduleState
    review_id: int | None = Field(description="the newest review recorded for it, when held")


class ScheduleEntry(BaseModel):
    kind: ReviewKind
    level: int
    service: str | None
    customer: str | None
    assignment_group: str | None
    every: PeriodKind
    participants: list[str]
    grace_days: int
    since: date | None = Field(
        default=None, description="the schedule's first day: earlier periods are not listed"
    )
    periods: list[ScheduledPeriod] = Field(description="the current period first, then before")


class Schedule(BaseModel):
    """The catalog's review schedule at `at`: per scheduled review its recent periods, each
    `held` (a review of that kind, scope and period is recorded), `upcoming` (not ended), `due`
    (ended, within the grace days) or `overdue`; `counts` sums the states over every entry."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "at": "2026-11-10T09:00:00Z",
                    "counts": {"held": 1, "upcoming": 1, "due": 0, "overdue": 0},
                    "entries": [
                        {
                            "kind": "customer",
                            "level": 2,
                            "service": None,
                            "customer": "acme",
                            "assignment_group": None,
                            "every": "month",
                            "participants": ["service manager", "customer IT lead"],
                            "grace_days": 5,
                            "periods": [
                                {
                                    "period": "2026-11",
                                    "start": "2026-11-01T00:00:00Z",
                                    "end": "2026-12-01T00:00:00Z",
                                    "due_until": "2026-12-06T00:00:00Z",
                                    "state": "upcoming",
                                    "review_id": None,
                                },
                                {
                                    "period": "2026-10",
                                    "start": "2026-10-01T00:00:00Z",
                                    "end": "2026-11-01T00:00:00Z",
                                    "due_until": "2026-11-06T00:00:00Z",
                                    "state": "held",
                                    "review_id": 7,
                                },
                            ],
                        }
                    ],
                }
            ]
        }
    )

    at: datetime
    counts: dict[ScheduleState, int]
    entries: list[ScheduleEntry]
