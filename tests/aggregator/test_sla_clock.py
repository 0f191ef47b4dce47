from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.aggregator.sla_clock import (
    Pause,
    business_seconds,
    deadline,
    met,
    open_intervals,
    pause_intervals,
    time_left,
)
from shared.calendar import ALL_DAY, BusinessCalendar, DayHours

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")
ZONE_UTC = ZoneInfo("UTC")
H = 3600.0

NINE_TO_FIVE: DayHours = ((time(9), time(17)),)
# Mon–Fri 09:00–17:00 in Berlin, with Christmas Day 2026 (a Friday) as a holiday.
OFFICE = BusinessCalendar(
    BERLIN, {d: NINE_TO_FIVE for d in range(5)}, frozenset({date(2026, 12, 25)})
)
# Seven days a week, so the DST Sundays are working days.
EVERY_DAY_OFFICE = BusinessCalendar(BERLIN, {d: NINE_TO_FIVE for d in range(7)})
# 24×7 hours, but not `is_always` (a holiday in 2020): takes the day-by-day path.
ROUND_THE_CLOCK = BusinessCalendar(
    BERLIN, {d: ALL_DAY for d in range(7)}, frozenset({date(2020, 1, 1)})
)


def berlin(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=BERLIN)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


# --- 24×7 ----------------------------------------------------------------------------------


def test_always_calendar_counts_wall_clock_seconds() -> None:
    cal = BusinessCalendar.always()
    # 2026-01-01 00:00 → 2026-01-03 06:30 UTC = 2 d 6.5 h = 54.5 h
    assert business_seconds(cal, utc(2026, 1, 1), utc(2026, 1, 3, 6, 30)) == 54.5 * H
    assert open_intervals(cal, utc(2026, 1, 1), utc(2026, 1, 2)) == [
        (utc(2026, 1, 1), utc(2026, 1, 2))
    ]


def test_always_calendar_takes_instants_in_any_zone_and_returns_utc() -> None:
    # 09:00 Berlin (+01:00) is 08:00 UTC; 10:00 New York (−05:00) is 15:00 UTC: 7 h.
    start, end = berlin(2026, 1, 5, 9), datetime(2026, 1, 5, 10, tzinfo=NEW_YORK)
    assert business_seconds(BusinessCalendar.always(BERLIN), start, end) == 7 * H
    [(a, b)] = open_intervals(BusinessCalendar.always(BERLIN), start, end)
    assert (a, b) == (utc(2026, 1, 5, 8), utc(2026, 1, 5, 15)) and a.tzinfo is UTC


@pytest.mark.parametrize("cal", [BusinessCalendar.always(BERLIN), ROUND_THE_CLOCK])
@pytest.mark.parametrize(
    ("day", "hours"),
    [
        (date(2026, 3, 29), 23),  # clocks jump 02:00 → 03:00: a 23 h day
        (date(2026, 10, 25), 25),  # 02:00–03:00 happens twice: a 25 h day
        (date(2026, 6, 1), 24),
    ],
)
def test_24x7_local_day_lasts_23_24_or_25_hours_with_dst(
    cal: BusinessCalendar, day: date, hours: int
) -> None:
    start = berlin(day.year, day.month, day.day)
    end = start.replace(tzinfo=None) + timedelta(days=1)
    assert business_seconds(cal, start, end.replace(tzinfo=BERLIN)) == hours * H


def test_24x7_calendar_over_a_year_is_one_interval() -> None:
    # 2026 has 365 days; local midnight to local midnight in Berlin loses 1 h in March and
    # gets it back in October: 365 × 24 h.
    start, end = berlin(2026, 1, 1), berlin(2027, 1, 1)
    assert open_intervals(ROUND_THE_CLOCK, start, end) == [(start, end)]
    assert business_seconds(ROUND_THE_CLOCK, start, end) == 365 * 24 * H


