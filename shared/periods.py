"""Review periods (SPEC §7.3): `2026-10` (month), `2026-W41` (ISO week), `2026-Q4` (quarter),
their boundaries in the reporting time zone, and the periods before one. Below the catalog (its
review schedule names a period kind) and the api (records and schedule). Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from shared.windows import FIRST_YEAR, LAST_YEAR

PeriodKind = Literal["week", "month", "quarter"]
PERIOD_KINDS: tuple[PeriodKind, ...] = ("week", "month", "quarter")

_MONTH = re.compile(r"(\d{4})-(\d{2})")
_WEEK = re.compile(r"(\d{4})-W(\d{2})", re.IGNORECASE)
_QUARTER = re.compile(r"(\d{4})-Q(\d)", re.IGNORECASE)


@dataclass(frozen=True)
class Period:
    """One review period: its kind, its canonical label and its first local day."""

    kind: PeriodKind
    first_day: date

    @property
    def label(self) -> str:
        d = self.first_day
        if self.kind == "week":
            year, week, _ = d.isocalendar()
            return f"{year}-W{week:02d}"
        if self.kind == "quarter":
            return f"{d.year}-Q{(d.month - 1) // 3 + 1}"
        return f"{d.year}-{d.month:02d}"

    def next_first_day(self) -> date:
        d = self.first_day
        if self.kind == "week":
            return d + timedelta(days=7)
        months = 3 if self.kind == "quarter" else 1
        index = d.year * 12 + d.month - 1 + months
        return date(index // 12, index % 12 + 1, 1)

    def start(self, tz: ZoneInfo) -> datetime:
        """Start (UTC): local midnight of the first day."""
        return _midnight(self.first_day, tz)

    def end(self, tz: ZoneInfo) -> datetime:
        """End (UTC, exclusive): local midnight of the next period's first day."""
        return _midnight(self.next_first_day(), tz)

    def previous(self) -> Period:
        return period_containing(self.kind, self.first_day - timedelta(days=1))


def _midnight(d: date, tz: ZoneInfo) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=tz).astimezone(UTC)


def parse_period(text: str) -> Period:
    """`2026-10`, `2026-W41` (`w` too) or `2026-Q4` (`q` too) → the period; ValueError with the
    reason otherwise."""
    value = text.strip()
    try:
        period = _parsed(value)
        if period is not None and not FIRST_YEAR <= period.first_day.year <= LAST_YEAR:
            raise ValueError(f"the year must be {FIRST_YEAR}-{LAST_YEAR}")
    except ValueError as err:
        raise ValueError(f"bad period {text!r}: {err}") from None
    if period is None:
        raise ValueError(
            f"bad period {text!r}: use a month (2026-10), an ISO week (2026-W41) or a quarter "
            "(2026-Q4)"
        )
    return period


def _parsed(value: str) -> Period | None:
    if m := _MONTH.fullmatch(value):
        return Period("month", date(int(m[1]), int(m[2]), 1))
    if m := _WEEK.fullmatch(value):
        return Period("week", date.fromisocalendar(int(m[1]), int(m[2]), 1))
    if m := _QUARTER.fullmatch(value):
        quarter = int(m[2])
        if not 1 <= quarter <= 4:
            raise ValueError(f"quarter {quarter} is not 1-4")
        return Period("quarter", date(int(m[1]), 3 * quarter - 2, 1))
    return None


def period_containing(kind: PeriodKind, day: date) -> Period:
    """The `kind` period a local day belongs to."""
    if kind == "week":
        return Period("week", day - timedelta(days=day.weekday()))
    if kind == "quarter":
        return Period("quarter", date(day.year, (day.month - 1) // 3 * 3 + 1, 1))
    if kind == "month":
        return Period("month", day.replace(day=1))
    raise ValueError(f"unknown period kind {kind!r}")


def period_at(kind: PeriodKind, at: datetime, tz: ZoneInfo) -> Period:
    """The `kind` period an instant falls in, in the time zone `tz`."""
    return period_containing(kind, at.astimezone(tz).date())


def last_periods(kind: PeriodKind, at: datetime, tz: ZoneInfo, count: int) -> list[Period]:
    """The period containing `at` and the `count - 1` before it, newest first."""
    periods = [period_at(kind, at, tz)]
    while len(periods) < count:
        periods.append(periods[-1].previous())
    return periods
