"""The indicator registry (SPEC §5): one small declaration per indicator, one module per family.

Most indicators are "samples in a window, aggregated": a declaration gives the SQL that yields
one row per sample (its dimension columns and a value `v`) of the window `w` (it may use
`w.window_start` and `w.window_end`), and how the samples aggregate. `compute.py` turns that
into one set-based statement over all dirty windows of a kind and every dimension grouping
(GROUP BY CUBE), so every filter and `group_by` combination is stored, percentiles included."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from shared.indicator_ids import Direction

Family = Literal["technical", "process", "service", "custom"]
Unit = Literal["count", "seconds", "ratio", "score"]  # custom measurements bring their own
Aggregate = Literal["count", "mean", "ratio", "weighted", "sum"]
# Derived from `service` through the catalog's service → customer map, never from samples.
CUSTOMER = "customer"


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
    # The dimension naming the entity behind a sample, when the samples repeat an entity once
    # per service it belongs to (a CI in two services): a grouping without `service` then
    # counts the entity once (weights 1/k over its k samples), not k times.
    repeated_per_service: str = ""

    @property
    def all_dimensions(self) -> tuple[str, ...]:
        """The declared dimensions, plus `customer` wherever there is a `service`."""
        return (*self.dimensions, CUSTOMER) if "service" in self.dimensions else self.dimensions

    @property
    def metric_name(self) -> str:
        return f"itsm_{self.id}"

    @property
    def is_duration(self) -> bool:
        """Durations carry p50/p90 (SPEC §5); a custom measurement is an amount or a level."""
        return self.unit == "seconds" and self.family != "custom"


REGISTRY: dict[str, Indicator] = {}


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
    # Each family module registers its indicators on import.
    from services.aggregator.indicators import process, service, technical  # noqa: F401
