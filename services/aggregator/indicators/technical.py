"""Technical indicators (SPEC §5.1): per CI, from monitoring alerts as intervals, the CMDB and
approved change windows, rolled up per service the CI names in `services` (and so per customer
of those services). A CI counts in each service it names, directly: which CIs take a service
down through `depends_on` is the service's availability (service.py), not a CI's own figure. A
CI in two services is in both services' points and once in every other (`repeated_per_service`),
a CI outside the CMDB or naming no service under `unknown`.

An outage of a CI is a connected piece of the union of its `outage = true` alerts'
[started_at, ended_at) intervals (overlapping or back-to-back alerts are one outage; one still
firing runs on to infinity, so it never "ends" in a window). Time is counted with PostgreSQL
multiranges: the seconds of a multirange are the sum over its pieces."""

from __future__ import annotations

from services.aggregator.indicators import Indicator, register


def range_of(start: str, end: str) -> str:
    """[start, end) as a tstzrange: a missing end (still open) runs to infinity, and an end
    before the start (a source's clock skew) makes it empty instead of an error."""
    return f"tstzrange({start}, greatest({start}, coalesce({end}, 'infinity'::timestamptz)))"


def seconds_of(multirange: str) -> str:
    """Seconds covered by a bounded multirange (the sum of its pieces' lengths)."""
    return (
        "(SELECT coalesce(sum(extract(epoch FROM upper(r) - lower(r))), 0)::float8 "
        f"FROM unnest({multirange}) AS r)"
    )


# The part of window `w` that has happened: a window in the future of `:now` has none, and the
# current one counts up to `:now` only (the aggregator's clock, not the database's).
ELAPSED = "tstzrange(w.window_start, least(w.window_end, CAST(:now AS timestamptz)))"
IN_PAST = "w.window_start < CAST(:now AS timestamptz)"
NO_TIME = "'{}'::tstzmultirange"

# Per CI, the union of its outage alerts. MATERIALIZED: it does not depend on the window, so
# PostgreSQL computes it once per statement, not once per window.
CI_OUTAGES = f"""
    ci_outages AS MATERIALIZED (
        SELECT ci_id, range_agg({range_of("started_at", "ended_at")}) AS down
        FROM alerts
        WHERE outage AND ci_id IS NOT NULL
        GROUP BY ci_id
    )"""

# Per CI, the union of the planned windows of the approved changes listing it.
CI_CHANGE_WINDOWS = """
    ci_change_windows AS MATERIALIZED (
        SELECT ci_id, range_agg(tstzrange(planned_start, planned_end)) AS planned
        FROM changes, unnest(ci_ids) AS ci_id
        WHERE approved AND planned_start < planned_end
        GROUP BY ci_id
    )"""

# Per CI existing at some point of the window: the time that counts (the elapsed window minus
# approved change windows) and the union of its outages; `counted - down` is its available time.
# Most CIs have neither in a window (`plain`): their time is the elapsed window, with no
# multirange arithmetic (5,000 CIs × every hour of a month made that the aggregator's cost).
CI_TIME = f"""
    WITH {CI_OUTAGES},
    {CI_CHANGE_WINDOWS},
    ci_time AS (
        SELECT ci.ci_id, ci.services,
               tstzmultirange({ELAPSED}) - coalesce(cw.planned, {NO_TIME}) AS counted,
               coalesce(o.down, {NO_TIME}) AS down,
               cw.planned IS NULL AND (o.down IS NULL OR NOT o.down && {ELAPSED}) AS plain,
               extract(epoch FROM upper({ELAPSED}) - lower({ELAPSED}))::float8 AS elapsed
        FROM config_items ci
        LEFT JOIN ci_change_windows cw ON cw.ci_id = ci.ci_id
        LEFT JOIN ci_outages o ON o.ci_id = ci.ci_id
        WHERE ci.created_at < w.window_end
          AND (ci.deleted_at IS NULL OR ci.deleted_at > w.window_start)
          AND {IN_PAST}
    )"""

# Every outage (a piece of a CI's union) with its bounds; an ongoing one ends at infinity.
OUTAGE_PIECES = f"""
    WITH {CI_OUTAGES},
    outages AS MATERIALIZED (
        SELECT ci_id, lower(piece) AS started, upper(piece) AS ended
        FROM ci_outages, unnest(down) AS piece
    )"""

# An outage `o` once per service its CI names (one row with none), named by `outage`.
OUTAGE_SERVICES = """
    SELECT o.ci_id AS ci, s.service, o.ci_id || ' ' || o.started::text AS outage, {v} AS v
    FROM outages o
    LEFT JOIN config_items ci ON ci.ci_id = o.ci_id
    LEFT JOIN LATERAL unnest(ci.services) AS s(service) ON true
"""

