"""Business calendars (SPEC §6.1, §6.2): when an SLA clock runs. The catalog declares them and the
SLA clock counts time on them; they live below both. Pure data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time
from zoneinfo import ZoneInfo

# Local wall-clock opening intervals of one weekday: [start, end); an end of None is midnight.
DayHours = tuple[tuple[time, time | None], ...]

ALL_DAY: DayHours = ((time(0, 0), None),)


@dataclass(frozen=True)
class BusinessCalendar:
    """When the clock runs: weekly hours per weekday (0 = Monday) in `tz`, minus holidays.

    A weekday missing from `weekly` is closed all day; a holiday is closed all day."""

    tz: ZoneInfo
    weekly: Mapping[int, DayHours]
    holidays: frozenset[date] = field(default_factory=frozenset)

    @classmethod
    def always(cls, tz: ZoneInfo | None = None) -> BusinessCalendar:
        """24×7 with no holidays: business time is wall-clock time."""
        return cls(tz or ZoneInfo("UTC"), {d: ALL_DAY for d in range(7)})

    @property
    def is_always(self) -> bool:
        return not self.holidays and all(self.weekly.get(d) == ALL_DAY for d in range(7))
