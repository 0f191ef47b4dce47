"""Process indicators (SPEC §5.2) over the projections. Unless stated, a ticket indicator counts
incidents, placed in the window of the timestamp named by `assigned_by`."""

from __future__ import annotations

from services.aggregator.indicators import Aggregate, Indicator, Unit, bounded, register
from shared.indicator_ids import Direction

# `channel` (how a ticket came in, SPEC §3.1) breaks down volumes: tickets opened and resolved,
# major incidents, the backlog (issue 11: "volumes by kind, priority and channel"). Durations,
# ratios and SLA ratios stay without it: they measure the handling, by service, priority and
# group, and each enumerated dimension multiplies their stored points (policy.py).
TICKET_DIMENSIONS = ("service", "priority", "assignment_group", "kind", "channel")
INCIDENT_DIMENSIONS = ("service", "priority", "assignment_group")
INCIDENT_VOLUME_DIMENSIONS = (*INCIDENT_DIMENSIONS, "channel")
# The ticket's current assignee: private (indicators.PRIVATE_DIMENSIONS), for the team review's
# per-engineer summary only (aggregator/per_engineer.py); never stored, never a label.
PER_ENGINEER = ("assignee",)
CHANGE_DIMENSIONS = ("service", "change_type")


def per_row(
    id: str,
    unit: Unit,
    direction: Direction,
    definition: str,
    *,
    table: str,
    scope: str,
    assigned_by: str,
    dimensions: tuple[str, ...],
    v: str,
    aggregate: Aggregate,
    where: tuple[str, ...] = (),
    private_dimensions: tuple[str, ...] = (),
) -> Indicator:
    """One sample `v` per row of `table` whose `assigned_by` timestamp lies in the window."""
    conditions = [
        f"{assigned_by} >= w.window_start",
        f"{assigned_by} < w.window_end",
        *bounded(assigned_by),
        *where,
    ]
    source = f"FROM {table} WHERE {' AND '.join(conditions)}"
    return Indicator(
        id=id,
        family="process",
        unit=unit,
        direction=direction,
        definition=definition,
        scope=scope,
        assigned_by=assigned_by,
        dimensions=dimensions,
        aggregate=aggregate,
        samples_sql=f"SELECT {', '.join([*dimensions, *private_dimensions, f'{v} AS v'])} {source}",
        source=source,
        v=v,
        rows_from=table,
        private_dimensions=private_dimensions,
    )


def tickets(
    id: str,
    unit: Unit,
    direction: Direction,
    definition: str,
    *,
    assigned_by: str,
    v: str,
    aggregate: Aggregate,
    where: str = "",
    kind: str | None = "incident",
    dimensions: tuple[str, ...] | None = None,
) -> Indicator:
    """Tickets (incidents unless `kind` says otherwise) placed by `assigned_by`; by
    TICKET_DIMENSIONS over every kind, else INCIDENT_DIMENSIONS unless `dimensions` says."""
    conditions = (f"kind = '{kind}'",) if kind else ()
    return per_row(
        id,
        unit,
        direction,
        definition,
        table="tickets",
        scope="ticket",
        assigned_by=assigned_by,
        dimensions=dimensions or (INCIDENT_DIMENSIONS if kind else TICKET_DIMENSIONS),
        v=v,
        aggregate=aggregate,
        where=conditions + ((where,) if where else ()),
        private_dimensions=PER_ENGINEER,
    )


def seconds(a: str, b: str) -> str:
    return f"greatest(0, extract(epoch FROM {b} - {a}))::float8"


