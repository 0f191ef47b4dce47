"""Objective status (SPEC §6.3) and the service scores built on it (SPEC §5.3).

The top half is pure: status, score, health and met ratio, and which objectives apply to which
service. `evaluate_windows` is the shell: it reads the indicator values of freshly recomputed
windows and replaces those windows' rows in `objective_status`, with the number of samples
behind each value (the point's `count`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects.postgresql import insert

from services.aggregator.compute import query_points
from services.aggregator.indicators import get
from services.aggregator.policy import is_stored
from services.catalog.model import ANY_SERVICE, Catalog, Objective
from shared.db import indicator_values, objective_status
from shared.windows import window_end

Status = Literal["met", "warning", "breached", "no_data"]
Comparator = Literal[">=", "<="]

SCORES: dict[str, float] = {"met": 100.0, "warning": 50.0, "breached": 0.0}


def status(
    value: float | None, comparator: Comparator, target: float, warning: float | None
) -> Status:
    """`>=`: met at or above target, warning at or above `warning`, else breached; `<=` mirrors
    it. No value is `no_data`."""
    if value is None:
        return "no_data"
    if comparator == ">=":
        if value >= target:
            return "met"
        return "warning" if warning is not None and value >= warning else "breached"
    if value <= target:
        return "met"
    return "warning" if warning is not None and value <= warning else "breached"


def score(s: Status) -> float | None:
    """100 met, 50 warning, 0 breached (SPEC §5.3); None for no_data, which is left out."""
    return SCORES.get(s)


def health_score(statuses: Iterable[tuple[Status, float]]) -> float | None:
    """`service_health_score`: the weight-weighted mean score of the objectives with data."""
    scored = [(score(s), w) for s, w in statuses if s != "no_data"]
    total = sum(w for _, w in scored)
    if not scored or total == 0:
        return None
    return sum(sc * w for sc, w in scored if sc is not None) / total


def met_ratio(statuses: Iterable[Status]) -> float | None:
    """`service_objectives_met_ratio`: met / objectives with data (unweighted)."""
    with_data = [s for s in statuses if s != "no_data"]
    return sum(s == "met" for s in with_data) / len(with_data) if with_data else None


@dataclass(frozen=True)
class ServiceObjective:
    """One objective as it applies to one service."""

    service: str
    indicator: str
    window: str
    comparator: Comparator
    target: float
    warning: float | None
    weight: float


def service_objectives(
    objectives: Sequence[Objective], services: Sequence[str]
) -> list[ServiceObjective]:
    """Expand `*` to every service; an objective naming the service overrides the `*` one for
    the same (indicator, window). Among equals the first in the file wins."""
    chosen: dict[tuple[str, str, str], ServiceObjective] = {}
    for exact in (True, False):
        for o in objectives:
            if (o.service != ANY_SERVICE) != exact:
                continue
            for svc in [o.service] if exact else services:
                key = (svc, o.indicator, o.window)
                if key not in chosen:
                    chosen[key] = ServiceObjective(
                        svc, o.indicator, o.window, o.comparator, o.target, o.warning, o.weight
                    )
    return sorted(chosen.values(), key=lambda so: (so.service, so.indicator, so.window))


def catalog_objectives(catalog: Catalog) -> list[ServiceObjective]:
    return service_objectives(catalog.objectives, [s.id for s in catalog.services])


# --- shell ----------------------------------------------------------------------------------------


def evaluate_windows(
    conn: Connection,
    catalog: Catalog,
    kind: str,
    starts: list[datetime],
    tz: ZoneInfo,
    *,
    now: datetime,
    params: Mapping[str, Any] | None = None,
) -> int:
    """Replace `objective_status` for these windows of one kind from their per-service values
    (stored, which must be recomputed first, or computed now where the grouping is not stored:
    an hour per service). A window is recomputed whenever its data changes, late events after
    its end included, and once more when it closes (the clock refresh), so the previous
    window's rows stay up to date. Returns rows written."""
    if not starts:
        return 0
    objectives = [o for o in catalog_objectives(catalog) if o.window == kind]
    os_ = objective_status.c
    conn.execute(
        delete(objective_status).where(os_.window_kind == kind, os_.window_start.in_(starts))
    )
    if not objectives:
        return 0
    windows = [(s, window_end(kind, s, tz)) for s in starts]
    wanted = {(o.indicator, o.service) for o in objectives}
    values = _values(conn, kind, starts, wanted)
    for indicator in sorted({i for i, _ in wanted}):
        ind = get(indicator)
        # an indicator without a `service` dimension has no per-service value (no_data)
        if ind is None or "service" not in ind.all_dimensions:
            continue
        if not is_stored(ind, kind, ("service",)):
            for p in query_points(conn, ind, windows, ("service",), {}, now=now, params=params):
                if (indicator, p.dimensions["service"]) in wanted and p.value is not None:
                    values[(indicator, p.dimensions["service"], p.window_start)] = (
                        p.value,
                        p.count,
                    )
    rows = []
    for start in starts:
        end = window_end(kind, start, tz)
        for o in objectives:
            value, samples = values.get((o.indicator, o.service, start), (None, None))
            if value is None and _counts(o.indicator):
                # a count with nothing to count stores no point: it is 0, of 0 samples
                value, samples = 0.0, 0
            rows.append(
                {
                    "service": o.service,
                    "indicator": o.indicator,
                    "window_kind": kind,
                    "window_start": start,
                    "window_end": end,
                    "value": value,
                    "target": o.target,
                    "warning": o.warning,
                    "comparator": o.comparator,
                    "weight": o.weight,
                    "status": status(value, o.comparator, o.target, o.warning),
                    "evaluated_at": now,
                    "samples": samples,
                }
            )
    conn.execute(insert(objective_status), rows)
    return len(rows)


def _counts(indicator: str) -> bool:
    ind = get(indicator)
    return ind is not None and ind.aggregate == "count" and "service" in ind.dimensions


def _values(
    conn: Connection, kind: str, starts: list[datetime], wanted: set[tuple[str, str]]
) -> dict[tuple[str, str, datetime], tuple[float, int]]:
    """(indicator, service, window start) → (value, samples), for points grouped by service
    only."""
    iv = indicator_values.c
    rows: Any = conn.execute(
        select(iv.indicator, iv.dimensions, iv.window_start, iv.value, iv.count).where(
            iv.indicator.in_(sorted({i for i, _ in wanted})),
            iv.window_kind == kind,
            iv.window_start.in_(starts),
            iv.dim_keys == "service",
        )
    )
    return {
        (r.indicator, r.dimensions["service"], r.window_start): (r.value, r.count)
        for r in rows
        if (r.indicator, r.dimensions["service"]) in wanted and r.value is not None
    }
