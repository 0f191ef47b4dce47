"""Reading objective status and drift for the API (SPEC §7.2)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, or_, select

from services.aggregator.objectives import catalog_objectives
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
) -> ObjectiveList:
    """Every objective of the active catalog as it applies to each service (`*` expanded), with
    its current and previous window's status and the drift of its series, which is scored on
    the previous (last complete) window only (SPEC §6.4, services/aggregator/drift.py)."""
    if window is not None and window not in WINDOW_KINDS:
        raise InvalidRequest(f"window must be one of {', '.join(WINDOW_KINDS)}")
    wanted = [
        o
        for o in catalog_objectives(catalog)
        if (service is None or o.service == service) and (window is None or o.window == window)
    ]
    if not wanted:
        return ObjectiveList(objectives=[])
    current = {k: window_start(k, now, tz) for k in {o.window for o in wanted}}
    previous = {k: previous_start(k, s, tz) for k, s in current.items()}
    statuses = _statuses(conn, {o.service for o in wanted}, current, previous)
    drift = _drift(conn, previous)
    items = []
    for o in wanted:
        cur, prev = current[o.window], previous[o.window]
        d = drift.get((o.indicator, o.window, o.service))
        items.append(
            ObjectiveItem(
                service=o.service,
                indicator=o.indicator,
                window=o.window,
                comparator=o.comparator,
                target=o.target,
                warning=o.warning,
                weight=o.weight,
                current=_window(statuses, o.service, o.indicator, o.window, cur),
                previous=_window(statuses, o.service, o.indicator, o.window, prev),
                drift_score=None if d is None else d[0],
                drifting=None if d is None else d[1],
            )
        )
    return ObjectiveList(objectives=items)


def _window(
    statuses: dict[tuple[str, str, str, datetime], Any],
    service: str,
    indicator: str,
    kind: str,
    start: datetime,
) -> ObjectiveWindow:
    r = statuses.get((service, indicator, kind, start))
    if r is None:  # not evaluated yet (no data has touched the window)
        return ObjectiveWindow(window_start=start, value=None, status="no_data")
    return ObjectiveWindow(window_start=start, value=r.value, status=r.status)


def _statuses(
    conn: Connection,
    services: set[str],
    current: dict[str, datetime],
    previous: dict[str, datetime],
) -> dict[tuple[str, str, str, datetime], Any]:
    c = objective_status.c
    windows = [(k, s) for k, s in current.items()] + [(k, s) for k, s in previous.items()]
    rows = conn.execute(
        select(c.service, c.indicator, c.window_kind, c.window_start, c.value, c.status).where(
            c.service.in_(services),
            or_(*(and_(c.window_kind == k, c.window_start == s) for k, s in windows)),
        )
    )
    return {(r.service, r.indicator, r.window_kind, r.window_start): r for r in rows}


def _drift(
    conn: Connection, scored: dict[str, datetime]
) -> dict[tuple[str, str, str], tuple[float, bool]]:
    """(indicator, window kind, service) → (score, drifting) of the per-service series in the
    scored window of each kind."""
    d = indicator_drift.c
    rows = conn.execute(
        select(d.indicator, d.window_kind, d.dimensions, d.score, d.drifting).where(
            or_(*(and_(d.window_kind == k, d.window_start == s) for k, s in scored.items()))
        )
    )
    return {
        (r.indicator, r.window_kind, r.dimensions["service"]): (r.score, r.drifting)
        for r in rows
        if set(r.dimensions) == {"service"}
    }
