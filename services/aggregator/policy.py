"""Which groupings are stored (issue 10): cardinality is a decision, not an accident. Pure.

Every combination of every dimension, for every hour, grew with the product of the dimensions'
values: a busy month at realistic cardinality (200 services, 60 groups) stored millions of
points. What is stored now, per window:

- an hour: the total and each dimension whose values the event contract enumerates
  (`priority`, `kind`, `channel`, `change_type`, `severity`: at most a few dozen points);
- a day, week or month: the total, each dimension alone, and each enumerated dimension beside
  `service` or `customer` (what a service review and a per-service alert read).

Every other grouping (two catalog dimensions together, `assignment_group` beside `service`,
anything per hour and service, hours older than the retention) is answered at query time by the
same statement over the projections (compute.query_points): one formula, never a second one.
A private dimension (`assignee`, indicators.PRIVATE_DIMENSIONS) is not among an indicator's
`all_dimensions`, so it is in no stored grouping at all: per-engineer values are computed at
query time for the team review only (per_engineer.py), never stored (SPEC §8).

Points per window are therefore bounded by the data's cardinality, not by its product: for an
indicator with dimensions D, at most 1 + Σ|d| + (|service| + |customer|) × Σ|enumerated d|."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.aggregator.indicators import CUSTOMER, Indicator

# Dimensions whose values the event contract enumerates (SPEC §3): cheap to store everywhere.
ENUMERATED = frozenset({"priority", "kind", "channel", "change_type", "severity"})
# Dimensions stored beside each enumerated one, from a day up.
PAIRED = ("service", CUSTOMER)

Grouping = tuple[str, ...]  # sorted dimension names; () is the total


def stored_groupings(ind: Indicator, kind: str) -> tuple[Grouping, ...]:
    """The groupings of `ind` stored for windows of `kind`, the total first."""
    dims = ind.all_dimensions
    enumerated = [d for d in dims if d in ENUMERATED]
    if kind == "hour":
        return ((), *((d,) for d in enumerated))
    pairs = [tuple(sorted((p, d))) for p in PAIRED if p in dims for d in enumerated]
    return ((), *((d,) for d in dims), *pairs)


def is_stored(ind: Indicator, kind: str, grouping: Grouping) -> bool:
    return tuple(sorted(grouping)) in stored_groupings(ind, kind)


def dim_keys(grouping: Grouping) -> str:
    """How a grouping is named in `indicator_values.dim_keys`: sorted, comma-joined."""
    return ",".join(sorted(grouping))


def hours_kept_since(now: datetime, retention_days: float) -> datetime:
    """Hour windows starting before this instant are not stored (they are answered at query
    time): hourly detail is for the recent past; days and longer are kept for ever."""
    return now - timedelta(days=retention_days)
