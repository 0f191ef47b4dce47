"""The SLA clock (SPEC §6.2): elapsed time counted only inside a business calendar's hours and
outside pause states. Pure: calendars, instants and intervals in, seconds and instants out."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from shared.calendar import ALL_DAY, BusinessCalendar, DayHours

Interval = tuple[datetime, datetime]
# A pause as recorded on a ticket: (start, end), end None while the ticket is still paused.
Pause = tuple[datetime, datetime | None]

_DAY = timedelta(days=1)
_ZERO = timedelta(0)
# UTC offsets lie within [-12 h, +14 h]: every instant whose local date is D falls between
# D 00:00 − 14 h and D+1 00:00 + 12 h read as UTC. One more hour of margin on either side.
_BEFORE_LOCAL_MIDNIGHT = timedelta(hours=15)
_AFTER_LOCAL_MIDNIGHT = timedelta(hours=37)
# After the last holiday and the last pause, the weekly pattern repeats; two weeks without a
# single open second then mean the calendar is never open (one week may lose its only
# interval to a DST gap).
_QUIET_SPAN = timedelta(days=14)


# --- public API --------------------------------------------------------------------------


def open_intervals(cal: BusinessCalendar, start: datetime, end: datetime) -> list[Interval]:
    """Aware-UTC intervals within [start, end) when `cal` is open (SPEC §6.2), sorted, disjoint
    and merged (a night shift 22:00–24:00 + 00:00–06:00 comes back as one interval).

    An instant is open when its wall-clock time in `cal.tz` lies in one of its local date's
    weekly intervals and that date is not a holiday. So a local time skipped by DST opens
    nothing, and an hour repeated by DST counts twice (a 00:00–24:00 day is 23 h or 25 h;
    09:00–17:00 stays 8 h)."""
    start, end = _utc(start), _utc(end)
    if end <= start:
        return []
    if cal.is_always:
        return [(start, end)]
    pieces: list[Interval] = []
    day, last = start.astimezone(cal.tz).date(), end.astimezone(cal.tz).date()
    while day <= last:
        pieces.extend(_day_intervals(cal, day))
        day += _DAY
    return _merge([(max(a, start), min(b, end)) for a, b in pieces if a < end and b > start])


def business_seconds(
    cal: BusinessCalendar, start: datetime, end: datetime, pauses: Iterable[Pause] = ()
) -> float:
    """Seconds of [start, end) inside `cal`'s open hours and outside every pause (SPEC §6.2).

    A pause ending in None is still running. Pauses may overlap each other and closed hours;
    no second is subtracted twice. `end <= start` gives 0."""
    return _total(_running(cal, _utc(start), _utc(end), pauses)).total_seconds()


def deadline(
    cal: BusinessCalendar, start: datetime, target_seconds: float, pauses: Iterable[Pause] = ()
) -> datetime | None:
    """First instant t with `business_seconds(cal, start, t, pauses) >= target_seconds`
    (SPEC §6.2), to the microsecond; `start` for a target of 0.

    None when the clock never gets there: an open-ended pause stops it first, or the calendar
    is never open. Walks forward in doubling chunks, so a multi-week target costs a few
    calendar scans rather than one per day."""
    start, pauses = _utc(start), tuple(pauses)
    left = _duration_at_least(target_seconds)
    if left == _ZERO:
        return start
    stop = _clock_stop(pauses)
    if _never_open(cal):
        return None
    quiet_from = _regular_after(cal, start, pauses)
    lo, size = start, max(left, _QUIET_SPAN)
    while stop is None or lo < stop:
        hi = lo + size if stop is None else min(lo + size, stop)
        running = _running(cal, lo, hi, pauses)
        for a, b in running:
            if b - a >= left:
                return a + left
            left -= b - a
        if not running and lo >= quiet_from:
            return None
        lo, size = hi, size * 2
    return None


def time_left(
    cal: BusinessCalendar,
    start: datetime,
    target_seconds: float,
    now: datetime,
    pauses: Iterable[Pause] = (),
) -> float:
    """Business seconds left before the target at `now` (SPEC §6.2); negative once breached."""
    return target_seconds - business_seconds(cal, start, now, pauses)


def met(
    cal: BusinessCalendar,
    start: datetime,
    done_at: datetime,
    target_seconds: float,
    pauses: Iterable[Pause] = (),
) -> bool:
    """Whether work started at `start` and done at `done_at` met its target (SPEC §6.2):
    business time elapsed ≤ target."""
    return business_seconds(cal, start, done_at, pauses) <= target_seconds


def pause_intervals(
    transitions: Iterable[tuple[datetime, str]],
    pause_states: Collection[str] = frozenset({"pending"}),
) -> list[Pause]:
    """The pauses (SPEC §6.2) in a ticket's ordered state transitions [(time, state), ...],
    the first being the opening state; the last pause is open-ended (end None) while the ticket
    is still in a pause state.

    Moving between pause states, or repeating one, continues the same pause. A pause of no
    duration (left at the instant it began) is dropped."""
    pauses: list[Pause] = []
    since: datetime | None = None
    for ts, state in transitions:
        if state in pause_states:
            if since is None:
                since = _utc(ts)
        elif since is not None:
            if _utc(ts) > since:
                pauses.append((since, _utc(ts)))
            since = None
    if since is not None:
        pauses.append((since, None))
    return pauses


# --- calendar days and UTC offsets -------------------------------------------------------


def _day_intervals(cal: BusinessCalendar, day: date) -> list[Interval]:
    """The UTC intervals whose wall-clock time in `cal.tz` is inside `day`'s weekly hours."""
    hours = cal.weekly.get(day.weekday(), ())
    if not hours or day in cal.holidays:
        return []
    # Local wall-clock instants are handled as naive arithmetic carried on UTC datetimes:
    # within a span of constant offset, local = utc + offset, so utc = local − offset.
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    spans = _offset_spans(
        cal.tz, midnight - _BEFORE_LOCAL_MIDNIGHT, midnight + _AFTER_LOCAL_MIDNIGHT
    )
    out: list[Interval] = []
    for opens, closes in hours:
        lo = midnight + _since_midnight(opens)
        hi = midnight + (_DAY if closes is None else _since_midnight(closes))
        for span_lo, span_hi, offset in spans:
            a, b = max(lo - offset, span_lo), min(hi - offset, span_hi)
            if a < b:
                out.append((a, b))
    return out


