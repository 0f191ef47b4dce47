"""Indicator figures of a review: one indicator over a period and the one before, and for the
key figures the periods before those (their history, for a trend line), read by the indicator
API's own code (`indicators.plan` + `indicators.series`, as improvements/measure.py does), so
every number is the one `GET /v1/indicators/{id}` answers for the same window and filters; and
the trend between the period and the one before, by the indicator's better direction."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from services.aggregator.indicators import Indicator
from services.aggregator.indicators.custom import find
from services.api import indicators
from services.api.indicators import Reading
from services.api.reviews.customer_schemas import (
    Breakdown,
    Figure,
    FigureWithHistory,
    Group,
    HistoryPoint,
    Trend,
)
from services.catalog import Catalog
from shared.errors import InvalidRequest
from shared.periods import Period, last_periods
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


Points = dict[tuple[datetime, str | None], tuple[float | None, int]]


class Reader:
    """Reads indicator figures for one period and the one before, one scope; with their
    history (the last `history` periods of the same kind, ending with this one) when asked."""

    def __init__(
        self,
        conn: Connection,
        catalog: Catalog,
        period: Period,
        reading: Reading,
        now: datetime,
        history: int = 1,
    ) -> None:
        self.conn, self.catalog, self.reading, self.now = conn, catalog, reading, now
        self.period = period
        self.window = window_for(period)
        tz = reading.tz
        self.start, self.end = period.start(tz), period.end(tz)
        self.previous_start = period.previous().start(tz)
        self.periods = list(reversed(last_periods(period.kind, self.start, tz, max(1, history))))
        # The first window a history reads (never after the previous period's: the figure and
        # its history come from one read).
        self.since = min(self.previous_start, self.periods[0].start(tz))

    def header(self) -> dict[str, Any]:
        """The fields every review opens with: its period, the one before, the indicator
        window read and when it was generated."""
        return {
            "period": self.period.label,
            "period_kind": self.period.kind,
            "period_start": self.start,
            "period_end": self.end,
            "previous_period": self.period.previous().label,
            "window": self.window,
            "generated_at": self.now,
        }

    def indicator(self, indicator_id: str) -> Indicator:
        ind = find(self.conn, self.catalog, indicator_id)
        # Never for the built-in ids the review names; an objective's indicator is checked when
        # its catalog is applied, but a custom one may have gone since.
        if ind is None:
            raise InvalidRequest(f"unknown indicator {indicator_id!r}")
        return ind

    def _points(
        self, ind: Indicator, filters: dict[str, str], group_by: list[str], since: datetime
    ) -> Points:
        """(window start, group key) → (value, count) for the windows from `since` to the
        period's end: one read, whatever the number of windows."""
        q = indicators.plan(
            self.conn,
            self.catalog,
            ind.id,
            window=self.window,
            start=since,
            end=self.end,
            filters=filters,
            group_by=group_by,
            tz=self.reading.tz,
            hour_retention_days=self.reading.hour_retention_days,
            now=self.now,
        )
        found: Points = {}
        for p in indicators.series(self.conn, self.catalog, q).points:
            key = p.dimensions.get(group_by[0]) if group_by else None
            if {k: v for k, v in p.dimensions.items() if k in filters} == filters:
                found[(p.window_start, key)] = (p.value, p.count)
        return found

    def figure(self, indicator_id: str, filters: dict[str, str]) -> Figure:
        ind = self.indicator(indicator_id)
        found = self._points(ind, filters, [], self.previous_start)
        return Figure(**self._figure(ind, filters, found))

    def figure_with_history(self, indicator_id: str, filters: dict[str, str]) -> FigureWithHistory:
        """The figure and its history, from one read of the indicator over the whole span."""
        ind = self.indicator(indicator_id)
        found = self._points(ind, filters, [], self.since)
        return FigureWithHistory(**self._figure(ind, filters, found), history=self.history(found))

    def _figure(self, ind: Indicator, filters: dict[str, str], found: Points) -> dict[str, Any]:
        value, count = found.get((self.start, None), (None, 0))
        previous, previous_count = found.get((self.previous_start, None), (None, 0))
        return {
            "indicator": ind.id,
            "unit": ind.unit,
            "direction": ind.direction,
            "filters": filters,
            "value": value,
            "count": count,
            "previous": previous,
            "previous_count": previous_count,
            "trend": trend(ind.direction, value, previous),
        }

    def history(self, found: Points) -> list[HistoryPoint]:
        """One point per period of the history, oldest first (no point: null and 0 samples)."""
        tz, points = self.reading.tz, []
        for p in self.periods:
            start, end = p.start(tz), p.end(tz)
            value, count = found.get((start, None), (None, 0))
            points.append(
                HistoryPoint(period=p.label, start=start, end=end, value=value, count=count)
            )
        return points

    def breakdown(self, indicator_id: str, dimension: str, filters: dict[str, str]) -> Breakdown:
        ind = self.indicator(indicator_id)
        found = self._points(ind, filters, [dimension], self.previous_start)
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
