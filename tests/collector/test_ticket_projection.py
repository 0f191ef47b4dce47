"""The ticket projection (SPEC §3.1), hand-computed on small histories."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.collector.projections import Record
from services.collector.projections.tickets import project_ticket

T0 = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)


def rec(minutes: float, state: str, seq: int | None = None, **data: Any) -> Record:
    return Record(
        source="src",
        id=f"e{minutes}-{state}",
        type="itsm.ticket.updated",
        time=T0 + timedelta(minutes=minutes),
        sequence=seq,
        data={"ticket_id": "INC1", "state": state, **data},
    )


def test_derived_times_of_a_simple_lifecycle() -> None:
    row = project_ticket(
        [
            rec(0, "new", service="email", priority=2),
            rec(5, "assigned", assignment_group="desk"),
            rec(20, "in_progress"),
            rec(50, "resolved"),
            rec(80, "closed"),
        ]
    )
    assert row["opened_at"] == T0
    assert row["responded_at"] == T0 + timedelta(minutes=5)  # first transition out of new
    assert row["resolved_at"] == T0 + timedelta(minutes=50)
    assert row["closed_at"] == T0 + timedelta(minutes=80)
    assert (row["kind"], row["service"], row["priority"]) == ("incident", "email", 2)
    assert (row["reassignments"], row["reopens"], row["paused_seconds"]) == (0, 0, 0.0)
    assert row["event_count"] == 5


def test_reopened_ticket_is_resolved_at_its_last_resolution() -> None:
    row = project_ticket(
        [
            rec(0, "new"),
            rec(10, "in_progress"),
            rec(30, "resolved"),
            rec(40, "in_progress"),
            rec(70, "resolved"),
        ]
    )
    assert row["reopens"] == 1
    assert row["resolved_at"] == T0 + timedelta(minutes=70)


def test_reopened_ticket_that_is_open_again_has_no_resolution() -> None:
    row = project_ticket([rec(0, "new"), rec(30, "resolved"), rec(40, "assigned")])
    assert row["state"] == "assigned"
    assert row["resolved_at"] is None
    assert row["reopens"] == 1


def test_closed_without_resolved_counts_as_resolution() -> None:
    row = project_ticket([rec(0, "new"), rec(15, "closed")])
    assert row["resolved_at"] == row["closed_at"] == T0 + timedelta(minutes=15)


def test_reassignments_count_group_changes_after_the_first_group() -> None:
    row = project_ticket(
        [
            rec(0, "new"),
            rec(1, "assigned", assignment_group="desk"),  # first non-empty: not a reassignment
            rec(2, "assigned", assignment_group="network"),  # 1
            rec(3, "in_progress"),  # group unchanged (absent = kept)
            rec(4, "in_progress", assignment_group="apps"),  # 2
            rec(5, "in_progress", assignment_group="apps"),  # same group: no change
        ]
    )
    assert row["reassignments"] == 2


def test_source_counters_win_over_derived_counts() -> None:
    row = project_ticket(
        [
            rec(0, "new", reassignment_count=4, reopen_count=0),
            rec(5, "resolved"),
            rec(6, "in_progress"),
        ]
    )
    assert (row["reassignments"], row["reopens"]) == (4, 0)


def test_paused_seconds_sum_time_in_pending() -> None:
    row = project_ticket(
        [
            rec(0, "new"),
            rec(10, "pending"),
            rec(25, "in_progress"),  # 15 min
            rec(30, "pending"),
            rec(32, "pending"),
            rec(40, "resolved"),  # 10 min
        ]
    )
    assert row["paused_seconds"] == 25 * 60


def test_partial_snapshots_merge_and_null_clears() -> None:
    row = project_ticket(
        [
            rec(0, "new", service="email", assignee="ann", priority=3),
            rec(5, "assigned", priority=2),  # service and assignee kept
            rec(9, "in_progress", assignee=None),  # assignee cleared
        ]
    )
    assert (row["service"], row["priority"], row["assignee"]) == ("email", 2, None)


def test_source_timestamps_win_over_derived_ones() -> None:
    opened = "2026-10-05T08:00:00+00:00"
    row = project_ticket([rec(0, "new", opened_at=opened), rec(30, "resolved")])
    assert row["opened_at"] == datetime(2026, 10, 5, 8, 0, tzinfo=UTC)


def test_sequence_orders_events_before_time() -> None:
    # The source's clock is wrong: the resolution carries an earlier time but a later sequence.
    row = project_ticket([rec(10, "new", seq=1), rec(5, "resolved", seq=2)])
    assert row["state"] == "resolved"


def test_older_event_does_not_overwrite_newer_state() -> None:
    late = rec(5, "assigned", priority=4)
    row = project_ticket([rec(0, "new", priority=3), rec(30, "resolved", priority=2), late])
    assert (row["state"], row["priority"]) == ("resolved", 2)


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))))
def test_any_arrival_order_gives_the_same_projection(order: tuple[int, ...]) -> None:
    history = [
        rec(0, "new"),
        rec(5, "assigned", assignment_group="a"),
        rec(6, "assigned", assignment_group="b"),
        rec(40, "resolved"),
    ]
    expected = project_ticket(history)
    assert project_ticket([history[i] for i in order]) == expected


def test_an_empty_history_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one event"):
        project_ticket([])


def test_transitions_record_every_change_of_state_in_order() -> None:
    row = project_ticket(
        [
            rec(0, "new"),
            rec(5, "assigned"),
            rec(6, "assigned"),
            rec(10, "pending"),
            rec(25, "in_progress"),
            rec(40, "resolved"),
        ]
    )
    assert row["transitions"] == [
        [(T0 + timedelta(minutes=m)).isoformat(), s]
        for m, s in [
            (0, "new"),
            (5, "assigned"),
            (10, "pending"),
            (25, "in_progress"),
            (40, "resolved"),
        ]
    ]


def test_open_periods_follow_reopens_pauses_and_cancellation() -> None:
    from services.collector.projections.tickets import multirange, open_periods

    def at(m: int) -> datetime:
        return T0 + timedelta(minutes=m)

    # open 0–30, resolved 30–40, reopened 40–70 (pending counts as open), closed from 70
    row = project_ticket(
        [
            rec(0, "new"),
            rec(10, "pending"),
            rec(30, "resolved"),
            rec(40, "in_progress"),
            rec(70, "closed"),
        ]
    )
    assert open_periods(
        [
            (at(0), "new"),
            (at(10), "pending"),
            (at(30), "resolved"),
            (at(40), "in_progress"),
            (at(70), "closed"),
        ]
    ) == [(at(0), at(30)), (at(40), at(70))]
    assert row["open_periods"] == multirange([(at(0), at(30)), (at(40), at(70))])
    # still open: the last period has no end
    assert open_periods([(at(0), "new"), (at(5), "cancelled"), (at(9), "assigned")]) == [
        (at(0), at(5)),
        (at(9), None),
    ]
    assert multirange([(at(9), None)]) == f'{{["{at(9).isoformat()}",)}}'
