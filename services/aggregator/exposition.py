"""What `/metrics` says about indicators, objectives and drift (SPEC §8): custom collectors that
read the stored points and objective status of the current and the previous window of each kind
(indicators within the series budget), and the drift of the previous one, the last complete
window (the only one drift scores). The aggregator renders them into the snapshot the api
serves (snapshot.py); a scrape never runs them. A failed read raises: the caller keeps the last
snapshot rather than write zeros for counts it could not read."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Row, and_, func, literal_column, or_, select
from sqlalchemy.engine import Engine

from services.aggregator.indicators import Indicator, all_indicators
from services.aggregator.indicators.custom import indicators_for
from services.catalog import CatalogCache
from shared.db import improvements, indicator_drift, indicator_points, objective_status
from shared.windows import WINDOW_KINDS, previous_start, window_start

QUANTILES = (("0.5", "p50"), ("0.9", "p90"))


def current_windows(now: datetime, tz: ZoneInfo) -> dict[tuple[str, datetime], str]:
    """(kind, start) → period label, for the current and previous window of every kind."""
    out: dict[tuple[str, datetime], str] = {}
    for kind in WINDOW_KINDS:
        cur = window_start(kind, now, tz)
        out[(kind, cur)] = "current"
        out[(kind, previous_start(kind, cur, tz))] = "previous"
    return out


# Which stored groupings become series: the total, each single dimension, and an enumerated
# dimension beside `service` (per-service alerting). Every grouping stays available over HTTP;
# this keeps Prometheus' cardinality bounded (SPEC §8).
# The series budget (SPEC §8): at most this many indicator series per scrape. What exceeds it
# is left out in this order of importance, the least important first: per CI, then an
# enumerated dimension beside a service, per assignment group, the other single dimensions,
# per customer, per service, the total; hours before weeks before quarters before months before
# days; the previous window before the current one. `itsm_exposition_series_dropped` says how many.
MAX_SERIES = 100_000
_RANK = """
    CASE dim_keys WHEN '' THEN 0 WHEN 'service' THEN 1 WHEN 'customer' THEN 2
        WHEN 'assignment_group' THEN 4 WHEN 'ci' THEN 6
        ELSE CASE WHEN strpos(dim_keys, ',') > 0 THEN 5 ELSE 3 END END
