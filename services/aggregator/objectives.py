"""Objective status (SPEC §6.3) and the service scores built on it (SPEC §5.3).

The top half is pure: status, score, health and met ratio, and which objectives apply to which
service, customer or the organisation. `evaluate_windows` is the shell: it reads the indicator
values of freshly recomputed windows (a service's objective its per-service point, a customer's
its per-customer point, the organisation's the total) and replaces those windows' rows in
`objective_status`, with the number of samples behind each value (the point's `count`); there
`service` and `customer` are '' where not named (both for the organisation).
`service_health_score` and `service_objectives_met_ratio` count the services' objectives only: a
customer's objective is about the customer as a whole, not about one of its services, and an
organisation's about none (indicators/service.py)."""

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
from services.aggregator.policy import Grouping, is_stored
from services.catalog.model import ANY_CUSTOMER, ANY_SERVICE, Catalog, Objective
from shared.db import indicator_points, objective_status
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
class ScopedObjective:
    """One objective as it applies to one service, one customer or the organisation: `service`
    and `customer` are '' where the objective does not name one (both for the organisation)."""

    service: str
    customer: str
    indicator: str
    window: str
    comparator: Comparator
    target: float
    warning: float | None
    weight: float

    @property
    def grouping(self) -> Grouping:
        """The indicator points it reads: per service, per customer, or the total."""
        return ("service",) if self.service else ("customer",) if self.customer else ()

    @property
    def of(self) -> str:
        """The service or customer it is of ('' for the organisation)."""
        return self.service or self.customer


def scoped_objectives(
    objectives: Sequence[Objective], services: Sequence[str], customers: Sequence[str] = ()
) -> list[ScopedObjective]:
    """Expand `*` to every service (customer); an objective naming the service (customer)
    overrides the `*` one for the same (indicator, window). Among equals the first in the file
    wins."""
    chosen: dict[tuple[str, str, str, str], ScopedObjective] = {}
    for exact in (True, False):
        for o in objectives:
            if (o.service == ANY_SERVICE or o.customer == ANY_CUSTOMER) == exact:
                continue
            if o.scope == "service":
                scopes = [(o.service or "", "")] if exact else [(s, "") for s in services]
            elif o.scope == "customer":
                scopes = [("", o.customer or "")] if exact else [("", c) for c in customers]
            else:
                scopes = [("", "")]
            for svc, cust in scopes:
                key = (svc, cust, o.indicator, o.window)
                if key not in chosen:
                    chosen[key] = ScopedObjective(
                        svc,
                        cust,
                        o.indicator,
                        o.window,
                        o.comparator,
                        o.target,
                        o.warning,
                        o.weight,
                    )
    return sorted(
        chosen.values(), key=lambda so: (so.service, so.customer, so.indicator, so.window)
    )


# The last catalog's expansion: the point lane evaluates the running hour's and day's objectives
# in every pass, and expanding 200 services' objectives took 50 ms of Python each time. A catalog
# is immutable; a new version is a new object.
_expanded: tuple[Catalog, tuple[ScopedObjective, ...]] | None = None


def catalog_objectives(catalog: Catalog) -> tuple[ScopedObjective, ...]:
    """The catalog's objectives, one per scope (scoped_objectives), expanded once per catalog."""
    global _expanded
    last = _expanded
    if last is not None and last[0] is catalog:
        return last[1]
    scoped = tuple(
        scoped_objectives(
            catalog.objectives,
            [s.id for s in catalog.services],
            [c.id for c in catalog.customers],
        )
    )
    _expanded = (catalog, scoped)
    return scoped


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
    """Replace `objective_status` for these windows of one kind from their per-service,
    per-customer and total values (stored, which must be recomputed first, or computed now
    where the grouping is not stored: an hour per service or customer). A window is recomputed
    whenever its data changes, late events after its end included, and once more when it
    closes (the clock refresh), so the previous window's rows stay up to date. Returns rows
    written."""
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
    wanted = {(o.indicator, o.grouping, o.of) for o in objectives}
    values = _values(conn, kind, starts, wanted)
    for indicator, grouping in sorted({(i, g) for i, g, _ in wanted}):
        ind = get(indicator)
        # the catalog refuses an objective its indicator has no point for (load.py); a custom
        # measurement (not in the registry) is stored per service and customer, from a day up
        if ind is None or is_stored(ind, kind, grouping):
            continue
        for p in query_points(conn, ind, windows, grouping, {}, now=now, params=params):
            of = p.dimensions[grouping[0]] if grouping else ""
            if (indicator, grouping, of) in wanted and p.value is not None:
                values[(indicator, grouping, of, p.window_start)] = (p.value, p.count)
    rows = []
    for start in starts:
        end = window_end(kind, start, tz)
        for o in objectives:
            value, samples = values.get((o.indicator, o.grouping, o.of, start), (None, None))
            if value is None and _counts(o.indicator):
                # a count with nothing to count stores no point: it is 0, of 0 samples
                value, samples = 0.0, 0
            rows.append(
                {
                    "service": o.service,
                    "customer": o.customer,
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
    return ind is not None and ind.aggregate == "count"


Wanted = set[tuple[str, Grouping, str]]  # (indicator, grouping, its service or customer or '')


def _values(
    conn: Connection, kind: str, starts: list[datetime], wanted: Wanted
) -> dict[tuple[str, Grouping, str, datetime], tuple[float, int]]:
    """(indicator, grouping, service or customer, window start) → (value, samples), for the
    stored points per service, per customer and in total."""
    iv = indicator_points.c
    rows: Any = conn.execute(
        select(iv.indicator, iv.dimensions, iv.dim_keys, iv.window_start, iv.value, iv.count).where(
            iv.indicator.in_(sorted({i for i, _, _ in wanted})),
            iv.window_kind == kind,
            iv.window_start.in_(starts),
            iv.dim_keys.in_(["service", "customer", ""]),
        )
    )
    found = {}
    for r in rows:
        grouping: Grouping = (r.dim_keys,) if r.dim_keys else ()
        key = (r.indicator, grouping, r.dimensions.get(r.dim_keys, ""))
        if key in wanted and r.value is not None:
            found[(*key, r.window_start)] = (r.value, r.count)
    return found
