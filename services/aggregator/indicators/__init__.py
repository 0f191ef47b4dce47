"""The indicator registry (SPEC §5): one small declaration per indicator, one module per family.

Every indicator is "samples in a window, aggregated": a declaration gives the SQL that yields
one row per sample (its dimension columns and a value `v`) of the window `w` (it may use
`w.window_start`, `w.window_end` and `:now`), and how the samples aggregate. `compute.py` turns
that into one set-based statement over many windows and dimension groupings (GROUPING SETS);
`policy.py` says which groupings are stored, and the same statement answers the others at
query time. `placement` says how a sample belongs to a window, and so how a window is kept:
- `instant`: placed by one instant (opened, resolved, an event's time): a window's samples are
  its days' samples, so weeks and months add up from their days (merge.py);
- `state`: the state at the window's end (backlog, registered checks);
- `overlap`: a share of an interval inside the window (availability, measured periods);
- `derived`: from the objective status of the same window (SPEC §5.3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from shared.indicator_ids import Direction

Family = Literal["technical", "process", "service", "custom"]
Unit = Literal["count", "seconds", "ratio", "score"]  # custom measurements bring their own
Aggregate = Literal["count", "mean", "ratio", "weighted", "sum"]
Placement = Literal["instant", "state", "overlap", "derived"]
# Derived from `service` through the catalog's service → customer map (compute.select_sql),
# unless an indicator's samples carry it themselves (it lists it among its `dimensions`: a review
# of a customer has a customer and no service).
CUSTOMER = "customer"
# Private dimensions (SPEC §8: per-engineer values are never labels; issue 11's team review):
# an indicator's statement selects them, so a query-time grouping may name them
# (aggregator/per_engineer.py), but they are never stored (policy.py reads `all_dimensions`,
# which leaves them out), never a /metrics label, never listed by or accepted from
# GET /v1/indicators. Only these names may be private.
PRIVATE_DIMENSIONS = frozenset({"assignee"})


@dataclass(frozen=True)
class Indicator:
    id: str
    family: Family
    unit: str
    direction: Direction
    definition: str
    scope: str  # the projection whose changes dirty its windows
    assigned_by: str  # which timestamp places a sample in a window
    dimensions: tuple[str, ...]
    aggregate: Aggregate
    samples_sql: str
    # Bind parameters of this indicator's SQL alone (a custom indicator's id).
    params: tuple[tuple[str, Any], ...] = ()
    # For one sample per row (`per_row`): the `FROM … WHERE …` the rows come from and the
    # sample's expression. Indicators with the same rows and dimensions are computed by one
    # statement (compute.plans); `samples_sql` is the same query for this indicator alone.
    source: str = ""
    v: str = ""
    # What `source` reads, as written after its FROM (`tickets`, or `ticket_sla s JOIN tickets
    # t USING (ticket_id)`): when those are tracked projections, its hours can be kept by what
    # changed in them (aggregator/changes.py).
    rows_from: str = ""
    # The column naming the entity behind a sample, when the samples repeat an entity once per
    # service it belongs to (a CI in two services, an outage of it): a grouping without
    # `service` then counts the entity once (its first sample there), not once per service.
    repeated_per_service: str = ""
    placement: Placement = "instant"
    # Whether a moved interval (a dirty mark of the `span` lane) changes its samples: always
    # for states and time shares; for an instant placed by where intervals meet (an outage is
    # a piece of the union of its alerts) too, and for one that exists once the clock has
    # passed it (a review's deadline): the clock refresh marks the time it passed as a span.
    interval_placed: bool = False
    # Dimensions its samples carry that only a private reader may group by (PRIVATE_DIMENSIONS):
    # selected by the statement like `dimensions`, never stored, exposed or public.
    private_dimensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # only the listed names may be private, and a private name is never a public dimension
        wrong = set(self.private_dimensions) - PRIVATE_DIMENSIONS
        public = PRIVATE_DIMENSIONS & set(self.dimensions)
        if wrong or public:
            raise ValueError(f"{self.id}: private dimensions {sorted(wrong | public)} not allowed")

    @property
    def derives_customer(self) -> bool:
        """Whether `customer` comes from `service` through the catalog's map: wherever there is
        a `service` and the samples do not carry their own `customer`."""
        return "service" in self.dimensions and CUSTOMER not in self.dimensions

    @property
    def all_dimensions(self) -> tuple[str, ...]:
        """The public dimensions: the declared ones, plus a derived `customer` (never the
        private ones)."""
        return (*self.dimensions, CUSTOMER) if self.derives_customer else self.dimensions

    @property
    def sample_dimensions(self) -> tuple[str, ...]:
        """The columns its samples carry: the declared dimensions, then the private ones."""
        return (*self.dimensions, *self.private_dimensions)

    @property
    def selectable_dimensions(self) -> tuple[str, ...]:
        """What its statement can group by: the public dimensions, then the private ones."""
        return (*self.all_dimensions, *self.private_dimensions)

    @property
    def scopes(self) -> frozenset[str]:
        """The entity kinds whose changes may change its samples (dirty mark scopes)."""
        return frozenset(s.strip() for s in self.scope.split(",") if s.strip())

    @property
    def mergeable(self) -> bool:
        """A window's points add up from its days' (n, Σv, Σw): samples placed by an instant,
        each in exactly one day, none weighed by the others (merge.py)."""
        return self.placement == "instant" and not self.repeated_per_service

    @property
    def span_sensitive(self) -> bool:
        return self.placement != "instant" or self.interval_placed

    @property
    def metric_name(self) -> str:
        return f"itsm_{self.id}"

    @property
    def is_duration(self) -> bool:
        """Durations carry p50/p90 (SPEC §5); a custom measurement is an amount or a level."""
        return self.unit == "seconds" and self.family != "custom"


REGISTRY: dict[str, Indicator] = {}


def bounded(column: str) -> tuple[str, str]:
    """The windows' overall bounds on an instant column, as plain parameters (`:lo`, `:hi`,
    compute.bind): the windows come as arrays, which leave the planner guessing how many rows a
    window holds (it read a million tickets for an hour); with these it sees an hour is an hour
    and reads the index."""
    return (f"{column} >= CAST(:lo AS timestamptz)", f"{column} < CAST(:hi AS timestamptz)")


def register(*indicators: Indicator) -> None:
    for ind in indicators:
        if ind.id in REGISTRY:
            raise ValueError(f"indicator {ind.id} registered twice")
        REGISTRY[ind.id] = ind


def all_indicators() -> list[Indicator]:
    _load_families()
    return list(REGISTRY.values())


def get(indicator_id: str) -> Indicator | None:
    _load_families()
    return REGISTRY.get(indicator_id)


def _load_families() -> None:
    # Each family module registers its indicators on import (reviews.py: the process indicator
    # computed from the review schedule).
    from services.aggregator.indicators import process, reviews, service, technical  # noqa: F401
