"""The aggregator's operational metrics (SPEC §8)."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram


class AggregatorMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.dirty_windows = Gauge(
            "itsm_aggregator_dirty_windows",
            "Windows waiting to be recomputed (queue rows not parked, due now or later)",
            registry=registry,
        )
        self.due_windows = Gauge(
            "itsm_aggregator_due_windows",
            "Windows due for recomputation now (not parked)",
            registry=registry,
        )
        self.parked_windows = Gauge(
            "itsm_aggregator_parked_windows",
            "Windows whose recomputation failed repeatedly, parked until retried "
            "(`itsm-metrics windows parked`, `itsm-metrics windows retry`)",
            registry=registry,
        )
        self.window_failures = Counter(
            "itsm_aggregator_window_failures",
            "Failed recomputations of a unit of windows (each retried with backoff)",
            registry=registry,
        )
        self.window_points = Gauge(
            "itsm_aggregator_window_points",
            "Points stored for the last window of each kind the aggregator computed",
            ["window"],
            registry=registry,
        )
        self.hours_renewed = Counter(
            "itsm_aggregator_hours_renewed",
            "Hour partials of recent days brought up to date, by how: `changes` (what the "
            "entities changed since added, new minus old) or `rows` (recomputed from the rows)",
            ["by"],
            registry=registry,
        )
        self.pending_age = Gauge(
            "itsm_aggregator_pending_age_seconds",
            "Age of the oldest difference the point lane appended to running windows' points "
            "that no fold has added up yet (read with the points, so never stale; growing: "
            "folds deferred or slower than their interval)",
            registry=registry,
        )
        self.folded = Counter(
            "itsm_aggregator_folded_differences",
            "Pending differences added up to their points by the `fold` job",
            registry=registry,
        )
        self.folds_deferred = Counter(
            "itsm_aggregator_folds_deferred",
            "Folds of pending differences put off because another transaction had been open for "
            "seconds (its snapshot keeps every row version a fold would create)",
            registry=registry,
        )
        self.run_seconds = Histogram(
            "itsm_aggregator_run_seconds",
            "Duration of one aggregator job run",
            ["job"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=registry,
        )
        self.freshness = Histogram(
            "itsm_event_to_indicator_seconds",
            "From an event's receipt to the indicator values that include it",
            buckets=(0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 900),
            registry=registry,
        )