"""
_KIND_RANK = "array_position(ARRAY['day', 'month', 'quarter', 'week', 'hour'], window_kind)"


class IndicatorCollector(Collector):
    def __init__(
        self,
        engine: Engine,
        tz: ZoneInfo,
        catalogs: CatalogCache | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_series: int = MAX_SERIES,
    ) -> None:
        self.engine = engine
        self.tz = tz
        self.catalogs = catalogs or CatalogCache()
        self.clock = clock
        self.max_series = max_series
        self.dropped = 0  # series the last collection left out

    def describe(self) -> Iterator[Metric]:
        # The built-in families; custom measurement ones depend on the data (see collect).
        for ind in all_indicators():
            yield self._family(ind)
        yield GaugeMetricFamily("itsm_exposition_series_dropped", "series left out")

    def _family(self, ind: Indicator) -> GaugeMetricFamily:
        labels = ["window", "period", *ind.all_dimensions]
        if ind.is_duration:
            labels.append("quantile")
        return GaugeMetricFamily(ind.metric_name, ind.definition, labels=labels)

    def collect(self) -> Iterator[Metric]:
        windows = current_windows(self.clock(), self.tz)
        # A DBAPIError propagates: nothing is rendered from a read that failed.
        with self.engine.connect() as conn:
            known = indicators_for(conn, self.catalogs.get(conn)[0])
            rows, dropped = self._rows(conn, windows, {ind.id for ind in known})
        self.dropped = dropped
        yield from self._families_of(windows, known, rows, dropped)

    def _rows(
        self, conn: Connection, windows: dict[tuple[str, datetime], str], ids: set[str]
    ) -> tuple[list[Row[Any]], int]:
        """The stored points of the current and previous windows that fit in the budget, most
        important first, and how many series were left out."""
        currents = [(k, s) for (k, s), p in windows.items() if p == "current"]
        iv = indicator_points.c
        candidates = (
            select(
                iv.indicator,
                iv.window_kind,
                iv.window_start,
                iv.dimensions,
                iv.value,
                iv.p50,
                iv.p90,
                # a duration is three series: the mean and two quantiles
                literal_column("CASE WHEN p50 IS NULL THEN 1 ELSE 3 END").label("cost"),
                literal_column(_RANK).label("rank"),
                literal_column(_KIND_RANK).label("kind_rank"),
                or_(*(and_(iv.window_kind == k, iv.window_start == s) for k, s in currents)).label(
                    "is_current"
                ),
            )
            .where(
                or_(*(and_(iv.window_kind == k, iv.window_start == s) for k, s in windows)),
                iv.value.is_not(None),
                iv.indicator.in_(sorted(ids)),
                or_(
                    ~iv.dim_keys.contains(","),
                    and_(iv.dim_keys.like("%service%"), ~iv.dim_keys.like("%,%,%")),
                ),
            )
            .subquery()
        )
        c = candidates.c
        # The budget is cut inside PostgreSQL: a running sum of series in the order of
        # importance; a scrape never fetches the rows it leaves out.
        order = [c.rank, c.kind_rank, c.is_current.desc(), c.indicator]
        order += [c.window_start, c.dimensions]
        ranked = select(
            candidates,
            func.sum(c.cost).over(order_by=order, rows=(None, 0)).label("running"),
            func.sum(c.cost).over().label("total"),
        ).subquery()
        rows = list(conn.execute(select(ranked).where(ranked.c.running <= self.max_series)))
        if rows:
            return rows, int(rows[0].total) - int(rows[-1].running)
        left_out = conn.execute(select(func.coalesce(func.sum(c.cost), 0))).scalar_one()
        return [], int(left_out)

    def _families_of(
        self,
        windows: dict[tuple[str, datetime], str],
        known: list[Indicator],
        rows: list[Row[Any]],
        dropped: int,
    ) -> Iterator[Metric]:
        indicators = {ind.id: ind for ind in known}
        families = {i: self._family(ind) for i, ind in indicators.items()}
        totals: set[tuple[str, str, str]] = set()
        for r in rows:  # only known indicators' rows were read
            ind = indicators[r.indicator]
            period = windows[(r.window_kind, r.window_start)]
            if not r.dimensions:
                totals.add((r.indicator, r.window_kind, period))
            base = [
                r.window_kind,
                period,
                *(str(r.dimensions.get(d, "")) for d in ind.all_dimensions),
            ]
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
                    families[ind.id].add_metric(
                        [kind, period, *("" for _ in ind.all_dimensions)], 0.0
                    )
        yield from families.values()
        budget = GaugeMetricFamily(
            "itsm_exposition_series_dropped",
            f"Indicator series left out of this scrape by the series budget ({self.max_series})",
        )
        budget.add_metric([], float(dropped))
        yield budget


STATUS_VALUES = {"met": 1.0, "warning": 0.5, "breached": 0.0}  # no_data: no sample

# The labels of the objective series, each read from its `objective_status` column (`period`
# comes after them, from the window). A label is one line here.
OBJECTIVE_LABELS = {
    "service": objective_status.c.service,
    "indicator": objective_status.c.indicator,
    "window": objective_status.c.window_kind,
    "customer": objective_status.c.customer,
}
# The drift series: the total and the per-service series of each indicator (SPEC §8 cardinality).
DRIFT_LABELS = ["indicator", "window", "service"]


class ObjectiveCollector(Collector):
    """`itsm_objective_status`, `itsm_objective_target` and `itsm_objective_samples` of the
    current and the previous (last complete) window of each objective's kind (`period`): a
    service's objective has `service`, a customer's `customer`, the organisation's neither; and
    `itsm_indicator_drift_score` / `itsm_indicator_drifting` of the last complete window (the
    one drift scores; the total and the per-service series) — SPEC §6.3, §6.4, §8."""

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
        yield from self._families()

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        labels = [*OBJECTIVE_LABELS, "period"]
        return (
            GaugeMetricFamily(
                "itsm_objective_status",
                "Objective status: 1 met, 0.5 warning, 0 breached (no sample: no data)",
                labels=labels,
            ),
            GaugeMetricFamily("itsm_objective_target", "Objective target", labels=labels),
            GaugeMetricFamily(
                "itsm_objective_samples",
                "Samples behind the objective's value (the indicator point's count)",
                labels=labels,
            ),
            GaugeMetricFamily(
                "itsm_indicator_drift_score",
                "(value − mean) / stddev of the last complete window against the complete "
                "windows before it (SPEC §6.4)",
                labels=DRIFT_LABELS,
            ),
            GaugeMetricFamily(
                "itsm_indicator_drifting",
                "1 when the last complete window drifts in the direction worse for the "
                "indicator, by at least the catalog's drift_threshold (SPEC §6.4)",
                labels=DRIFT_LABELS,
            ),
        )

    def collect(self) -> Iterator[Metric]:
        status, target, samples, drift, drifting = self._families()
        windows = current_windows(self.clock(), self.tz)
        scored = [w for w, period in windows.items() if period == "previous"]
        os_, dr = objective_status.c, indicator_drift.c
        with self.engine.connect() as conn:  # a DBAPIError propagates, as for the indicators
            objectives = conn.execute(
                select(
                    *(column.label(name) for name, column in OBJECTIVE_LABELS.items()),
                    os_.window_kind,
                    os_.window_start,
                    os_.target,
                    os_.status,
                    os_.samples,
                )
                .where(_in_windows(os_.window_kind, os_.window_start, windows))
                .order_by(*OBJECTIVE_LABELS.values(), os_.window_start)
            ).all()
            drifts = conn.execute(
                select(dr.indicator, dr.window_kind, dr.dimensions, dr.score, dr.drifting)
                .where(_in_windows(dr.window_kind, dr.window_start, scored))
                .order_by(dr.indicator, dr.window_kind)
            ).all()
        for r in objectives:
            period = windows[(r.window_kind, r.window_start)]
            labels = [*(str(r._mapping[name]) for name in OBJECTIVE_LABELS), period]
            target.add_metric(labels, r.target)
            if r.status in STATUS_VALUES:
                status.add_metric(labels, STATUS_VALUES[r.status])
            if r.samples is not None:
                samples.add_metric(labels, float(r.samples))
        for d in drifts:  # the total and per-service series only (SPEC §8 cardinality)
            if set(d.dimensions) <= {"service"}:
                labels = [d.indicator, d.window_kind, d.dimensions.get("service", "")]
                drift.add_metric(labels, d.score)
                drifting.add_metric(labels, 1.0 if d.drifting else 0.0)
        yield from (status, target, samples, drift, drifting)


def _in_windows(kind: Any, start: Any, windows: Iterable[tuple[str, datetime]]) -> Any:
    return or_(*(and_(kind == k, start == s) for k, s in windows))


class ImprovementCollector(Collector):
    """`itsm_improvements{state,service}` (SPEC §8): counts only, never titles or owners.
    Customer- and organisation-wide improvements count under service "" (a customer is not a
    service, and a label per customer would multiply the series)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "itsm_improvements",
            'Improvements per state and service (customer- and organisation-wide: service "")',
            labels=["state", "service"],
        )

    def collect(self) -> Iterator[Metric]:
        c = improvements.c
        service = func.coalesce(c.service, "")
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(c.state, service, func.count()).group_by(c.state, service).order_by(c.state)
            ).all()
        family = self._family()
        for state, svc, n in rows:
            family.add_metric([state, svc], float(n))
        yield family
