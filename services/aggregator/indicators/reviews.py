"""The review schedule's indicator (SPEC §7.3): reviews held on time / reviews due. A process
indicator, in a module of its own: its samples come from the catalog's schedule (bind parameters,
compute.catalog_params) and the `reviews` records, not from a projection's rows.

Its periods and deadlines are computed in SQL, in PostgreSQL's time zone database, the same
arithmetic as `GET /v1/reviews/schedule` does in Python's (tests/api/test_review_completion_api.py
compares them). The two agree unless those databases differ (a server and a Python with other
tzdata releases, for a zone whose rules changed) or a deadline's local midnight does not exist or
comes twice (zones that change their clocks at midnight, such as America/Havana: PostgreSQL and
Python resolve it an hour apart)."""

from __future__ import annotations

from services.aggregator.indicators import CUSTOMER, Indicator, register

# One row per scheduled review (compute.catalog_params: the parallel `rv_` arrays), with its
# scope as `reviews` rows name it and the length of its period.
_SCHEDULE = """
    SELECT e.*,
           CASE WHEN e.service IS NOT NULL THEN 'service'
                WHEN e.customer IS NOT NULL THEN 'customer'
                ELSE 'assignment_group' END AS scope_kind,
           coalesce(e.service, e.customer, e.assignment_group) AS scope_id,
           CASE e.every WHEN 'week' THEN interval '1 week'
                        WHEN 'quarter' THEN interval '3 months'
                        ELSE interval '1 month' END AS step
    FROM unnest(CAST(:rv_kinds AS text[]), CAST(:rv_services AS text[]),
                CAST(:rv_customers AS text[]), CAST(:rv_groups AS text[]),
                CAST(:rv_every AS text[]), CAST(:rv_grace_days AS int[]),
                CAST(:rv_since AS date[]))
        AS e(kind, service, customer, assignment_group, every, grace_days, since)
"""

# Each scheduled review's periods near the window, as local timestamps in the reporting time zone
# (`first_day`: local midnight of the period's first day; ISO weeks start on Monday, as in
# shared/periods.py), with the period's label as shared.periods.Period.label writes it and its
# deadline as services/api/reviews/schedule.due_until computes it: local midnight `grace_days`
# calendar days after the period's end; only the periods ending after the schedule's `since`
# (periods before the schedule began were never due). The series starts a period and a day
# before the earliest one whose deadline can fall in the window, and ends past the latest.
_PERIODS = f"""
    SELECT e.*, p.first_day,
           CASE e.every WHEN 'week' THEN to_char(p.first_day, 'IYYY-"W"IW')
                        WHEN 'quarter' THEN to_char(p.first_day, 'YYYY-"Q"Q')
                        ELSE to_char(p.first_day, 'YYYY-MM') END AS label,
           (p.first_day + e.step + make_interval(days => e.grace_days))
               AT TIME ZONE CAST(:tz AS text) AS due_until
    FROM ({_SCHEDULE}) AS e
    CROSS JOIN LATERAL generate_series(
        date_trunc(e.every, (w.window_start AT TIME ZONE CAST(:tz AS text)) - e.step
                            - make_interval(days => e.grace_days + 1)),
        (w.window_end AT TIME ZONE CAST(:tz AS text)) - make_interval(days => e.grace_days),
        e.step
    ) AS p(first_day)
    WHERE e.since IS NULL OR p.first_day + e.step > e.since
"""

register(
    Indicator(
        id="review_completion_ratio",
        family="process",
        unit="ratio",
        direction="higher_is_better",
        definition="Reviews held on time / reviews due (SPEC §7.3): one sample per period of "
        "each review the catalog schedules, once its deadline (the period's end plus its "
        "grace_days) has passed, in the window holding the deadline; 1 when a review of that "
        "kind, scope and period was recorded as held before the deadline.",
        scope="review",
        assigned_by="deadline of the period's review",
        # A review of a customer has no service; one of a service has its service's customer.
        dimensions=("review_kind", "service", CUSTOMER, "assignment_group"),
        aggregate="ratio",
        # A sample exists once the clock passes its deadline, and a changed schedule moves
        # deadlines: both are marked as spans (the clock refresh's, catalog activation's), which
        # must recompute it. A recorded review marks its deadline as an instant.
        interval_placed=True,
        samples_sql=f"""
            SELECT d.kind AS review_kind, d.service,
                   coalesce(d.customer, cm.customer) AS {CUSTOMER}, d.assignment_group,
                   EXISTS (
                       SELECT 1 FROM reviews h
                       WHERE h.kind = d.kind AND h.scope_kind = d.scope_kind
                         AND h.scope_id = d.scope_id AND h.period = d.label
                         AND h.held_at < d.due_until
                   )::int::float8 AS v
            FROM ({_PERIODS}) AS d
            LEFT JOIN unnest(CAST(:svc_ids AS text[]), CAST(:svc_customers AS text[]))
                AS cm(service, customer) ON cm.service = d.service
            WHERE d.due_until >= w.window_start AND d.due_until < w.window_end
              AND d.due_until <= :now
        """,
    ),
)
