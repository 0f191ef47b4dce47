"""Indicator figures of a review: one indicator over a period and the one before, read by the
indicator API's own code (`indicators.plan` + `indicators.series`, as improvements/measure.py
does), so every number is the one `GET /v1/indicators/{id}` answers for the same window and
filters; and the trend between the two, by the indicator's better direction."""

from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy import Connection

from services.aggregator.indicators import Indicator
from services.aggregator.indicators.custom import find
from services.api import indicators
from services.api.indicators import Reading
from services.api.reviews.customer_schemas import Breakdown, Figure, Group, Trend
from services.catalog import Catalog
from shared.errors import InvalidRequest
from shared.periods import Period
from shared.windows import WINDOW_KINDS


def trend(direction: str, value: float | None, previous: float | None) -> Trend | None:
    """The value against the previous period's, by the indicator's better direction (pure)."""
    if value is None or previous is None:
        return None
    if math.isclose(value, previous, rel_tol=1e-9, abs_tol=1e-12):
        return "same"
    up = value > previous
    if direction == "higher_is_better":
        return "better" if up else "worse"
    if direction == "lower_is_better":
        return "worse" if up else "better"
    return "up" if up else "down"


def window_for(period: Period) -> str:
    """The stored window kind a period is read from. A quarter needs a `quarter` window: adding
    three months' values is not the same formula for a mean, a ratio or an availability, so no
    quarter figure is made up from months."""
    if period.kind not in WINDOW_KINDS:
        raise InvalidRequest(
            f"{period.kind} reviews need the {period.kind} window, which the indicators do not "
            f"have yet: review a month or an ISO week (windows: {', '.join(WINDOW_KINDS)})"
        )
    return period.kind


class Reader:
    """Reads indicator figures for one period and the one before, one scope."""

    def __init__(
        self,
        conn: Connection,
        catalog: Catalog,
        period: Period,
        reading: Reading,
        now: datetime,
    ) -> None:
        self.conn, self.catalog, self.reading, self.now = conn, catalog, reading, now
        self.window = window_for(period)
        self.start, self.end = period.start(reading.tz), period.end(reading.tz)
        self.previous_start = period.previous().start(reading.tz)

    def indicator(self, indicator_id: str) -> Indicator:
        ind = find(self.conn, self.catalog, indicator_id)
        # Never for the built-in ids the review names; an objective's indicator is checked when
        # its catalog is applied, but a custom one may have gone since.
        if ind is None:
            raise InvalidRequest(f"unknown indicator {indicator_id!r}")
        return ind

    def _points(
        self, ind: Indicator, filters: dict[str, str], group_by: list[str]
    ) -> dict[tuple[datetime, str | None], tuple[float | None, int]]:
        """(window start, group key) → (value, count) for the period and the one before."""
        q = indicators.plan(
            self.conn,
            self.catalog,
            ind.id,
            window=self.window,
            start=self.previous_start,
            end=self.end,
            filters=filters,
            group_by=group_by,
            tz=self.reading.tz,
            hour_retention_days=self.reading.hour_retention_days,
            now=self.now,
        )
        found: dict[tuple[datetime, str | None], tuple[float | None, int]] = {}
        for p in indicators.series(self.conn, self.catalog, q).points:
            key = p.dimensions.get(group_by[0]) if group_by else None
            if {k: v for k, v in p.dimensions.items() if k in filters} == filters:
                found[(p.window_start, key)] = (p.value, p.count)
        return found

    def figure(self, indicator_id: str, filters: dict[str, str]) -> Figure:
        ind = self.indicator(indicator_id)
        found = self._points(ind, filters, [])
        value, count = found.get((self.start, None), (None, 0))
        previous, previous_count = found.get((self.previous_start, None), (None, 0))
        return Figure(
            indicator=ind.id,
            unit=ind.unit,
            direction=ind.direction,
            filters=filters,
            value=value,
            count=count,
            previous=previous,
            previous_count=previous_count,
            trend=trend(ind.direction, value, previous),
        )

    def breakdown(self, indicator_id: str, dimension: str, filters: dict[str, str]) -> Breakdown:
        ind = self.indicator(indicator_id)
        found = self._points(ind, filters, [dimension])
        keys = sorted({k for _, k in found if k is not None})
        # A count with nothing to count is 0, as the indicator API fills an ungrouped count;
        # it has no point for a group without samples.
        none: tuple[float | None, int] = (0.0, 0) if ind.aggregate == "count" else (None, 0)
        groups = []
        for key in keys:
            value, count = found.get((self.start, key), none)
            previous, previous_count = found.get((self.previous_start, key), none)
            groups.append(
                Group(
                    key=key,
                    value=value,
                    count=count,
                    previous=previous,
                    previous_count=previous_count,
                    trend=trend(ind.direction, value, previous),
                )
            )
        return Breakdown(indicator=ind.id, dimension=dimension, groups=groups)
