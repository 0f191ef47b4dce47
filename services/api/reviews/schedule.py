"""The review schedule's arithmetic (SPEC §7.3): for a scheduled review, the state of each of its
recent periods at an instant. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from services.catalog.model import ScheduledReview
from shared.periods import Period, PeriodKind, last_periods

ScheduleState = Literal["held", "upcoming", "due", "overdue"]
SCHEDULE_STATES: tuple[ScheduleState, ...] = ("held", "upcoming", "due", "overdue")


@dataclass(frozen=True)
class PeriodState:
    period: str
    start: datetime
    end: datetime
    due_until: datetime
    state: ScheduleState
    review_id: int | None


def due_until(end: datetime, grace_days: int, tz: ZoneInfo) -> datetime:
    """End of the grace after a period: `grace_days` local calendar days after its end (so a
    daylight-saving change in between moves it by the hour, as a calendar would)."""
    local = end.astimezone(tz)
    return datetime.combine(local.date() + timedelta(days=grace_days), local.time(), tz).astimezone(
        UTC
    )


def deadlines(
    schedule: Sequence[ScheduledReview],
    kind: str,
    scope: tuple[str, str],
    period: Period,
    tz: ZoneInfo,
) -> set[datetime]:
    """The deadlines of `period`'s review of this kind and scope, one per scheduled review it
    is (none when the catalog schedules no such review): where `review_completion_ratio` places
    that period's sample."""
    return {
        due_until(period.end(tz), r.grace_days, tz)
        for r in schedule
        if r.kind == kind and r.scope == scope and r.every == period.kind
    }


def state_at(at: datetime, end: datetime, until: datetime, held: bool) -> ScheduleState:
    """`held` once a review of the period is recorded (whenever that was); otherwise `upcoming`
    until the period ends, `due` within the grace after it, `overdue` from the grace's end."""
    if held:
        return "held"
    if at < end:
        return "upcoming"
    if at < until:
        return "due"
    return "overdue"


def period_states(
    every: PeriodKind,
    grace_days: int,
    at: datetime,
    tz: ZoneInfo,
    count: int,
    held: Mapping[str, int],
    since: date | None = None,
) -> list[PeriodState]:
    """The period containing `at` and the `count - 1` before it, newest first, with their state;
    `held` maps a period's label to the id of a review recorded for it. Periods ending on or
    before `since` (the schedule's first day) are left out: they were never scheduled."""
    out = []
    for period in last_periods(every, at, tz, count):
        if since is not None and period.next_first_day() <= since:
            continue
        start, end = period.start(tz), period.end(tz)
        until = due_until(end, grace_days, tz)
        review = held.get(period.label)
        out.append(
            PeriodState(
                period.label,
                start,
                end,
                until,
                state_at(at, end, until, review is not None),
                review,
            )
        )
    return out
