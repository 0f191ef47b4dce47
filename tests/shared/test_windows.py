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
