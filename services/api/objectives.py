"""Reading objective status and drift for the API (SPEC §7.2)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, or_, select

from services.aggregator.objectives import ScopedObjective, catalog_objectives
from services.aggregator.policy import Grouping
from services.api.schemas import ObjectiveItem, ObjectiveList, ObjectiveWindow
from services.catalog import Catalog
from shared.db import indicator_drift, objective_status
from shared.errors import InvalidRequest
from shared.windows import WINDOW_KINDS, previous_start, window_start


def objectives(
    conn: Connection,
    catalog: Catalog,
    *,
    service: str | None,
    window: str | None,
    tz: ZoneInfo,
    now: datetime,
    customer: str | None = None,
) -> ObjectiveList:
    """Every objective of the active catalog as it applies to each service, each customer (`*`
    expanded) and the organisation, with its current and previous window's status and the drift
    of its series, which is scored on the previous (last complete) window only (SPEC §6.4,
    services/aggregator/drift.py). `service` keeps a service's objectives, `customer` a
    customer's own."""
    if window is not None and window not in WINDOW_KINDS:
        raise InvalidRequest(f"window must be one of {', '.join(WINDOW_KINDS)}")
    if service is not None and customer is not None:
        raise InvalidRequest("give service or customer, not both")
    wanted = [
        o
        for o in catalog_objectives(catalog)
        if (service is None or o.service == service)
        and (customer is None or o.customer == customer)
        and (window is None or o.window == window)
    ]
    if not wanted:
        return ObjectiveList(objectives=[])
    current = {k: window_start(k, now, tz) for k in {o.window for o in wanted}}
    previous = {k: previous_start(k, s, tz) for k, s in current.items()}
    statuses = _statuses(conn, {o.indicator for o in wanted}, current, previous)
    drift = _drift(conn, {o.indicator for o in wanted}, previous)
    items = []
    for o in wanted:
        cur, prev = current[o.window], previous[o.window]
        d = drift.get((o.indicator, o.window, o.grouping, o.of))
        items.append(
            ObjectiveItem(
                scope="service" if o.service else "customer" if o.customer else "organisation",
                service=o.service,
                customer=o.customer,
                indicator=o.indicator,
                window=o.window,
                comparator=o.comparator,
                target=o.target,
                warning=o.warning,
                weight=o.weight,
                current=_window(statuses, o, cur),
                previous=_window(statuses, o, prev),
                drift_score=None if d is None else d[0],
                drifting=None if d is None else d[1],
            )
        )
    return ObjectiveList(objectives=items)


StatusKey = tuple[str, str, str, str, datetime]  # service, customer, indicator, kind, start


def _window(statuses: dict[StatusKey, Any], o: ScopedObjective, start: datetime) -> ObjectiveWindow:
    r = statuses.get((o.service, o.customer, o.indicator, o.window, start))
    if r is None:  # not evaluated yet (no data has touched the window)
        return ObjectiveWindow(window_start=start, value=None, status="no_data")
    return ObjectiveWindow(window_start=start, value=r.value, status=r.status)


def _statuses(
    conn: Connection,
    indicators: set[str],
    current: dict[str, datetime],
    previous: dict[str, datetime],
) -> dict[StatusKey, Any]:
    c = objective_status.c
    windows = [(k, s) for k, s in current.items()] + [(k, s) for k, s in previous.items()]
    rows = conn.execute(
        select(
            c.service, c.customer, c.indicator, c.window_kind, c.window_start, c.value, c.status
        ).where(
            c.indicator.in_(indicators),
            or_(*(and_(c.window_kind == k, c.window_start == s) for k, s in windows)),
        )
    )
    return {(r.service, r.customer, r.indicator, r.window_kind, r.window_start): r for r in rows}


def _drift(
    conn: Connection, indicators: set[str], scored: dict[str, datetime]
) -> dict[tuple[str, str, Grouping, str], tuple[float, bool]]:
    """(indicator, window kind, grouping, its service or customer) → (score, drifting) of the
    objectives' indicators' per-service, per-customer and total series in the scored window of
    each kind."""
    d = indicator_drift.c
    rows = conn.execute(
        select(d.indicator, d.window_kind, d.dimensions, d.score, d.drifting).where(
            d.indicator.in_(indicators),
            or_(*(and_(d.window_kind == k, d.window_start == s) for k, s in scored.items())),
        )
    )
    found = {}
    for r in rows:
        if set(r.dimensions) in ({"service"}, {"customer"}, set()):
            grouping = tuple(r.dimensions)
            of = next(iter(r.dimensions.values()), "")
            found[(r.indicator, r.window_kind, grouping, of)] = (r.score, r.drifting)
    return found