register(
    Indicator(
        id="ci_availability_ratio",
        family="technical",
        unit="ratio",
        direction="higher_is_better",
        definition="1 − outage seconds / counted seconds of a CI existing during the window. "
        "Outage: the union of its outage alerts' intervals. Counted: the window up to now "
        "(the current window is measured over its elapsed part, a future one has no point), "
        "minus the planned windows of approved changes listing the CI, which are excluded "
        "from both sides. One sample per service the CI names (or unknown); rolled up as "
        "Σ available seconds / Σ counted seconds, each CI once in totals over services.",
        scope="alert,change,ci",
        assigned_by="overlap with the window, up to now",
        dimensions=("ci", "service"),
        aggregate="weighted",
        placement="overlap",
        samples_sql=f"""
            {CI_TIME}
            SELECT t.ci_id AS ci, s.service,
                   CASE WHEN t.plain THEN t.elapsed
                        ELSE {seconds_of("t.counted - t.down")} END AS v,
                   CASE WHEN t.plain THEN t.elapsed ELSE {seconds_of("t.counted")} END AS w
            FROM ci_time t LEFT JOIN LATERAL unnest(t.services) AS s(service) ON true
        """,
        repeated_per_service="ci",
    ),
    Indicator(
        id="ci_outage_count",
        family="technical",
        unit="count",
        direction="lower_is_better",
        definition="Outages of a CI starting in the window; overlapping outage alerts on one CI "
        "are one outage (a piece of their union).",
        scope="alert,ci",
        assigned_by="start of the outage",
        dimensions=("ci", "service"),
        aggregate="count",
        interval_placed=True,
        samples_sql=f"""
            {OUTAGE_PIECES}
            {OUTAGE_SERVICES.format(v="1.0")}
            WHERE o.started >= w.window_start AND o.started < w.window_end
        """,
        repeated_per_service="outage",
    ),
    Indicator(
        id="ci_mtbf_seconds",
        family="technical",
        unit="seconds",
        direction="higher_is_better",
        definition="Mean time between failures: available seconds of the CI in the window (as "
        "in ci_availability_ratio) / outages starting in the window; no point when none "
        "start. Rolled up as Σ available seconds / Σ outages, each CI once in totals over "
        "services.",
        scope="alert,change,ci",
        assigned_by="overlap with the window, up to now",
        dimensions=("ci", "service"),
        aggregate="weighted",
        placement="overlap",
        samples_sql=f"""
            {CI_TIME}
            SELECT t.ci_id AS ci, s.service,
                   CASE WHEN t.plain THEN t.elapsed
                        ELSE {seconds_of("t.counted - t.down")} END AS v,
                   (SELECT count(*) FROM unnest(t.down) AS piece
                    WHERE lower(piece) >= w.window_start
                      AND lower(piece) < w.window_end)::float8 AS w
            FROM ci_time t LEFT JOIN LATERAL unnest(t.services) AS s(service) ON true
        """,
        repeated_per_service="ci",
    ),
    Indicator(
        id="ci_mttr_seconds",
        family="technical",
        unit="seconds",
        direction="lower_is_better",
        definition="Mean time to restore service: mean duration of a CI's outages (pieces of "
        "the union of its outage alerts, change windows not deducted) ending in the window; "
        "each outage once in totals over services.",
        scope="alert,ci",
        assigned_by="end of the outage",
        dimensions=("ci", "service"),
        aggregate="mean",
        interval_placed=True,
        samples_sql=f"""
            {OUTAGE_PIECES}
            {OUTAGE_SERVICES.format(v="extract(epoch FROM o.ended - o.started)::float8")}
            WHERE o.ended >= w.window_start AND o.ended < w.window_end
        """,
        repeated_per_service="outage",
    ),
    Indicator(
        id="monitor_alerts_count",
        family="technical",
        unit="count",
        direction="lower_is_better",
        definition="Monitoring alerts started in the window, by severity, the alert's service "
        "and CI.",
        scope="alert",
        assigned_by="started_at",
        dimensions=("severity", "service", "ci"),
        aggregate="count",
        samples_sql="""
            SELECT severity, service, ci_id AS ci, 1.0 AS v FROM alerts
            WHERE started_at >= w.window_start AND started_at < w.window_end
        """,
    ),
    Indicator(
        id="monitoring_coverage_ratio",
        family="technical",
        unit="ratio",
        direction="higher_is_better",
        definition="CIs in the CMDB at the window's end with at least one check registered "
        "then / CIs in the CMDB then. One sample per service the CI names (or unknown), each "
        "CI once in totals over services.",
        scope="check,ci",
        assigned_by="state at window end",
        dimensions=("service",),
        aggregate="ratio",
        placement="state",
        # a check counts from just after its registration up to its removal, included
        samples_sql="""
            WITH ci_checks AS MATERIALIZED (
                SELECT ci_id, range_agg(tstzrange(
                    registered_at,
                    CASE WHEN removed_at IS NOT NULL THEN greatest(registered_at, removed_at) END,
                    '(]')) AS live
                FROM monitor_checks WHERE ci_id IS NOT NULL GROUP BY ci_id
            )
            SELECT s.service, ci.ci_id AS ci,
                   coalesce(cc.live @> w.window_end, false)::int::float8 AS v
            FROM config_items ci
            LEFT JOIN ci_checks cc ON cc.ci_id = ci.ci_id
            LEFT JOIN LATERAL unnest(ci.services) AS s(service) ON true
            WHERE ci.created_at < w.window_end
              AND (ci.deleted_at IS NULL OR ci.deleted_at >= w.window_end)
        """,
        repeated_per_service="ci",
    ),
    Indicator(
        id="monitoring_checks_count",
        family="technical",
        unit="count",
        direction="neutral",
        definition="Monitoring checks registered at the window's end, by CI and the services "
        "it names (each check once in totals over services).",
        scope="check,ci",
        assigned_by="state at window end",
        dimensions=("ci", "service"),
        aggregate="count",
        placement="state",
        samples_sql="""
            SELECT mc.ci_id AS ci, s.service, mc.check_id, 1.0 AS v FROM monitor_checks mc
            LEFT JOIN config_items ci ON ci.ci_id = mc.ci_id
            LEFT JOIN LATERAL unnest(ci.services) AS s(service) ON true
            WHERE mc.registered_at < w.window_end
              AND (mc.removed_at IS NULL OR mc.removed_at >= w.window_end)
        """,
        repeated_per_service="check_id",
    ),
)