def test_empty_or_reversed_range_counts_nothing() -> None:
    t = berlin(2026, 3, 2, 10)
    assert business_seconds(OFFICE, t, t) == 0
    assert business_seconds(OFFICE, t, t - timedelta(hours=5)) == 0
    assert open_intervals(BusinessCalendar.always(), t, t - timedelta(seconds=1)) == []


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        business_seconds(OFFICE, datetime(2026, 1, 5, 9), berlin(2026, 1, 5, 10))


# --- office hours ----------------------------------------------------------------------------


def test_office_ticket_from_friday_16_to_monday_10_counts_two_hours() -> None:
    # Fri 2026-03-20 16:00–17:00 (1 h) + Mon 2026-03-23 09:00–10:00 (1 h) = 2 h
    assert business_seconds(OFFICE, berlin(2026, 3, 20, 16), berlin(2026, 3, 23, 10)) == 2 * H


def test_office_weekend_with_a_dst_change_still_counts_two_hours() -> None:
    # Fri 2026-03-27 16:00–17:00 CET (1 h) + Mon 2026-03-30 09:00–10:00 CEST (1 h) = 2 h
    assert business_seconds(OFFICE, berlin(2026, 3, 27, 16), berlin(2026, 3, 30, 10)) == 2 * H


def test_office_public_holiday_counts_nothing() -> None:
    # Thu 2026-12-24 16:00–17:00 (1 h) + Fri 25th holiday (0) + Mon 28th 09:00–10:00 (1 h) = 2 h
    assert business_seconds(OFFICE, berlin(2026, 12, 24, 16), berlin(2026, 12, 28, 10)) == 2 * H
    # Without the holiday the Friday adds 8 h: 10 h.
    no_holiday = BusinessCalendar(BERLIN, OFFICE.weekly)
    assert business_seconds(no_holiday, berlin(2026, 12, 24, 16), berlin(2026, 12, 28, 10)) == (
        10 * H
    )


def test_ticket_opened_on_saturday_counts_from_monday_nine() -> None:
    # Sat 2026-03-21 10:00 → Mon 2026-03-23 10:30: Mon 09:00–10:30 = 1.5 h
    start, end = berlin(2026, 3, 21, 10), berlin(2026, 3, 23, 10, 30)
    assert open_intervals(OFFICE, start, end) == [(berlin(2026, 3, 23, 9), end)]
    assert business_seconds(OFFICE, start, end) == 1.5 * H


def test_office_week_is_forty_hours() -> None:
    # Mon 2026-03-02 00:00 → Mon 2026-03-09 00:00: 5 × 8 h
    assert business_seconds(OFFICE, berlin(2026, 3, 2), berlin(2026, 3, 9)) == 40 * H


@pytest.mark.parametrize(
    ("day", "opens_utc"),
    [
        (date(2026, 3, 28), 8),  # CET (+01:00): 09:00 local = 08:00 UTC
        (date(2026, 3, 29), 7),  # switches to CEST (+02:00) at 02:00: 09:00 local = 07:00 UTC
        (date(2026, 10, 25), 8),  # back to CET at 03:00: 09:00 local = 08:00 UTC
    ],
)
def test_nine_to_five_is_eight_hours_on_dst_days(day: date, opens_utc: int) -> None:
    start = berlin(day.year, day.month, day.day)
    end = berlin(day.year, day.month, day.day, 23, 59)
    begins = utc(day.year, day.month, day.day, opens_utc)
    assert open_intervals(EVERY_DAY_OFFICE, start, end) == [(begins, begins + timedelta(hours=8))]
    assert business_seconds(EVERY_DAY_OFFICE, start, end) == 8 * H


def test_local_hours_skipped_by_dst_open_nothing() -> None:
    # Open 01:00–02:30 on Sundays. On 2026-03-29 the wall clock goes 01:59:59 → 03:00, so only
    # 01:00–02:00 local (00:00–01:00 UTC) exists: 1 h. A normal Sunday gives 1.5 h.
    cal = BusinessCalendar(BERLIN, {6: ((time(1), time(2, 30)),)})
    assert open_intervals(cal, berlin(2026, 3, 29), berlin(2026, 3, 30)) == [
        (utc(2026, 3, 29, 0), utc(2026, 3, 29, 1))
    ]
    assert business_seconds(cal, berlin(2026, 3, 22), berlin(2026, 3, 23)) == 1.5 * H
    # Open 02:00–03:00 only: nothing at all on the spring day.
    gap_only = BusinessCalendar(BERLIN, {6: ((time(2), time(3)),)})
    assert open_intervals(gap_only, berlin(2026, 3, 29), berlin(2026, 3, 30)) == []


