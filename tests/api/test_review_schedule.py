"""Review periods, the schedule's states and action item states (SPEC §7.3): pure, with
hand-computed boundaries (weeks across a year boundary, quarters, month ends, daylight saving)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from services.api.reviews import items
from services.api.reviews.schedule import due_until, period_states, state_at
from shared.periods import Period, last_periods, parse_period, period_at
from tests.helpers import utc

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("text", "kind", "label", "start", "end"),
    [
        ("2026-10", "month", "2026-10", utc(2026, 10, 1), utc(2026, 11, 1)),
        ("2026-12", "month", "2026-12", utc(2026, 12, 1), utc(2027, 1, 1)),
        ("2026-02", "month", "2026-02", utc(2026, 2, 1), utc(2026, 3, 1)),
        # 1 January 2026 is a Thursday, so 2026 has 53 ISO weeks: W53 is 28 Dec – 3 Jan 2027,
        # and W01 began on Monday 29 December 2025.
        ("2026-W53", "week", "2026-W53", utc(2026, 12, 28), utc(2027, 1, 4)),
        ("2026-w01", "week", "2026-W01", utc(2025, 12, 29), utc(2026, 1, 5)),
        ("2026-W41", "week", "2026-W41", utc(2026, 10, 5), utc(2026, 10, 12)),
        ("2026-Q4", "quarter", "2026-Q4", utc(2026, 10, 1), utc(2027, 1, 1)),
        ("2026-q1", "quarter", "2026-Q1", utc(2026, 1, 1), utc(2026, 4, 1)),
        (" 2026-Q2 ", "quarter", "2026-Q2", utc(2026, 4, 1), utc(2026, 7, 1)),
    ],
)
def test_periods_parse_to_their_utc_bounds(
    text: str, kind: str, label: str, start: datetime, end: datetime
) -> None:
    period = parse_period(text)
    assert (period.kind, period.label) == (kind, label)
    assert (period.start(ZoneInfo("UTC")), period.end(ZoneInfo("UTC"))) == (start, end)


def test_periods_are_aligned_in_the_reporting_time_zone() -> None:
    # October 2026 in Berlin: from 1 Oct 00:00 CEST (UTC+2) to 1 Nov 00:00 CET (UTC+1, summer
    # time ended on 25 October).
    october = parse_period("2026-10")
    assert october.start(BERLIN) == utc(2026, 9, 30, 22)
    assert october.end(BERLIN) == utc(2026, 10, 31, 23)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2026-13", "month must be in 1..12"),
        ("2025-W53", "Invalid week: 53"),  # 2025 has 52 ISO weeks
        ("2026-W00", "Invalid week: 0"),
        ("2026-Q5", "quarter 5 is not 1-4"),
        ("2026-Q0", "quarter 0 is not 1-4"),
        ("2026-10-01", "use a month (2026-10)"),
        ("october", "use a month (2026-10)"),
        ("2026-1", "use a month (2026-10)"),
        ("", "use a month (2026-10)"),
    ],
)
def test_bad_periods_say_why(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=r"bad period") as caught:
        parse_period(text)
    assert says in str(caught.value)


def test_previous_periods_cross_year_boundaries() -> None:
    assert parse_period("2027-W01").previous().label == "2026-W53"
    assert parse_period("2026-W01").previous().label == "2025-W52"
    assert parse_period("2026-Q1").previous().label == "2025-Q4"
    assert parse_period("2026-01").previous().label == "2025-12"
    # Tuesday 5 January 2027 is in 2027-W01; the two weeks before are 2026-W53 and W52.
    weeks = last_periods("week", utc(2027, 1, 5, 12), ZoneInfo("UTC"), 3)
    assert [p.label for p in weeks] == ["2027-W01", "2026-W53", "2026-W52"]
    quarters = last_periods("quarter", utc(2026, 2, 10), ZoneInfo("UTC"), 3)
    assert [p.label for p in quarters] == ["2026-Q1", "2025-Q4", "2025-Q3"]


def test_the_period_of_an_instant_is_taken_in_the_time_zone() -> None:
    # 31 October 23:30 UTC is already 1 November 00:30 in Berlin (CET, UTC+1).
    assert period_at("month", utc(2026, 10, 31, 23, 30), BERLIN).label == "2026-11"
    assert period_at("month", utc(2026, 10, 31, 23, 30), ZoneInfo("UTC")).label == "2026-10"
    # 31 December 2026 is in ISO week 2026-W53, 1 January 2027 too.
    assert period_at("week", utc(2027, 1, 1), ZoneInfo("UTC")) == Period("week", date(2026, 12, 28))


def test_grace_counts_local_calendar_days_across_daylight_saving() -> None:
    # 2026-W42 ends Monday 19 Oct 00:00 CEST = 18 Oct 22:00 UTC; 7 days later is Monday 26 Oct
    # 00:00 CET = 25 Oct 23:00 UTC: 7 days and 1 hour, as summer time ended on the 25th.
    end = parse_period("2026-W42").end(BERLIN)
    assert end == utc(2026, 10, 18, 22)
    assert due_until(end, 7, BERLIN) == utc(2026, 10, 25, 23)
    assert due_until(end, 0, BERLIN) == end


def test_state_at_the_edges() -> None:
    end, until = utc(2026, 11, 1), utc(2026, 11, 6)
    assert state_at(utc(2026, 10, 31, 23, 59), end, until, held=False) == "upcoming"
    assert state_at(end, end, until, held=False) == "due"  # ended: due from its end
    assert state_at(utc(2026, 11, 5, 23, 59), end, until, held=False) == "due"
    assert state_at(until, end, until, held=False) == "overdue"
    assert state_at(utc(2026, 10, 20), end, until, held=True) == "held"
    assert state_at(utc(2027, 1, 1), end, until, held=True) == "held"


def test_monthly_schedule_states_over_four_periods() -> None:
    # At 3 November 10:00 UTC with 5 days of grace: November is running (upcoming), October
    # ended on 1 November and is due until 6 November, September (due until 6 October) was
    # held by review 7, August (due until 6 September) is overdue.
    states = period_states("month", 5, utc(2026, 11, 3, 10), ZoneInfo("UTC"), 4, {"2026-09": 7})
    assert [(s.period, s.state, s.review_id) for s in states] == [
        ("2026-11", "upcoming", None),
        ("2026-10", "due", None),
        ("2026-09", "held", 7),
        ("2026-08", "overdue", None),
    ]
    assert states[1].due_until == utc(2026, 11, 6)
    assert (states[3].start, states[3].end) == (utc(2026, 8, 1), utc(2026, 9, 1))


def test_periods_ending_before_the_schedule_began_are_not_listed() -> None:
    # the schedule began on 1 October: September ended on it, so only October and November
    states = period_states(
        "month", 5, utc(2026, 11, 3, 10), ZoneInfo("UTC"), 4, {}, since=date(2026, 10, 1)
    )
    assert [(s.period, s.state) for s in states] == [("2026-11", "upcoming"), ("2026-10", "due")]


def test_quarterly_schedule_with_no_grace_is_overdue_once_ended() -> None:
    states = period_states("quarter", 0, utc(2027, 1, 1), ZoneInfo("UTC"), 2, {})
    assert [(s.period, s.state) for s in states] == [
        ("2027-Q1", "upcoming"),
        ("2026-Q4", "overdue"),
    ]


def test_weekly_schedule_across_the_year_boundary() -> None:
    # Saturday 2 January 2027 is in 2026-W53 (28 Dec – 3 Jan); W52 ended Monday 28 December,
    # due for 2 days until 30 December: overdue by now; W51 was held.
    at = datetime(2027, 1, 2, 12, tzinfo=UTC)
    states = period_states("week", 2, at, ZoneInfo("UTC"), 3, {"2026-W51": 3})
    assert [(s.period, s.state, s.review_id) for s in states] == [
        ("2026-W53", "upcoming", None),
        ("2026-W52", "overdue", None),
        ("2026-W51", "held", 3),
    ]
    assert states[1].due_until == utc(2026, 12, 30)


def test_action_items_close_for_good() -> None:
    assert items.allowed("open") == ("in_progress", "done", "dropped")
    assert items.allowed("in_progress") == ("open", "done", "dropped")
    assert items.allowed("done") == ()
    assert items.allowed("dropped") == ()
    assert [s for s in items.ITEM_STATES if items.is_open(s)] == ["open", "in_progress"]
