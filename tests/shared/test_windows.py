from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.dirty import dirty_ranges, merge_spans
from shared.windows import (
    previous_start,
    window_end,
    window_start,
    windows_of,
    windows_overlapping,
)

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("kind", "start", "end"),
    [
        # 2026-10-25 is the autumn DST change in Berlin: that day has 25 hours.
        ("hour", datetime(2026, 10, 25, 12, tzinfo=UTC), datetime(2026, 10, 25, 13, tzinfo=UTC)),
        ("day", datetime(2026, 10, 24, 22, tzinfo=UTC), datetime(2026, 10, 25, 23, tzinfo=UTC)),
        # ISO week: Monday 2026-10-19 00:00 local (+02:00) to Monday 2026-10-26 00:00 (+01:00)
        ("week", datetime(2026, 10, 18, 22, tzinfo=UTC), datetime(2026, 10, 25, 23, tzinfo=UTC)),
        ("month", datetime(2026, 9, 30, 22, tzinfo=UTC), datetime(2026, 10, 31, 23, tzinfo=UTC)),
        # Q4: 2026-10-01 00:00 local (+02:00) to 2027-01-01 00:00 local (+01:00)
        ("quarter", datetime(2026, 9, 30, 22, tzinfo=UTC), datetime(2026, 12, 31, 23, tzinfo=UTC)),
    ],
)
def test_windows_align_in_the_reporting_time_zone(
    kind: str, start: datetime, end: datetime
) -> None:
    ts = datetime(2026, 10, 25, 12, 30, tzinfo=UTC)
    assert window_start(kind, ts, BERLIN) == start
    assert window_end(kind, start, BERLIN) == end


def test_a_timestamp_just_after_local_midnight_belongs_to_the_new_local_day() -> None:
    # 2026-11-30 23:30 UTC is 2026-12-01 00:30 in Berlin: December, not November.
    ts = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
    assert window_start("month", ts, BERLIN) == datetime(2026, 11, 30, 23, tzinfo=UTC)
    assert window_start("day", ts, BERLIN) == datetime(2026, 11, 30, 23, tzinfo=UTC)


def test_december_rolls_over_to_january() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    assert window_end("month", start, ZoneInfo("UTC")) == datetime(2027, 1, 1, tzinfo=UTC)


def test_previous_window_of_march_is_february() -> None:
    utc = ZoneInfo("UTC")
    assert previous_start("month", datetime(2026, 3, 1, tzinfo=UTC), utc) == datetime(
        2026, 2, 1, tzinfo=UTC
    )


def test_windows_of_lists_one_window_per_kind() -> None:
    got = windows_of(datetime(2026, 10, 7, 10, 5, tzinfo=UTC), ZoneInfo("UTC"))
    assert got == [
        ("hour", datetime(2026, 10, 7, 10, tzinfo=UTC)),
        ("day", datetime(2026, 10, 7, tzinfo=UTC)),
        ("week", datetime(2026, 10, 5, tzinfo=UTC)),  # Wednesday → Monday the 5th
        ("month", datetime(2026, 10, 1, tzinfo=UTC)),
        ("quarter", datetime(2026, 10, 1, tzinfo=UTC)),  # Q4: October to December
    ]


UTC_ZONE = ZoneInfo("UTC")
SHANGHAI = ZoneInfo("Asia/Shanghai")  # +08:00 all year
PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    ("ts", "start", "end"),
    [
        # each quarter's first and last instant, in UTC
        (
            datetime(2026, 1, 1, tzinfo=UTC),
            datetime(2026, 1, 1, tzinfo=UTC),
            datetime(2026, 4, 1, tzinfo=UTC),
        ),
        (
            datetime(2026, 3, 31, 23, 59, 59, 999999, tzinfo=UTC),
            datetime(2026, 1, 1, tzinfo=UTC),
            datetime(2026, 4, 1, tzinfo=UTC),
        ),
        (
            datetime(2026, 4, 1, tzinfo=UTC),
            datetime(2026, 4, 1, tzinfo=UTC),
            datetime(2026, 7, 1, tzinfo=UTC),
        ),
        (
            datetime(2026, 8, 15, 12, tzinfo=UTC),
            datetime(2026, 7, 1, tzinfo=UTC),
            datetime(2026, 10, 1, tzinfo=UTC),
        ),
        # Q4 ends at the year boundary
        (
            datetime(2026, 12, 31, 23, 59, tzinfo=UTC),
            datetime(2026, 10, 1, tzinfo=UTC),
            datetime(2027, 1, 1, tzinfo=UTC),
        ),
        (
            datetime(2027, 1, 1, tzinfo=UTC),
            datetime(2027, 1, 1, tzinfo=UTC),
            datetime(2027, 4, 1, tzinfo=UTC),
        ),
    ],
)
def test_quarters_are_calendar_quarters(ts: datetime, start: datetime, end: datetime) -> None:
    assert window_start("quarter", ts, UTC_ZONE) == start
    assert window_end("quarter", start, UTC_ZONE) == end