def test_local_hours_repeated_by_dst_count_twice() -> None:
    # Open 02:00–03:00 on Sundays. On 2026-10-25 the wall clock shows 02:00–02:59 twice:
    # 00:00–01:00 UTC (CEST) and 01:00–02:00 UTC (CET), merged into one 2 h interval.
    cal = BusinessCalendar(BERLIN, {6: ((time(2), time(3)),)})
    assert open_intervals(cal, berlin(2026, 10, 25), berlin(2026, 10, 26)) == [
        (utc(2026, 10, 25, 0), utc(2026, 10, 25, 2))
    ]
    # Open 02:00–02:30: two separate half hours, 00:00–00:30 and 01:00–01:30 UTC = 1 h.
    half = BusinessCalendar(BERLIN, {6: ((time(2), time(2, 30)),)})
    assert business_seconds(half, berlin(2026, 10, 25), berlin(2026, 10, 26)) == 1 * H


def test_split_shift_skips_the_lunch_break() -> None:
    cal = BusinessCalendar(
        BERLIN, {d: ((time(8), time(12)), (time(13), time(17))) for d in range(5)}
    )
    # Mon 2026-03-02: 08–12 + 13–17 = 8 h
    assert business_seconds(cal, berlin(2026, 3, 2), berlin(2026, 3, 3)) == 8 * H
    # 11:00 → 14:00: 11–12 (1 h) + 13–14 (1 h) = 2 h
    assert business_seconds(cal, berlin(2026, 3, 2, 11), berlin(2026, 3, 2, 14)) == 2 * H
    # 12:15 → 12:45 is all lunch.
    assert business_seconds(cal, berlin(2026, 3, 2, 12, 15), berlin(2026, 3, 2, 12, 45)) == 0


def test_night_shift_across_midnight_is_one_interval() -> None:
    # 22:00–24:00 on one day and 00:00–06:00 on the next, every day.
    night = ((time(0), time(6)), (time(22), None))
    cal = BusinessCalendar(BERLIN, {d: night for d in range(7)})
    # Mon 2026-03-02 20:00 → Tue 08:00: Mon 22:00 → Tue 06:00 = 8 h, as one interval.
    start, end = berlin(2026, 3, 2, 20), berlin(2026, 3, 3, 8)
    assert open_intervals(cal, start, end) == [(berlin(2026, 3, 2, 22), berlin(2026, 3, 3, 6))]
    assert business_seconds(cal, start, end) == 8 * H


def test_night_shift_belongs_to_the_weekday_it_is_listed_on() -> None:
    # Only Monday 22:00–24:00 and Tuesday 00:00–06:00 (the Monday night shift).
    cal = BusinessCalendar(BERLIN, {0: ((time(22), None),), 1: ((time(0), time(6)),)})
    # The whole week of 2026-03-02: 2 h + 6 h = 8 h.
    assert business_seconds(cal, berlin(2026, 3, 2), berlin(2026, 3, 9)) == 8 * H
    # A holiday on Tuesday closes only Tuesday's 6 h: 2 h left.
    tuesday_off = BusinessCalendar(cal.tz, cal.weekly, frozenset({date(2026, 3, 3)}))
    assert business_seconds(tuesday_off, berlin(2026, 3, 2), berlin(2026, 3, 9)) == 2 * H


def test_overlapping_weekly_hours_are_not_counted_twice() -> None:
    cal = BusinessCalendar(BERLIN, {0: ((time(9), time(13)), (time(11), time(17)))})
    # 09–13 ∪ 11–17 = 09–17 = 8 h
    assert business_seconds(cal, berlin(2026, 3, 2), berlin(2026, 3, 3)) == 8 * H


