"""Window boundaries (SPEC §5): `hour`, `day`, `week` (ISO, Monday), `month`, `quarter`
(calendar quarters from January, April, July, October), aligned in the reporting time zone.
The one module that knows where a window starts and ends, below every service (collector
marks, aggregator, api). Pure."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

WindowKind = Literal["hour", "day", "week", "month", "quarter"]
WINDOW_KINDS: tuple[WindowKind, ...] = ("hour", "day", "week", "month", "quarter")
# The kinds that add up from their days (services/aggregator/merge.py).
MERGED_KINDS: tuple[WindowKind, ...] = ("week", "month", "quarter")
# The years windows and periods are computed in: far enough from Python's calendar's ends
# (years 1-9999) that a window, a period, the one before it or a default span never leaves it,
# whatever the time zone. What the api is asked for outside them is a 422.
FIRST_YEAR, LAST_YEAR = 1900, 2999


def _local_midnight(d: date, tz: ZoneInfo) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=tz).astimezone(UTC)


def window_start(kind: str, ts: datetime, tz: ZoneInfo) -> datetime:
    """Start (UTC) of the `kind` window containing `ts`."""
    local = ts.astimezone(tz)
    if kind == "hour":
        return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    if kind == "day":
        return _local_midnight(local.date(), tz)
    if kind == "week":
        return _local_midnight(local.date() - timedelta(days=local.weekday()), tz)
    if kind == "month":
        return _local_midnight(local.date().replace(day=1), tz)
    if kind == "quarter":
        d = local.date()
        return _local_midnight(date(d.year, (d.month - 1) // 3 * 3 + 1, 1), tz)
    raise ValueError(f"unknown window kind {kind!r}")


def window_end(kind: str, start: datetime, tz: ZoneInfo) -> datetime:
    """End (UTC, exclusive) of the `kind` window starting at `start`."""
    if kind == "hour":
        return start + timedelta(hours=1)
    local = start.astimezone(tz).date()
    if kind == "day":
        return _local_midnight(local + timedelta(days=1), tz)
    if kind == "week":
        return _local_midnight(local + timedelta(days=7), tz)
    if kind == "month":
        nxt = date(local.year + (local.month == 12), local.month % 12 + 1, 1)
        return _local_midnight(nxt, tz)
    if kind == "quarter":  # `start` is a quarter's first day: its month + 3
        index = local.year * 12 + local.month - 1 + 3
        return _local_midnight(date(index // 12, index % 12 + 1, 1), tz)
    raise ValueError(f"unknown window kind {kind!r}")


def previous_start(kind: str, start: datetime, tz: ZoneInfo) -> datetime:
    """Start of the window just before the one starting at `start`."""
    return window_start(kind, start - timedelta(microseconds=1), tz)


def windows_of(
    ts: datetime, tz: ZoneInfo, kinds: tuple[str, ...] = WINDOW_KINDS
) -> list[tuple[str, datetime]]:
    """Every (kind, start) window containing `ts`."""
    return [(k, window_start(k, ts, tz)) for k in kinds]


def windows_overlapping(
    start: datetime, end: datetime, tz: ZoneInfo, kinds: tuple[str, ...] = WINDOW_KINDS
) -> list[tuple[str, datetime]]:
    """Every (kind, start) window that overlaps [start, end] (both ends included)."""
    out = []
    for kind in kinds:
        w = window_start(kind, start, tz)
        while w <= end:
            out.append((kind, w))
            w = window_end(kind, w, tz)
    return out