register(
    tickets(
        "ticket_opened_count",
        "count",
        "neutral",
        "Tickets opened in the window (by kind).",
        assigned_by="opened_at",
        v="1.0",
        aggregate="count",
        kind=None,
    ),
    tickets(
        "ticket_resolved_count",
        "count",
        "neutral",
        "Tickets resolved in the window (a reopened ticket counts once, where it was last "
        "resolved).",
        assigned_by="resolved_at",
        v="1.0",
        aggregate="count",
        kind=None,
    ),
    tickets(
        "incident_response_time_seconds",
        "seconds",
        "lower_is_better",
        "responded_at − opened_at of incidents responded in the window.",
        assigned_by="responded_at",
        v=seconds("opened_at", "responded_at"),
        aggregate="mean",
    ),
    tickets(
        "incident_resolution_time_seconds",
        "seconds",
        "lower_is_better",
        "resolved_at − opened_at, wall clock, of incidents resolved in the window.",
        assigned_by="resolved_at",
        v=seconds("opened_at", "resolved_at"),
        aggregate="mean",
    ),
    tickets(
        "incident_reassignment_ratio",
        "ratio",
        "lower_is_better",
        "Share of incidents resolved in the window with at least one reassignment.",
        assigned_by="resolved_at",
        v="(reassignments > 0)::int::float8",
        aggregate="ratio",
    ),
    tickets(
        "incident_dispatch_accuracy_ratio",
        "ratio",
        "higher_is_better",
        "1 − incident_reassignment_ratio: incidents resolved without reassignment (派单准确率).",
        assigned_by="resolved_at",
        v="(reassignments = 0)::int::float8",
        aggregate="ratio",
    ),
    tickets(
        "incident_reopen_ratio",
        "ratio",
        "lower_is_better",
        "Share of incidents resolved in the window that were reopened at least once.",
        assigned_by="resolved_at",
        v="(reopens > 0)::int::float8",
        aggregate="ratio",
    ),
    tickets(
        "incident_first_contact_resolution_ratio",
        "ratio",
        "higher_is_better",
        "Share of incidents resolved in the window at first contact: the source's flag, else "
        "no reassignment and resolved within the catalog's first-contact minutes (30).",
        assigned_by="resolved_at",
        aggregate="ratio",
        v="coalesce(first_contact_resolution, reassignments = 0 AND "
        "extract(epoch FROM resolved_at - opened_at) <= :fcr_seconds)::int::float8",
    ),
    tickets(
        "incident_knowledge_usage_ratio",
        "ratio",
        "higher_is_better",
        "Share of incidents resolved in the window with at least one knowledge article.",
        assigned_by="resolved_at",
        v="(cardinality(knowledge_article_ids) > 0)::int::float8",
        aggregate="ratio",
    ),
    tickets(
        "major_incident_count",
        "count",
        "lower_is_better",
        "Major incidents opened in the window.",
        assigned_by="opened_at",
        v="1.0",
        aggregate="count",
        where="major",
        dimensions=INCIDENT_VOLUME_DIMENSIONS,
    ),
    tickets(
        "problem_resolution_time_seconds",
        "seconds",
        "lower_is_better",
        "resolved_at − opened_at of problems resolved in the window.",
        assigned_by="resolved_at",
        v=seconds("opened_at", "resolved_at"),
        aggregate="mean",
        kind="problem",
    ),
    tickets(
        "incident_problem_linked_ratio",
        "ratio",
        "neutral",
        "Share of incidents resolved in the window linked to a problem record.",
        assigned_by="resolved_at",
        v="(problem_id IS NOT NULL)::int::float8",
        aggregate="ratio",
    ),
)


def sla(id: str, which: str, definition: str) -> Indicator:
    """Incidents whose response or resolution target was decided in the window (met when done
    within it, breached where it passed); those no policy covers are left out."""
    return per_row(
        id,
        "ratio",
        "higher_is_better",
        definition,
        table="ticket_sla s JOIN tickets t USING (ticket_id)",
        scope="sla,ticket",
        assigned_by=f"s.{which}_decided_at",
        dimensions=INCIDENT_DIMENSIONS,
        v=f"s.{which}_met::int::float8",
        aggregate="ratio",
        where=("s.policy_id IS NOT NULL",),
        private_dimensions=PER_ENGINEER,
    )