def test_reversed_weekly_hours_are_closed() -> None:
    # 22:00–06:00 written as one interval opens nothing; a night is two intervals.
    cal = BusinessCalendar(BERLIN, {d: ((time(22), time(6)),) for d in range(7)})
    assert business_seconds(cal, berlin(2026, 3, 2), berlin(2026, 3, 9)) == 0
    assert deadline(cal, berlin(2026, 3, 2), 1) is None


# --- pauses ----------------------------------------------------------------------------------


def test_pause_inside_open_hours_is_subtracted() -> None:
    # Mon 2026-03-02 09:00 → 12:00 = 3 h, paused 10:00–10:30: 2.5 h
    pauses: list[Pause] = [(berlin(2026, 3, 2, 10), berlin(2026, 3, 2, 10, 30))]
    assert business_seconds(OFFICE, berlin(2026, 3, 2, 9), berlin(2026, 3, 2, 12), pauses) == (
        2.5 * H
    )


def test_pause_over_closed_hours_subtracts_only_open_time() -> None:
    # Fri 2026-03-20 15:00 → Mon 23rd 11:00 = Fri 15–17 (2 h) + Mon 09–11 (2 h) = 4 h;
    # paused Fri 16:00 → Mon 10:00 covers Fri 16–17 and Mon 09–10 of it (2 h): 2 h.
    pauses: list[Pause] = [(berlin(2026, 3, 20, 16), berlin(2026, 3, 23, 10))]
    start, end = berlin(2026, 3, 20, 15), berlin(2026, 3, 23, 11)
    assert business_seconds(OFFICE, start, end, pauses) == 2 * H


def test_overlapping_pauses_are_subtracted_once() -> None:
    # Mon 09:00 → 17:00 = 8 h; pauses 10:00–11:00, 10:30–11:30 and 10:45–11:00 (a duplicate
    # inside) cover 10:00–11:30 = 1.5 h: 6.5 h.
    day = (2026, 3, 2)
    pauses: list[Pause] = [
        (berlin(*day, 10), berlin(*day, 11)),
        (berlin(*day, 10, 30), berlin(*day, 11, 30)),
        (berlin(*day, 10, 45), berlin(*day, 11)),
    ]
    assert business_seconds(OFFICE, berlin(*day, 9), berlin(*day, 17), pauses) == 6.5 * H


def test_open_ended_pause_stops_the_clock_until_the_end() -> None:
    # Mon 09:00 → 15:00, pending since 11:00 and still pending: 09–11 = 2 h
    pauses: list[Pause] = [(berlin(2026, 3, 2, 11), None)]
    assert business_seconds(OFFICE, berlin(2026, 3, 2, 9), berlin(2026, 3, 2, 15), pauses) == (
        2 * H
    )


def test_pause_outside_the_range_is_clipped() -> None:
    # Paused 08:00–09:30 Mon and 16:30 Mon → 10:00 Tue; range Mon 09:00–17:00.
    # Running: 09:30–16:30 = 7 h.
    pauses: list[Pause] = [
        (berlin(2026, 3, 2, 8), berlin(2026, 3, 2, 9, 30)),
        (berlin(2026, 3, 2, 16, 30), berlin(2026, 3, 3, 10)),
    ]
    assert business_seconds(OFFICE, berlin(2026, 3, 2, 9), berlin(2026, 3, 2, 17), pauses) == (
        7 * H
    )


def test_pause_on_a_24x7_calendar_is_plain_subtraction() -> None:
    # 10 h wall clock minus a 90 min pause = 8.5 h
    start = utc(2026, 5, 1)
    pauses: list[Pause] = [(start + timedelta(hours=2), start + timedelta(hours=3, minutes=30))]
    cal = BusinessCalendar.always()
    assert business_seconds(cal, start, start + timedelta(hours=10), pauses) == 8.5 * H


# --- deadline --------------------------------------------------------------------------------


def test_deadline_of_four_hours_from_friday_15_is_monday_11() -> None:
    # Fri 2026-03-20 15:00–17:00 uses 2 h; the other 2 h run Mon 23rd 09:00–11:00.
    assert deadline(OFFICE, berlin(2026, 3, 20, 15), 4 * H) == berlin(2026, 3, 23, 11)


