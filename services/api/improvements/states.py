"""The improvement's state machine and the verification's comparison (SPEC §7.4). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from shared.indicator_ids import Direction
from shared.windows import window_end, window_start

State = Literal[
    "proposed", "approved", "in_progress", "implemented", "verified", "not_achieved", "cancelled"
]
STATES: tuple[State, ...] = (
    "proposed",
    "approved",
    "in_progress",
    "implemented",
    "verified",
    "not_achieved",
    "cancelled",
)
Element = Literal["people", "resources", "technology", "process"]
Source = Literal[
    "measurement",
    "review_action_item",
    "kpi_drift",
    "objective_breach",
    "audit",
    "staff_proposal",
    "management",
    "standard",
    "business_change",
]
# The automatic verification's user in the transition history.
SYSTEM = "system"

# Where each state may go. `cancelled` from every open state; `verified` and `not_achieved` are
# the verification's outcomes, and one may be turned into the other by a manual decision (with a
# reason) when a person judges the numbers differently: the automatic evidence stays beside it.
TRANSITIONS: dict[State, tuple[State, ...]] = {
    "proposed": ("approved", "cancelled"),
    "approved": ("in_progress", "cancelled"),
    "in_progress": ("implemented", "cancelled"),
    "implemented": ("verified", "not_achieved", "cancelled"),
    "verified": ("not_achieved",),
    "not_achieved": ("verified",),
    "cancelled": (),
}
# Fields may be edited while the work is not done yet.
EDITABLE: frozenset[State] = frozenset({"proposed", "approved", "in_progress"})
# What the baseline is about may change only before it is captured (on approval).
SCOPE_EDITABLE: frozenset[State] = frozenset({"proposed"})
DECISIONS: frozenset[State] = frozenset({"verified", "not_achieved"})


def allowed(state: State) -> tuple[State, ...]:
    return TRANSITIONS[state]


def is_manual_decision(to: State) -> bool:
    """A person's transition to an outcome: it needs a reason (the transition's note)."""
    return to in DECISIONS


def verification_period(
    kind: str, implemented_at: datetime, windows: int, tz: ZoneInfo
) -> tuple[datetime, datetime]:
    """The `windows` whole windows of `kind` that start at or after `implemented_at`: a window
    the change happened in mixes before and after, so it is not part of the period."""
    start = window_start(kind, implemented_at, tz)
    if start < implemented_at:
        start = window_end(kind, start, tz)
    end = start
    for _ in range(windows):
        end = window_end(kind, end, tz)
    return start, end


def summary(aggregate: str, points: list[tuple[float | None, int]]) -> float | None:
    """One value for several windows' (value, count): a count or a sum is an amount per window,
    so the windows' mean; a ratio or a mean is a value per sample, so the count-weighted mean
    (the value over all the windows' samples; for the `weighted` aggregates, availability, an
    approximation that weighs windows by their samples). None without any value."""
    valued = [(v, c) for v, c in points if v is not None]
    if not valued:
        return None
    if aggregate in ("count", "sum"):
        return sum(v for v, _ in valued) / len(valued)
    weight = sum(c for _, c in valued)
    if weight <= 0:
        return sum(v for v, _ in valued) / len(valued)
    return sum(v * c for v, c in valued) / weight


@dataclass(frozen=True)
class Verdict:
    state: State
    target_met: bool | None
    better_than_baseline: bool | None
    reasons: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "target_met": self.target_met,
            "better_than_baseline": self.better_than_baseline,
            "reasons": list(self.reasons),
        }


def verdict(
    direction: Direction, baseline: float | None, target: float, observed: float | None
) -> Verdict:
    """`verified` when the observed value meets the target (reached counts) and, with a baseline,
    is better than it, in the indicator's better direction; else `not_achieved`, with why."""
    if direction == "neutral":
        raise ValueError("an indicator without a better direction cannot be verified")
    if observed is None:
        return Verdict("not_achieved", None, None, ("no data over the verification period",))
    higher = direction == "higher_is_better"
    word = "≥" if higher else "≤"
    met = observed >= target if higher else observed <= target
    reasons = [f"observed {observed:g} {'meets' if met else 'misses'} the target {word} {target:g}"]
    better: bool | None = None
    if baseline is None:
        reasons.append("no baseline: compared with the target only")
    else:
        better = observed > baseline if higher else observed < baseline
        side = ("higher" if higher else "lower") if better else "not better"
        reasons.append(f"observed {observed:g} is {side} than the baseline {baseline:g}")
    ok = met and better is not False
    return Verdict("verified" if ok else "not_achieved", met, better, tuple(reasons))