register(
    sla(
        "incident_sla_response_met_ratio",
        "response",
        "Share of incidents responded in the window within the response target (SLA clock); a "
        "late response counts where the target passed; incidents with no policy excluded.",
    ),
    sla(
        "incident_sla_resolution_met_ratio",
        "resolution",
        "Share of incidents whose resolution target was decided in the window: resolved within "
        "it, or breached where it passed (open incidents included); count = decided incidents.",
    ),
    Indicator(
        id="incident_backlog_count",
        family="process",
        unit="count",
        direction="lower_is_better",
        definition="Incidents opened before the window's end and open at its end (from their "
        "state transitions: reopened, pending and cancelled ones at their real times).",
        scope="ticket",
        assigned_by="state at window end",
        dimensions=INCIDENT_VOLUME_DIMENSIONS,
        aggregate="count",
        placement="state",
        samples_sql="""
            SELECT service, priority, assignment_group, channel, 1.0 AS v FROM tickets
            WHERE kind = 'incident' AND opened_at < w.window_end
              AND open_periods @> w.window_end
        """,
    ),
)


def changes(
    id: str,
    unit: Unit,
    direction: Direction,
    definition: str,
    *,
    v: str,
    aggregate: Aggregate,
    where: str = "",
    scope: str = "change",
) -> Indicator:
    """Changes implemented in the window."""
    return per_row(
        id,
        unit,
        direction,
        definition,
        table="changes c",
        scope=scope,
        assigned_by="implemented_at",
        dimensions=CHANGE_DIMENSIONS,
        v=v,
        aggregate=aggregate,
        where=(where,) if where else (),
    )


register(
    changes(
        "change_count",
        "count",
        "neutral",
        "Changes implemented in the window.",
        v="1.0",
        aggregate="count",
    ),
    changes(
        "change_success_ratio",
        "ratio",
        "higher_is_better",
        "Changes implemented in the window with outcome successful / those with any outcome.",
        v="(outcome = 'successful')::int::float8",
        aggregate="ratio",
        where="outcome IS NOT NULL",
    ),
    changes(
        "change_failure_ratio",
        "ratio",
        "lower_is_better",
        "Share of changes implemented in the window that failed, were rolled back, or caused "
        "at least one incident (DORA change failure rate).",
        aggregate="ratio",
        v="(coalesce(outcome IN ('failed', 'rolled_back'), false) OR EXISTS (SELECT 1 "
        "FROM tickets t WHERE t.caused_by_change_id = c.change_id AND t.kind = 'incident'))"
        "::int::float8",
        scope="change,ticket",
    ),
    changes(
        "change_emergency_ratio",
        "ratio",
        "lower_is_better",
        "Emergency changes / all changes implemented in the window.",
        v="coalesce(change_type = 'emergency', false)::int::float8",
        aggregate="ratio",
    ),
    changes(
        "change_lead_time_seconds",
        "seconds",
        "lower_is_better",
        "actual_end − requested_at of changes implemented in the window.",
        v=seconds("requested_at", "actual_end"),
        aggregate="mean",
        where="actual_end IS NOT NULL AND requested_at IS NOT NULL",
    ),
    Indicator(
        id="change_unauthorized_count",
        family="process",
        unit="count",
        direction="lower_is_better",
        definition="Upserts in the window of an existing CI without an approved change_id, by "
        "CI and the services it names (each upsert once in totals over services).",
        scope="ci,change",
        assigned_by="event time",
        dimensions=("ci", "service"),
        aggregate="count",
        # the CI's services as they are now count for its past upserts too (the CMDB keeps no
        # topology history): a change of them moves the CI's span, which recomputes these
        interval_placed=True,
        samples_sql=f"""
            SELECT e.entity_id AS ci, s.service, e.source || ' ' || e.id AS upsert, 1.0 AS v
            FROM events e JOIN config_items ci ON ci.ci_id = e.entity_id
            LEFT JOIN LATERAL unnest(ci.services) AS s(service) ON true
            WHERE e.type = 'itsm.config.ci.upserted'
              AND e.time >= w.window_start AND e.time < w.window_end
              AND {" AND ".join(bounded("e.time"))}
              AND e.time > ci.created_at
              AND NOT EXISTS (SELECT 1 FROM changes ch
                              WHERE ch.change_id = e.data->>'change_id' AND ch.approved)
        """,
        repeated_per_service="upsert",
    ),
    Indicator(
        id="cmdb_accuracy_ratio",
        family="process",
        unit="ratio",
        direction="higher_is_better",
        definition="1 − Σ discrepancies / Σ cis_checked over CMDB audits completed in the window.",
        scope="audit",
        assigned_by="completed_at",
        dimensions=(),
        aggregate="weighted",
        samples_sql="""
            SELECT (cis_checked - discrepancies)::float8 AS v, cis_checked::float8 AS w
            FROM cmdb_audits
            WHERE completed_at >= w.window_start AND completed_at < w.window_end
        """,
    ),
)