def test_deadline_of_four_hours_from_friday_16_is_monday_12() -> None:
    # Fri 16:00–17:00 uses 1 h; the other 3 h run Mon 09:00–12:00.
    assert deadline(OFFICE, berlin(2026, 3, 20, 16), 4 * H) == berlin(2026, 3, 23, 12)


def test_deadline_skips_the_public_holiday() -> None:
    # Thu 2026-12-24 15:00–17:00 (2 h), Fri 25th holiday, Mon 28th 09:00–11:00 (2 h).
    assert deadline(OFFICE, berlin(2026, 12, 24, 15), 4 * H) == berlin(2026, 12, 28, 11)


def test_deadline_is_reached_at_the_end_of_an_open_interval_not_the_next_morning() -> None:
    # Mon 09:00 + 8 h = Mon 17:00 exactly (the first instant with 8 h counted).
    assert deadline(OFFICE, berlin(2026, 3, 2, 9), 8 * H) == berlin(2026, 3, 2, 17)


def test_deadline_moves_by_a_pause_in_the_middle() -> None:
    # Mon 09:00 + 4 h, paused 10:00–11:30: 09–10 (1 h) + 11:30–14:30 (3 h) = 14:30
    pauses: list[Pause] = [(berlin(2026, 3, 2, 10), berlin(2026, 3, 2, 11, 30))]
    assert deadline(OFFICE, berlin(2026, 3, 2, 9), 4 * H, pauses) == berlin(2026, 3, 2, 14, 30)


def test_deadline_of_a_pause_over_the_weekend() -> None:
    # Fri 2026-03-20 15:00 + 4 h, paused Fri 16:00 → Mon 10:00:
    # Fri 15–16 (1 h) + Mon 10–13 (3 h) = Mon 13:00
    pauses: list[Pause] = [(berlin(2026, 3, 20, 16), berlin(2026, 3, 23, 10))]
    assert deadline(OFFICE, berlin(2026, 3, 20, 15), 4 * H, pauses) == berlin(2026, 3, 23, 13)


def test_deadline_of_a_multi_week_target() -> None:
    # 80 h of office time from Mon 2026-03-02 09:00 = two 40 h weeks: Fri 13th 17:00,
    # and 200 h (five weeks, across the DST change of the 29th) to Fri 2026-04-03 17:00.
    assert deadline(OFFICE, berlin(2026, 3, 2, 9), 80 * H) == berlin(2026, 3, 13, 17)
    assert deadline(OFFICE, berlin(2026, 3, 2, 9), 200 * H) == berlin(2026, 4, 3, 17)


def test_deadline_of_a_zero_target_is_the_start_even_outside_hours() -> None:
    saturday = berlin(2026, 3, 21, 10)
    assert deadline(OFFICE, saturday, 0) == saturday
    assert deadline(OFFICE, saturday, 0, [(saturday, None)]) == saturday


def test_deadline_on_24x7_is_wall_clock() -> None:
    start = utc(2026, 10, 24, 12)
    # 30 h 15 min later, DST or not.
    target = 30.25 * H
    assert deadline(ROUND_THE_CLOCK, start, target) == start + timedelta(hours=30, minutes=15)
    assert deadline(BusinessCalendar.always(BERLIN), start, target) == start + timedelta(
        hours=30, minutes=15
    )


def test_deadline_is_none_when_paused_forever_before_the_target() -> None:
    # Mon 09:00 + 4 h, pending from 11:00 and never resumed: 2 h counted, then stopped.
    pauses: list[Pause] = [(berlin(2026, 3, 2, 11), None)]
    assert deadline(OFFICE, berlin(2026, 3, 2, 9), 4 * H, pauses) is None
    # Pending since before the start: the clock never runs.
    assert deadline(OFFICE, berlin(2026, 3, 2, 9), 1, [(berlin(2026, 3, 1), None)]) is None