def _offset_spans(
    tz: ZoneInfo, lo: datetime, hi: datetime
) -> list[tuple[datetime, datetime, timedelta]]:
    """[lo, hi) (UTC) cut where `tz`'s UTC offset changes, each piece with its offset.

    Compares the offsets at both ends only, so an offset changed and changed back within
    the ~2 days scanned goes unseen; no time zone does that."""
    spans: list[tuple[datetime, datetime, timedelta]] = []
    offset = _offset(tz, lo)
    while _offset(tz, hi) != offset:
        cut = _first_change(tz, lo, hi, offset)
        spans.append((lo, cut, offset))
        lo, offset = cut, _offset(tz, cut)
    spans.append((lo, hi, offset))
    return spans


def _first_change(tz: ZoneInfo, lo: datetime, hi: datetime, offset: timedelta) -> datetime:
    """First whole second in (lo, hi] whose offset differs from `offset` (offset at lo)."""
    a, b = math.floor(lo.timestamp()), math.ceil(hi.timestamp())
    while b - a > 1:  # time zone transitions fall on whole seconds
        mid = (a + b) // 2
        if _offset(tz, datetime.fromtimestamp(mid, UTC)) == offset:
            a = mid
        else:
            b = mid
    return datetime.fromtimestamp(b, UTC)


def _offset(tz: ZoneInfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(tz).utcoffset()
    assert offset is not None  # a ZoneInfo always knows its offset for an aware instant
    return offset


def _since_midnight(t: time) -> timedelta:
    return timedelta(hours=t.hour, minutes=t.minute, seconds=t.second, microseconds=t.microsecond)


def _never_open(cal: BusinessCalendar) -> bool:
    return not any(
        closes is None or closes > opens for hours in cal.weekly.values() for opens, closes in hours
    )


def _regular_after(cal: BusinessCalendar, start: datetime, pauses: tuple[Pause, ...]) -> datetime:
    """An instant after which no holiday or closed pause interrupts the weekly pattern."""
    marks = [start] + [end for _, end in pauses if end is not None]
    if cal.holidays:
        last = max(cal.holidays) + 2 * _DAY  # local midnight after it, whatever the offset
        marks.append(datetime(last.year, last.month, last.day, tzinfo=UTC))
    return max(_utc(m) for m in marks)


# --- interval arithmetic -----------------------------------------------------------------


def _running(
    cal: BusinessCalendar, start: datetime, end: datetime, pauses: Iterable[Pause]
) -> list[Interval]:
    """The intervals of [start, end) when the clock runs: open hours minus pauses."""
    opened = open_intervals(cal, start, end)
    if not opened:
        return []
    held = [(_utc(a), end if b is None else _utc(b)) for a, b in pauses]
    return _subtract(opened, _merge([(max(a, start), min(b, end)) for a, b in held]))


def _clock_stop(pauses: Iterable[Pause]) -> datetime | None:
    """Start of the earliest open-ended pause: the clock never runs again after it."""
    return min((_utc(a) for a, b in pauses if b is None), default=None)


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted union of intervals; empty ones dropped, touching ones joined."""
    merged: list[Interval] = []
    for a, b in sorted(i for i in intervals if i[0] < i[1]):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def _subtract(intervals: list[Interval], holes: list[Interval]) -> list[Interval]:
    """`intervals` minus `holes`, both sorted and disjoint."""
    out: list[Interval] = []
    i = 0
    for a, b in intervals:
        while i < len(holes) and holes[i][1] <= a:
            i += 1
        cursor, j = a, i
        while j < len(holes) and holes[j][0] < b:
            if holes[j][0] > cursor:
                out.append((cursor, holes[j][0]))
            cursor = max(cursor, holes[j][1])
            j += 1
        if cursor < b:
            out.append((cursor, b))
    return out


def _total(intervals: Iterable[Interval]) -> timedelta:
    return sum((b - a for a, b in intervals), _ZERO)


def _duration_at_least(seconds: float) -> timedelta:
    """The shortest whole-microsecond duration whose `total_seconds()` is >= `seconds`."""
    if not math.isfinite(seconds):
        raise ValueError(f"SLA target must be a finite number of seconds, not {seconds}")
    micros = max(0, math.ceil(seconds * 1_000_000))
    # Float rounding in the product can land one microsecond off either way; settle it
    # with the very comparison business_seconds' callers will make.
    while micros > 0 and (micros - 1) / 1_000_000 >= seconds:
        micros -= 1
    while micros / 1_000_000 < seconds:
        micros += 1
    return timedelta(microseconds=micros)


def _utc(ts: datetime) -> datetime:
    if ts.utcoffset() is None:
        raise ValueError(f"naive datetime {ts.isoformat()}: the SLA clock needs aware instants")
    return ts.astimezone(UTC)


__all__ = [
    "ALL_DAY",
    "UTC",
    "BusinessCalendar",
    "DayHours",
    "Interval",
    "Pause",
    "business_seconds",
    "deadline",
    "met",
    "open_intervals",
    "pause_intervals",
    "time_left",
]