def test_quarters_align_in_shanghai() -> None:
    # 2026-12-31 16:00 UTC is 2027-01-01 00:00 in Shanghai: Q1 2027 has begun there.
    ts = datetime(2026, 12, 31, 16, tzinfo=UTC)
    start = window_start("quarter", ts, SHANGHAI)
    assert start == datetime(2026, 12, 31, 16, tzinfo=UTC)
    assert window_end("quarter", start, SHANGHAI) == datetime(2027, 3, 31, 16, tzinfo=UTC)
    # one microsecond earlier is still Q4 2026, which began 2026-10-01 00:00 local
    before = window_start("quarter", ts - timedelta(microseconds=1), SHANGHAI)
    assert before == datetime(2026, 9, 30, 16, tzinfo=UTC)
    assert previous_start("quarter", start, SHANGHAI) == before


def test_quarters_in_paris_span_the_daylight_saving_changes() -> None:
    # Q1 2027: 2027-01-01 00:00 +01:00 to 2027-04-01 00:00 +02:00 (summer time from 03-28):
    # 90 days less one hour.
    start = window_start("quarter", datetime(2027, 2, 10, tzinfo=UTC), PARIS)
    assert start == datetime(2026, 12, 31, 23, tzinfo=UTC)
    end = window_end("quarter", start, PARIS)
    assert end == datetime(2027, 3, 31, 22, tzinfo=UTC)
    assert end - start == timedelta(days=90, hours=-1)
    # the previous quarter, Q4 2026: 2026-10-01 00:00 +02:00
    assert previous_start("quarter", start, PARIS) == datetime(2026, 9, 30, 22, tzinfo=UTC)


def test_windows_overlapping_lists_the_quarters_across_a_year() -> None:
    got = windows_overlapping(
        datetime(2026, 11, 5, tzinfo=UTC), datetime(2027, 4, 1, tzinfo=UTC), UTC_ZONE, ("quarter",)
    )
    assert got == [
        ("quarter", datetime(2026, 10, 1, tzinfo=UTC)),
        ("quarter", datetime(2027, 1, 1, tzinfo=UTC)),
        ("quarter", datetime(2027, 4, 1, tzinfo=UTC)),  # the end is included
    ]


def test_unknown_window_kind_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown window kind"):
        window_start("fortnight", datetime(2026, 1, 1, tzinfo=UTC), ZoneInfo("UTC"))


def test_merge_spans_unions_overlapping_and_near_intervals() -> None:
    def t(h: int, m: int = 0) -> datetime:
        return datetime(2026, 10, 5, h, m, tzinfo=UTC)

    spans = [(t(9), t(10)), (t(9, 30), t(9, 45)), (t(12), t(13)), (t(13, 30), t(14))]
    assert merge_spans(spans) == [(t(9), t(10)), (t(12), t(13)), (t(13, 30), t(14))]
    assert merge_spans(spans, gap=timedelta(hours=1)) == [(t(9), t(10)), (t(12), t(14))]


def test_dirty_ranges_touch_exactly_the_windows_of_their_parts() -> None:
    utc_tz = ZoneInfo("UTC")
    stamps = {
        datetime(2026, 10, 5, 9, 10, tzinfo=UTC),
        datetime(2026, 10, 5, 9, 50, tzinfo=UTC),
        datetime(2026, 10, 5, 10, 5, tzinfo=UTC),
        datetime(2026, 10, 7, 23, 59, tzinfo=UTC),
    }
    ranges = dirty_ranges(stamps, [])
    # 09:10, 09:50 and 10:05 are less than an hour apart: one range; 10-07 23:59 far apart
    assert ranges == [
        (datetime(2026, 10, 5, 9, 10, tzinfo=UTC), datetime(2026, 10, 5, 10, 5, tzinfo=UTC)),
        (datetime(2026, 10, 7, 23, 59, tzinfo=UTC), datetime(2026, 10, 7, 23, 59, tzinfo=UTC)),
    ]
    touched = {w for a, b in ranges for w in windows_overlapping(a, b, utc_tz)}
    expected = {w for ts in stamps for w in windows_of(ts, utc_tz)}
    assert touched == expected


INSTANTS = st.datetimes(
    min_value=datetime(2026, 3, 20), max_value=datetime(2026, 11, 10), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(
    st.sets(INSTANTS, max_size=40),
    st.lists(st.tuples(INSTANTS, st.integers(0, 3 * 86400)), max_size=6),
    st.sampled_from(["UTC", "Europe/Berlin", "Asia/Kolkata", "America/St_Johns"]),
)
def test_dirty_ranges_touch_the_windows_of_their_parts_in_any_time_zone(
    stamps: set[datetime], intervals: list[tuple[datetime, int]], zone: str
) -> None:
    # DST changes (Berlin, St John's at −3:30/−2:30) and half-hour offsets (Kolkata) included
    tz = ZoneInfo(zone)
    spans = [(a, a + timedelta(seconds=s)) for a, s in intervals]
    ranges = dirty_ranges(stamps, spans)
    touched = {w for a, b in ranges for w in windows_overlapping(a, b, tz)}
    expected = {w for ts in stamps for w in windows_of(ts, tz)} | {
        w for a, b in spans for w in windows_overlapping(a, b, tz)
    }
    assert touched == expected