def test_deadline_before_an_open_ended_pause_is_still_found() -> None:
    # Mon 09:00 + 2 h = 11:00; the pause from 11:00 starts exactly when the target is reached.
    pauses: list[Pause] = [(berlin(2026, 3, 2, 11), None)]
    assert deadline(OFFICE, berlin(2026, 3, 2, 9), 2 * H, pauses) == berlin(2026, 3, 2, 11)


@pytest.mark.parametrize(
    "cal",
    [
        BusinessCalendar(BERLIN, {}),
        BusinessCalendar(BERLIN, {0: (), 3: ((time(9), time(9)),)}),
        # Open only on Mondays, every one of them in 2026–2027 a holiday... until 2028.
        BusinessCalendar(
            BERLIN,
            {0: NINE_TO_FIVE},
            frozenset(date(2026, 1, 5) + timedelta(weeks=w) for w in range(104)),
        ),
    ],
    ids=["no-hours", "zero-length-hours", "holiday-every-monday-for-two-years"],
)
def test_deadline_terminates_for_calendars_that_are_never_or_rarely_open(
    cal: BusinessCalendar,
) -> None:
    got = deadline(cal, berlin(2026, 1, 1), 1 * H)
    if cal.holidays:
        # First Monday after 104 holiday Mondays from 2026-01-05: 2028-01-03, 09:00 + 1 h.
        assert got == berlin(2028, 1, 3, 10)
    else:
        assert got is None


# --- time left and met -----------------------------------------------------------------------


def test_time_left_counts_down_in_business_seconds_and_goes_negative() -> None:
    start, target = berlin(2026, 3, 20, 15), 4 * H
    # Fri 16:00: 1 h used, 3 h left.
    assert time_left(OFFICE, start, target, berlin(2026, 3, 20, 16)) == 3 * H
    # All weekend: still 2 h left (Fri 15–17 used).
    assert time_left(OFFICE, start, target, berlin(2026, 3, 22, 20)) == 2 * H
    # Mon 15:00: 2 h + 6 h = 8 h used, 4 h past the target: −4 h.
    assert time_left(OFFICE, start, target, berlin(2026, 3, 23, 15)) == -4 * H


def test_time_left_stands_still_while_paused() -> None:
    start = berlin(2026, 3, 2, 9)
    pauses: list[Pause] = [(berlin(2026, 3, 2, 10), None)]
    # 1 h used before the pause, whatever "now" is.
    for now in (berlin(2026, 3, 2, 12), berlin(2026, 3, 9, 12)):
        assert time_left(OFFICE, start, 4 * H, now, pauses) == 3 * H


def test_met_is_inclusive_of_the_target() -> None:
    start = berlin(2026, 3, 2, 9)
    assert met(OFFICE, start, berlin(2026, 3, 2, 13), 4 * H)  # exactly 4 h
    assert not met(OFFICE, start, berlin(2026, 3, 2, 13, 0, 1), 4 * H)  # 4 h 1 s
    # Done Saturday after a Friday start at 13:00: only Fri 13–17 = 4 h counted.
    assert met(OFFICE, berlin(2026, 3, 20, 13), berlin(2026, 3, 21, 20), 4 * H)
    # A 30 min pause buys 30 min.
    pauses: list[Pause] = [(berlin(2026, 3, 2, 10), berlin(2026, 3, 2, 10, 30))]
    assert met(OFFICE, start, berlin(2026, 3, 2, 13, 30), 4 * H, pauses)


# --- pause intervals -------------------------------------------------------------------------


def test_pause_intervals_of_pending_in_progress_pending_resolved() -> None:
    t = [utc(2026, 3, 2, h) for h in range(9, 14)]
    transitions = [
        (t[0], "new"),
        (t[1], "pending"),
        (t[2], "in_progress"),
        (t[3], "pending"),
        (t[4], "resolved"),
    ]
    assert pause_intervals(transitions) == [(t[1], t[2]), (t[3], t[4])]


def test_pause_intervals_of_a_ticket_still_pending_is_open_ended() -> None:
    t = [utc(2026, 3, 2, h) for h in range(9, 12)]
    transitions = [(t[0], "new"), (t[1], "assigned"), (t[2], "pending")]
    assert pause_intervals(transitions) == [(t[2], None)]


