"""`/metrics` over stored indicator values (SPEC §8): a custom collector that reads the points of
the current and the previous window of each kind. A scrape reads; it never computes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from services.aggregator.indicators import Indicator, all_indicators
from services.aggregator.windows import WINDOW_KINDS, previous_start, window_start
from shared.db import indicator_values

log = logging.getLogger("itsm.api.exposition")

QUANTILES = (("0.5", "p50"), ("0.9", "p90"))


def current_windows(now: datetime, tz: ZoneInfo) -> dict[tuple[str, datetime], str]:
    """(kind, start) → period label, for the current and previous window of every kind."""
    out = {}
    for kind in WINDOW_KINDS:
        cur = window_start(kind, now, tz)
        out[(kind, cur)] = "current"
        out[(kind, previous_start(kind, cur, tz))] = "previous"
    return out


def exposed(dimensions: dict[str, str]) -> bool:
    """Which groupings become series: the total, each single dimension, and a dimension paired
    with `service` (per-service alerting). Every combination stays available over HTTP; this
    keeps Prometheus' cardinality bounded (SPEC §8)."""
    return len(dimensions) <= 1 or (len(dimensions) == 2 and "service" in dimensions)


class IndicatorCollector(Collector):
    def __init__(
        self,
        engine: Engine,
        tz: ZoneInfo,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.tz = tz
        self.clock = clock

    def describe(self) -> Iterator[Metric]:
        for ind in all_indicators():
            yield self._family(ind)

    def _family(self, ind: Indicator) -> GaugeMetricFamily:
        labels = ["window", "period", *ind.dimensions]
        if ind.is_duration:
            labels.append("quantile")
        return GaugeMetricFamily(ind.metric_name, ind.definition, labels=labels)

    def collect(self) -> Iterator[Metric]:
        indicators = {ind.id: ind for ind in all_indicators()}
        families = {i: self._family(ind) for i, ind in indicators.items()}
        windows = current_windows(self.clock(), self.tz)
        iv = indicator_values.c
        query = select(
            iv.indicator, iv.window_kind, iv.window_start, iv.dimensions, iv.value, iv.p50, iv.p90
        ).where(or_(*(and_(iv.window_kind == k, iv.window_start == s) for k, s in windows)))
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
        except DBAPIError as err:
            log.warning(
                "metrics scrape could not read indicator values",
                extra={"error": str(err).splitlines()[0][:200]},
            )
            rows = []
        totals: set[tuple[str, str, str]] = set()
        for r in rows:
            ind = indicators.get(r.indicator)
            if ind is None or r.value is None or not exposed(r.dimensions):
                continue
            period = windows[(r.window_kind, r.window_start)]
            if not r.dimensions:
                totals.add((r.indicator, r.window_kind, period))
            base = [r.window_kind, period, *(str(r.dimensions.get(d, "")) for d in ind.dimensions)]
            fam = families[r.indicator]
            if ind.is_duration:
                fam.add_metric([*base, ""], r.value)
                for q, attr in QUANTILES:
                    value = getattr(r, attr)
                    if value is not None:
                        fam.add_metric([*base, q], value)
            else:
                fam.add_metric(base, r.value)
        # A count with nothing to count is 0 (an empty window stores no point).
        for ind in indicators.values():
            if ind.aggregate != "count":
                continue
            for kind, period in sorted({(k, p) for (k, _), p in windows.items()}):
                if (ind.id, kind, period) not in totals:
                    families[ind.id].add_metric([kind, period, *("" for _ in ind.dimensions)], 0.0)
        yield from families.values()
