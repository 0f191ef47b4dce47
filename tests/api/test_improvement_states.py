"""The improvement's state machine, verification period, baseline summary and verdict (SPEC §7.4):
pure functions, hand-computed expectations."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from services.api.improvements import states
from tests.helpers import utc

UTC_TZ = ZoneInfo("UTC")


def test_every_allowed_transition() -> None:
    assert states.TRANSITIONS == {
        "proposed": ("approved", "cancelled"),
        "approved": ("in_progress", "cancelled"),
        "in_progress": ("implemented", "cancelled"),
        "implemented": ("verified", "not_achieved", "cancelled"),
        "verified": ("not_achieved",),
        "not_achieved": ("verified",),
        "cancelled": (),
    }
    assert set(states.TRANSITIONS) == set(states.STATES)


@pytest.mark.parametrize(
    ("state", "to"),
    [
        ("proposed", "in_progress"),  # not approved yet
        ("proposed", "implemented"),
        ("proposed", "verified"),
        ("approved", "implemented"),
        ("in_progress", "verified"),  # only after implemented
        ("implemented", "in_progress"),  # no way back
        ("verified", "cancelled"),  # closed: no longer cancellable
        ("cancelled", "proposed"),
        ("cancelled", "approved"),
    ],
)
def test_forbidden_transitions(state: states.State, to: states.State) -> None:
    assert to not in states.allowed(state)


def test_cancelled_from_every_open_state_only() -> None:
    open_states = ("proposed", "approved", "in_progress", "implemented")
    assert [s for s in states.STATES if "cancelled" in states.allowed(s)] == list(open_states)


def test_outcomes_are_manual_decisions_needing_a_reason() -> None:
    assert states.is_manual_decision("verified") and states.is_manual_decision("not_achieved")
    assert not states.is_manual_decision("approved")
    assert not states.is_manual_decision("cancelled")


def test_verification_period_is_whole_windows_after_implementation() -> None:
    # implemented Mon 2026-10-05 10:00: that day mixes before and after, so days 6 and 7
    assert states.verification_period("day", utc(2026, 10, 5, 10), 2, UTC_TZ) == (
        utc(2026, 10, 6),
        utc(2026, 10, 8),
    )
    # implemented exactly at a window's start: that window is the first
    assert states.verification_period("day", utc(2026, 10, 6), 1, UTC_TZ) == (
        utc(2026, 10, 6),
        utc(2026, 10, 7),
    )
    # a week from Wednesday 2026-10-07: the next ISO week, Monday 10-12 to Monday 10-19
    assert states.verification_period("week", utc(2026, 10, 7, 12), 1, UTC_TZ) == (
        utc(2026, 10, 12),
        utc(2026, 10, 19),
    )
    # months: November and December
    assert states.verification_period("month", utc(2026, 10, 20), 2, UTC_TZ) == (
        utc(2026, 11, 1),
        utc(2027, 1, 1),
    )


def test_summary_of_counts_is_the_windows_mean() -> None:
    # (2 + 1 + 3 + 2) / 4 = 2.0; counts' `count` does not weigh them
    assert states.summary("count", [(2, 2), (1, 1), (3, 3), (2, 2)]) == 2.0
    assert states.summary("count", [(0, 0), (0, 0)]) == 0.0


def test_summary_of_ratios_is_the_count_weighted_mean() -> None:
    # (0.5·2 + 0·1 + 1·3) / (2 + 1 + 3) = 4 / 6; the plain mean would be 0.5
    assert states.summary("ratio", [(0.5, 2), (0.0, 1), (1.0, 3)]) == pytest.approx(4 / 6)
    assert states.summary("mean", [(600.0, 1), (1200.0, 3)]) == pytest.approx(1050.0)
    assert states.summary("ratio", [(None, 0)]) is None
    assert states.summary("ratio", []) is None


def test_lower_is_better_count_improved_is_verified() -> None:
    v = states.verdict("lower_is_better", baseline=2.0, target=1.0, observed=0.5)
    assert (v.state, v.target_met, v.better_than_baseline) == ("verified", True, True)
    assert v.reasons == (
        "observed 0.5 meets the target ≤ 1",
        "observed 0.5 is lower than the baseline 2",
    )


def test_lower_is_better_count_not_improved_is_not_achieved() -> None:
    v = states.verdict("lower_is_better", baseline=1.0, target=0.5, observed=1.5)
    assert (v.state, v.target_met, v.better_than_baseline) == ("not_achieved", False, False)
    assert v.reasons == (
        "observed 1.5 misses the target ≤ 0.5",
        "observed 1.5 is not better than the baseline 1",
    )


def test_higher_is_better_ratio_both_ways() -> None:
    assert states.verdict("higher_is_better", 4 / 6, 0.75, 0.75).state == "verified"
    missed = states.verdict("higher_is_better", 1.0, 0.9, 0.0)
    assert (missed.state, missed.target_met, missed.better_than_baseline) == (
        "not_achieved",
        False,
        False,
    )


def test_target_met_but_worse_than_baseline_is_not_achieved() -> None:
    # a target set below where the indicator already was: reaching it is no improvement
    v = states.verdict("higher_is_better", baseline=0.9, target=0.8, observed=0.85)
    assert (v.state, v.target_met, v.better_than_baseline) == ("not_achieved", True, False)


def test_without_baseline_the_target_alone_decides() -> None:
    v = states.verdict("higher_is_better", baseline=None, target=0.8, observed=0.85)
    assert (v.state, v.better_than_baseline) == ("verified", None)
    assert v.reasons[1] == "no baseline: compared with the target only"


def test_no_observed_data_is_not_achieved() -> None:
    v = states.verdict("lower_is_better", baseline=2.0, target=1.0, observed=None)
    assert (v.state, v.reasons) == ("not_achieved", ("no data over the verification period",))


def test_a_neutral_indicator_has_no_verdict() -> None:
    with pytest.raises(ValueError):
        states.verdict("neutral", 1.0, 1.0, 1.0)
