"""The numbers of an improvement: its baseline, captured on approval, and the verification of the
period after `implemented`, both read by the indicator API's own code (`indicators.plan` and
`indicators.series`), so they are the values `GET /v1/indicators/{id}` answers for the same
windows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from services.aggregator.indicators import Indicator
from services.aggregator.indicators.custom import find
from services.api import indicators
from services.api.improvements import states
from services.api.improvements.schemas import Evidence, Measured, WindowValue
from services.api.indicators import Reading
from services.catalog import Catalog
from shared.windows import previous_start, window_start


def scope(service: str | None, customer: str | None) -> dict[str, str]:
    """The indicator API's filters for an improvement's scope (none: the organisation)."""
    if service is not None:
        return {"service": service}
    if customer is not None:
        return {"customer": customer}
    return {}


def measure(
    conn: Connection,
    catalog: Catalog,
    ind: Indicator,
    kind: str,
    filters: dict[str, str],
    period: tuple[datetime, datetime],
    now: datetime,
    reading: Reading,
) -> Measured:
    """The indicator's windows of `kind` inside `period` (whole windows), and their summary."""
    start, end = period
    q = indicators.plan(
        conn,
        catalog,
        ind.id,
        window=kind,
        start=start,
        end=end,
        filters=filters,
        group_by=[],
        tz=reading.tz,
        hour_retention_days=reading.hour_retention_days,
        now=now,
    )
    found = indicators.series(conn, catalog, q)
    windows = [
        WindowValue(
            window_start=p.window_start, window_end=p.window_end, value=p.value, count=p.count
        )
        for p in found.points
        if p.dimensions == filters and p.window_start >= start and p.window_end <= end
    ]
    value = states.summary(ind.aggregate, [(w.value, w.count) for w in windows])
    query: dict[str, Any] = {
        "indicator": ind.id,
        "window": kind,
        "filters": filters,
        "start": start.isoformat(),
        "end": end.isoformat(),
    }
    return Measured(
        value=value,
        reason=None if value is not None else "no data",
        windows=windows,
        query=query,
        at=now,
    )


def baseline(
    conn: Connection,
    catalog: Catalog,
    ind: Indicator,
    kind: str,
    filters: dict[str, str],
    now: datetime,
    reading: Reading,
) -> Measured:
    """The last `improvements.baseline_windows` (catalog, default 4) complete windows of `kind`
    before `now`."""
    end = window_start(kind, now, reading.tz)
    start = end
    for _ in range(catalog.improvements.baseline_windows):
        start = previous_start(kind, start, reading.tz)
    return measure(conn, catalog, ind, kind, filters, (start, end), now, reading)


def evidence(
    conn: Connection,
    catalog: Catalog,
    row: Any,
    now: datetime,
    reading: Reading,
) -> Evidence:
    """The indicator over the improvement's verification period against its baseline and
    target."""
    period = (row.verify_from, row.verify_until)
    base = row.baseline.get("value") if row.baseline else None
    ind = find(conn, catalog, row.indicator)
    if ind is None or ind.direction == "neutral":
        why = "is no longer an indicator" if ind is None else "has no better direction"
        return Evidence(
            value=None,
            reason=f"{row.indicator} {why}",
            windows=[],
            query={"indicator": row.indicator, "window": row.window_kind},
            at=now,
            direction="neutral" if ind is None else ind.direction,
            baseline=base,
            target=row.target,
            outcome="not_achieved",
            target_met=None,
            better_than_baseline=None,
            reasons=[f"{row.indicator} {why}"],
        )
    observed = measure(
        conn, catalog, ind, row.window_kind, scope(row.service, row.customer), period, now, reading
    )
    v = states.verdict(ind.direction, base, row.target, observed.value)
    return Evidence(
        **observed.model_dump(),
        direction=ind.direction,
        baseline=base,
        target=row.target,
        outcome=v.state,
        target_met=v.target_met,
        better_than_baseline=v.better_than_baseline,
        reasons=list(v.reasons),
    )
