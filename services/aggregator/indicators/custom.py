"""Custom measurement indicators (SPEC §3.5, §5.2): one per `indicator` id of
`itsm.measurement.recorded` events, declared in the catalog's `measurements` or not.

A measurement covers [period_start, period_end) and counts toward a window by the share of that
period inside it: a `sum` indicator (the default; amounts such as training hours) adds
value × share; a `mean` one (levels such as staffing) is the mean of the values weighted by the
seconds each overlaps the window. `count` is the number of measurements overlapping the window."""

from __future__ import annotations

from sqlalchemy import Connection, text

from services.aggregator.indicators import Indicator, all_indicators, get
from services.catalog.model import Catalog, Measurement

# Seconds of the measurement's period inside the window, and its whole length.
_OVERLAP = """
    FROM measurements m,
         LATERAL (SELECT extract(epoch FROM least(m.period_end, w.window_end)
                                        - greatest(m.period_start, w.window_start))::float8 AS ov,
                         extract(epoch FROM m.period_end - m.period_start)::float8 AS len) AS x
    WHERE m.indicator = :custom_id
      AND m.period_start < w.window_end AND m.period_end > w.window_start
      AND m.period_end > m.period_start"""

SUM_SQL = f"SELECT m.service, m.value * x.ov / x.len AS v {_OVERLAP}"
MEAN_SQL = f"SELECT m.service, m.value * x.ov AS v, x.ov AS w {_OVERLAP}"

_UNDECLARED = text(
    """
    SELECT indicator, (array_agg(unit ORDER BY recorded_at DESC))[1] AS unit
    FROM measurements GROUP BY indicator ORDER BY indicator
    """
)


def custom_indicator(m: Measurement) -> Indicator:
    mean = m.aggregation == "mean"
    return Indicator(
        id=m.id,
        family="custom",
        unit=m.unit,
        direction=m.direction,
        definition=(
            f"custom measurement ({m.unit}): "
            + (
                "mean of the values weighted by the seconds each period overlaps the window"
                if mean
                else "sum of value × the share of each measurement's period inside the window"
            )
        ),
        scope="measurement",
        assigned_by="period_start..period_end",
        dimensions=("service",),
        aggregate="weighted" if mean else "sum",
        placement="overlap",
        samples_sql=MEAN_SQL if mean else SUM_SQL,
        params=(("custom_id", m.id),),
    )


def custom_indicators(conn: Connection, catalog: Catalog) -> list[Indicator]:
    """The catalog's declared measurements, then every other id measurements were recorded
    under (a `sum`, in the unit of its latest measurement, direction neutral)."""
    declared = {m.id: m for m in catalog.measurements}
    builtin = {ind.id for ind in all_indicators()}
    for row in conn.execute(_UNDECLARED):
        if row.indicator not in declared and row.indicator not in builtin:
            declared[row.indicator] = Measurement(
                id=row.indicator, unit=row.unit or "", direction="neutral"
            )
    return [custom_indicator(m) for m in declared.values()]


def indicators_for(conn: Connection, catalog: Catalog) -> list[Indicator]:
    """Every indicator: the built-in registry and the custom measurements."""
    return [*all_indicators(), *custom_indicators(conn, catalog)]


def find(conn: Connection, catalog: Catalog, indicator_id: str) -> Indicator | None:
    """A built-in indicator (no query: they come first and custom ids never shadow them), else
    a custom one."""
    builtin = get(indicator_id)
    if builtin is not None:
        return builtin
    return next((i for i in custom_indicators(conn, catalog) if i.id == indicator_id), None)