def test_pause_intervals_repeated_pending_events_do_not_split_the_pause() -> None:
    t = [utc(2026, 3, 2, h) for h in range(9, 13)]
    transitions = [(t[0], "new"), (t[1], "pending"), (t[2], "pending"), (t[3], "in_progress")]
    assert pause_intervals(transitions) == [(t[1], t[3])]


def test_pause_intervals_two_pause_states_in_a_row_are_one_pause() -> None:
    t = [utc(2026, 3, 2, h) for h in range(9, 14)]
    transitions = [
        (t[0], "new"),
        (t[1], "pending"),
        (t[2], "awaiting_customer"),
        (t[3], "pending"),
        (t[4], "in_progress"),
    ]
    states = frozenset({"pending", "awaiting_customer"})
    assert pause_intervals(transitions, states) == [(t[1], t[4])]
    # With only `pending` pausing, awaiting_customer ends the first pause.
    assert pause_intervals(transitions) == [(t[1], t[2]), (t[3], t[4])]


def test_pause_intervals_of_a_ticket_opened_pending_and_zero_length_pauses() -> None:
    t = [utc(2026, 3, 2, h) for h in range(9, 12)]
    # Opened pending: the pause starts at opening. A pending left at the same instant it was
    # entered has no duration and is dropped.
    transitions = [(t[0], "pending"), (t[1], "in_progress"), (t[2], "pending"), (t[2], "new")]
    assert pause_intervals(transitions) == [(t[0], t[1])]
    assert pause_intervals([]) == []


def test_pause_intervals_feed_business_seconds() -> None:
    day = (2026, 3, 2)
    transitions = [
        (berlin(*day, 9), "new"),
        (berlin(*day, 10), "pending"),
        (berlin(*day, 11), "in_progress"),
        (berlin(*day, 12), "resolved"),
    ]
    # 09:00 → 12:00 = 3 h, minus pending 10–11: 2 h
    pauses = pause_intervals(transitions)
    assert business_seconds(OFFICE, berlin(*day, 9), berlin(*day, 12), pauses) == 2 * H


# --- properties ------------------------------------------------------------------------------

ZONES = [BERLIN, NEW_YORK, KOLKATA, ZONE_UTC]
# Instants near the 2026 DST changes of Berlin and New York, where mistakes hide.
DST_CHANGES = [utc(2026, 3, 29, 1), utc(2026, 10, 25, 1), utc(2026, 3, 8, 7), utc(2026, 11, 1, 6)]
YEAR_START = utc(2026, 1, 1)
YEAR_SECONDS = 365 * 86400

# Wall-clock times, biased towards the hours DST skips or repeats (01:00–03:59).
local_times = st.one_of(
    st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]), st.just(0)),
    st.builds(time, st.integers(1, 3), st.integers(0, 59), st.integers(0, 59)),
)


@st.composite
def day_hours(draw: st.DrawFn) -> DayHours:
    hours: list[tuple[time, time | None]] = []
    for _ in range(draw(st.integers(0, 3))):
        a, b = sorted([draw(local_times), draw(local_times)])
        if draw(st.booleans()) and draw(st.booleans()):
            hours.append((a, None))
        elif a < b:
            hours.append((a, b))
    return tuple(hours)


@st.composite
def calendars(draw: st.DrawFn) -> BusinessCalendar:
    tz = draw(st.sampled_from(ZONES))
    if draw(st.integers(0, 9)) == 0:
        return BusinessCalendar.always(tz)
    weekly = draw(st.dictionaries(st.integers(0, 6), day_hours(), max_size=7))
    dst_days = st.sampled_from([c.date() for c in DST_CHANGES])
    any_day = st.dates(date(2026, 1, 1), date(2026, 12, 31))
    holidays = draw(st.frozensets(st.one_of(any_day, dst_days), max_size=8))
    return BusinessCalendar(tz, weekly, holidays)


