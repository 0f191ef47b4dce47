"""Service indicators (SPEC §5.3), end to end from technical and process facts: a service is
down while one of its critical CIs is down or one of its priority-1 incidents is open."""

from __future__ import annotations

from services.aggregator.indicators import Indicator, register
from services.aggregator.indicators.technical import (
    ELAPSED,
    IN_PAST,
    NO_TIME,
    range_of,
    seconds_of,
)

# The CIs of each service: those naming it in `services`, and transitively what they depend
# on. UNION (not UNION ALL) drops pairs already found, so a dependency cycle ends the recursion.
SERVICE_CIS = """
    service_cis(service, ci_id) AS (
        SELECT s.service, ci.ci_id FROM config_items ci, unnest(ci.services) AS s(service)
        UNION
        SELECT sc.service, d.ci_id
        FROM service_cis sc
        JOIN config_items ci ON ci.ci_id = sc.ci_id, unnest(ci.depends_on) AS d(ci_id)
    )"""

# Services are those named by CIs or tickets (not the catalog, which may list fewer or more).
KNOWN_SERVICES = """
    known_services AS MATERIALIZED (
        SELECT service FROM service_cis
        UNION
        SELECT service FROM tickets WHERE service IS NOT NULL
    )"""

# Only intervals overlapping the statement's windows ([:lo, :hi), compute.bind) count: the
# seconds are those of `counted - down`, and `counted` lies within the window. Without the
# bound, every priority-1 incident ever (175,000 in a month of a million tickets) was unioned
# for every window's availability.
OVERLAPS = """{start} < CAST(:hi AS timestamptz)
              AND coalesce({end}, 'infinity'::timestamptz) > CAST(:lo AS timestamptz)"""

# Per service, the union of its critical CIs' outage alerts and its open priority-1 incidents
# (cancelled ones never took it down). Each interval is counted once however many overlap.
SERVICE_OUTAGES = f"""
    service_outages AS MATERIALIZED (
        SELECT service, range_agg(down) AS down FROM (
            SELECT sc.service, {range_of("a.started_at", "a.ended_at")} AS down
            FROM service_cis sc
            JOIN config_items ci ON ci.ci_id = sc.ci_id AND ci.critical
            JOIN alerts a ON a.ci_id = sc.ci_id AND a.outage
              AND {OVERLAPS.format(start="a.started_at", end="a.ended_at")}
            UNION ALL
            SELECT service, {range_of("opened_at", "resolved_at")}
            FROM tickets
            WHERE kind = 'incident' AND priority = 1 AND state <> 'cancelled'
              AND service IS NOT NULL
              AND {OVERLAPS.format(start="opened_at", end="resolved_at")}
        ) AS intervals
        GROUP BY service
    )"""

# Per service, the planned windows of approved changes naming it or listing one of its CIs (a
# join on the CI, not a search of every service's CIs for every change: at 5,000 CIs that was
# billions of comparisons). A change counted twice for a service is one window in the union.
SERVICE_CHANGE_WINDOWS = """
    service_change_windows AS MATERIALIZED (
        SELECT service, range_agg(planned) AS planned FROM (
            SELECT c.service, tstzrange(c.planned_start, c.planned_end) AS planned
            FROM changes c
            WHERE c.approved AND c.planned_start < c.planned_end AND c.service IS NOT NULL
              AND {overlaps}
            UNION ALL
            SELECT sc.service, tstzrange(c.planned_start, c.planned_end)
            FROM changes c, unnest(c.ci_ids) AS x(ci_id)
            JOIN service_cis sc ON sc.ci_id = x.ci_id
            WHERE c.approved AND c.planned_start < c.planned_end
              AND {overlaps}
        ) AS windows
        GROUP BY service
    )""".format(overlaps=OVERLAPS.format(start="c.planned_start", end="c.planned_end"))

register(
    Indicator(
        id="service_availability_ratio",
        family="service",
        unit="ratio",
        direction="higher_is_better",
        definition="1 − service outage seconds / counted seconds. Service outage: the union of "
        "the outages of its critical CIs (a CI belongs to a service through `services` or "
        "transitively through `depends_on` of one that does) and the open intervals of its "
        "priority-1 incidents. Counted: the window up to now (the current window over its "
        "elapsed part, a future one has no point) minus the planned windows of approved "
        "changes naming the service or listing one of its CIs. Services: those named by CIs "
        "or tickets. Rolled up as Σ available seconds / Σ counted seconds.",
        scope="alert,change,ci,ticket",
        assigned_by="overlap with the window, up to now",
        dimensions=("service",),
        aggregate="weighted",
        placement="overlap",
        samples_sql=f"""
            WITH RECURSIVE {SERVICE_CIS},
            {KNOWN_SERVICES},
            {SERVICE_OUTAGES},
            {SERVICE_CHANGE_WINDOWS},
            service_time AS (
                SELECT k.service,
                       tstzmultirange({ELAPSED}) - coalesce(cw.planned, {NO_TIME}) AS counted,
                       coalesce(o.down, {NO_TIME}) AS down
                FROM known_services k
                LEFT JOIN service_change_windows cw ON cw.service = k.service
                LEFT JOIN service_outages o ON o.service = k.service
                WHERE {IN_PAST}
            )
            SELECT service,
                   {seconds_of("counted - down")} AS v,
                   {seconds_of("counted")} AS w
            FROM service_time
        """,
    ),
)

# Built on `objective_status`, which the aggregator writes for a window after that window's other
# indicators and before these two (jobs.py), so they read the statuses of the same pass. A
# window's kind is told by its bounds: `window_start` and `window_end` together. The services'
# objectives only: a customer's or the organisation's (service '') is of no one service
# (aggregator/objectives.py).
OBJECTIVE_ROWS = """
    SELECT os.service, {v} AS v, {w} AS w
    FROM objective_status os
    WHERE os.window_start = w.window_start AND os.window_end = w.window_end
      AND os.status <> 'no_data' AND os.service <> ''
"""

register(
    Indicator(
        id="service_objectives_met_ratio",
        family="service",
        unit="ratio",
        direction="higher_is_better",
        definition="Share of the service's objectives (SPEC §6.3) on this window kind that are "
        "met, among those with data (unweighted). Rolled up: all services' objectives.",
        scope="objective",
        assigned_by="the objective's window",
        dimensions=("service",),
        aggregate="weighted",
        placement="derived",
        samples_sql=OBJECTIVE_ROWS.format(
            v="CASE WHEN os.status = 'met' THEN 1.0 ELSE 0.0 END", w="1.0"
        ),
    ),
    Indicator(
        id="service_health_score",
        family="service",
        unit="score",
        direction="higher_is_better",
        definition="0–100: the service's objectives on this window kind with data, weighted by "
        "`weight`, each scoring 100 when met, 50 at warning, 0 when breached "
        "(Σ weight × score / Σ weight). Rolled up: all services' objectives.",
        scope="objective",
        assigned_by="the objective's window",
        dimensions=("service",),
        aggregate="weighted",
        placement="derived",
        samples_sql=OBJECTIVE_ROWS.format(
            v="os.weight * CASE os.status WHEN 'met' THEN 100.0 WHEN 'warning' THEN 50.0 "
            "ELSE 0.0 END",
            w="os.weight",
        ),
    ),
)