def calls(
    id: str,
    unit: Unit,
    direction: Direction,
    definition: str,
    *,
    v: str,
    aggregate: Aggregate,
    where: str = "",
) -> Indicator:
    """Service desk calls completed in the window (no dimensions: per-agent values are never
    labels, SPEC §8)."""
    return per_row(
        id,
        unit,
        direction,
        definition,
        table="calls",
        scope="call",
        assigned_by="completed_at",
        dimensions=(),
        v=v,
        aggregate=aggregate,
        where=(where,) if where else (),
    )


register(
    calls(
        "call_answer_ratio",
        "ratio",
        "higher_is_better",
        "Answered / all calls completed in the window (接听率).",
        v="answered::int::float8",
        aggregate="ratio",
    ),
    calls(
        "call_abandon_ratio",
        "ratio",
        "lower_is_better",
        "1 − call_answer_ratio.",
        v="(NOT answered)::int::float8",
        aggregate="ratio",
    ),
    calls(
        "call_handle_time_seconds",
        "seconds",
        "neutral",
        "handle_seconds of answered calls completed in the window (平均通话时间).",
        v="handle_seconds",
        aggregate="mean",
        where="answered AND handle_seconds IS NOT NULL",
    ),
    calls(
        "call_logging_ratio",
        "ratio",
        "higher_is_better",
        "Answered calls logged as a ticket / answered calls (录单率).",
        v="(ticket_id IS NOT NULL)::int::float8",
        aggregate="ratio",
        where="answered",
    ),
    Indicator(
        id="knowledge_articles_count",
        family="process",
        unit="count",
        direction="neutral",
        definition="Knowledge articles published and not retired at the window's end.",
        scope="article",
        assigned_by="state at window end",
        dimensions=("service",),
        aggregate="count",
        placement="state",
        samples_sql="""
            SELECT service, 1.0 AS v FROM knowledge_articles
            WHERE published_at < w.window_end
              AND (retired_at IS NULL OR retired_at >= w.window_end)
        """,
    ),
    Indicator(
        id="knowledge_update_ratio",
        family="process",
        unit="ratio",
        direction="higher_is_better",
        definition="Articles published or updated in the window / articles at the window's end.",
        scope="article",
        assigned_by="state at window end",
        dimensions=("service",),
        aggregate="ratio",
        placement="state",
        samples_sql=f"""
            SELECT a.service, EXISTS (
                SELECT 1 FROM events e
                WHERE e.type IN ('itsm.knowledge.article.published',
                                 'itsm.knowledge.article.updated')
                  AND e.entity_kind = 'article' AND e.entity_id = a.article_id
                  AND e.time >= w.window_start AND e.time < w.window_end
                  AND {" AND ".join(bounded("e.time"))}
            )::int::float8 AS v
            FROM knowledge_articles a
            WHERE a.published_at < w.window_end
              AND (a.retired_at IS NULL OR a.retired_at >= w.window_end)
        """,
    ),
    Indicator(
        id="csat_score",
        family="process",
        unit="score",
        direction="higher_is_better",
        definition="Mean satisfaction survey score (1–5) of surveys completed in the window.",
        scope="survey",
        assigned_by="completed_at",
        dimensions=("service",),
        aggregate="mean",
        samples_sql="""
            SELECT service, score::float8 AS v FROM surveys
            WHERE completed_at >= w.window_start AND completed_at < w.window_end
        """,
    ),
)