instants = st.one_of(
    st.integers(0, YEAR_SECONDS * 1_000_000).map(
        lambda us: YEAR_START + timedelta(microseconds=us)
    ),
    st.builds(
        lambda change, minutes: change + timedelta(minutes=minutes),
        st.sampled_from(DST_CHANGES),
        st.integers(-36 * 60, 36 * 60),
    ),
)


@st.composite
def pause_lists(draw: st.DrawFn, open_ended: bool = True) -> list[Pause]:
    pauses: list[Pause] = []
    for _ in range(draw(st.integers(0, 3))):
        a = draw(instants)
        length = timedelta(seconds=draw(st.integers(0, 10 * 86400)))
        pauses.append((a, None if open_ended and draw(st.integers(0, 4)) == 0 else a + length))
    return pauses


def is_open(cal: BusinessCalendar, t: datetime) -> bool:
    """Oracle: the wall clock in cal.tz reads a time inside that local date's hours."""
    local = t.astimezone(cal.tz)
    if local.date() in cal.holidays:
        return False
    wall = local.time().replace(fold=0)
    return any(
        a <= wall and (b is None or wall < b) for a, b in cal.weekly.get(local.weekday(), ())
    )


props = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@props
@given(calendars(), st.lists(instants, min_size=1, max_size=12))
def test_open_intervals_agree_with_the_wall_clock_oracle(
    cal: BusinessCalendar, ts: list[datetime]
) -> None:
    lo, hi = min(ts) - timedelta(days=2), max(ts) + timedelta(days=2)
    intervals = open_intervals(cal, lo, hi)
    for t in ts:
        assert any(a <= t < b for a, b in intervals) == is_open(cal, t), t
    # Sorted, disjoint, non-empty, not touching (merged), inside [lo, hi), in UTC.
    for (_, b), (c, _) in pairwise(intervals):
        assert b < c
    assert all(lo <= a < b <= hi and a.tzinfo is UTC for a, b in intervals)


@props
@given(calendars(), st.lists(instants, min_size=3, max_size=3), pause_lists())
def test_business_seconds_is_additive_monotonic_and_at_most_wall_clock(
    cal: BusinessCalendar, ts: list[datetime], pauses: list[Pause]
) -> None:
    a, b, c = sorted(ts)
    ab, bc, ac = (business_seconds(cal, x, y, pauses) for x, y in ((a, b), (b, c), (a, c)))
    assert abs(ac - (ab + bc)) <= 1e-6
    assert 0 <= ab <= ac and 0 <= bc <= ac
    assert ac <= (c - a).total_seconds()
    assert business_seconds(cal, a, c, pauses) <= business_seconds(cal, a, c)


@props
@given(calendars(), instants, st.floats(0, 1.2), pause_lists())
def test_deadline_is_the_inverse_of_business_seconds(
    cal: BusinessCalendar, start: datetime, share: float, pauses: list[Pause]
) -> None:
    # A target the calendar can reach in about 60 days, keeping sparse calendars fast.
    reachable = business_seconds(cal, start, start + timedelta(days=60))
    target = share * reachable
    got = deadline(cal, start, target, pauses)
    if got is None:
        assert any(end is None for _, end in pauses) or reachable == 0
        assert business_seconds(cal, start, start + timedelta(days=400), pauses) < target
        return
    assert abs(business_seconds(cal, start, got, pauses) - target) <= 1e-6
    if got > start:
        just_before = got - timedelta(microseconds=1)
        assert business_seconds(cal, start, just_before, pauses) < target
        assert business_seconds(cal, start, start + (got - start) * 0.37, pauses) < target
        assert met(cal, start, just_before, target, pauses)


@props
@given(calendars(), instants, st.floats(0, 5 * 86400), instants)
def test_time_left_is_target_minus_elapsed_and_zero_at_the_deadline(
    cal: BusinessCalendar, start: datetime, target: float, now: datetime
) -> None:
    elapsed = business_seconds(cal, start, now)
    assert time_left(cal, start, target, now) == target - elapsed
    assert met(cal, start, now, target) == (time_left(cal, start, target, now) >= 0)
