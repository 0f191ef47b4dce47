"""Which projection each entity kind has, and what places an entity in indicator windows."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table

from services.collector.projections import Record, parse_ts
from services.collector.projections.changes import project_change
from services.collector.projections.config import project_audit, project_ci
from services.collector.projections.monitoring import project_alert, project_check
from services.collector.projections.servicedesk import (
    project_article,
    project_call,
    project_survey,
)
from services.collector.projections.tickets import open_periods, project_ticket
from shared import db


@dataclass(frozen=True)
class Projection:
    kind: str
    table: Table
    key: str
    project: Callable[[list[Record]], dict[str, Any]]
    # Columns whose timestamps place the entity in a window (old and new values are marked).
    stamps: tuple[str, ...] = ()
    # (start, end) column pairs of intervals that count in every window they overlap, such as
    # open tickets or outages; an empty end means "still open". Where an interval changes,
    # the windows between its old and new bounds are marked.
    spans: tuple[tuple[str, str], ...] = ()
    # Columns that are dimensions of indicators counted over the spans (a ticket's priority in
    # the backlog of every hour it was open): when one changes, the whole spans are marked.
    dims: tuple[str, ...] = ()
    # Finer intervals inside the spans (a ticket's open periods), from a row: where they moved,
    # the windows between old and new bounds are marked; `period_columns` are what they read.
    periods: Callable[[Mapping[str, Any]], list[tuple[datetime, datetime | None]]] | None = None
    period_columns: tuple[str, ...] = ()


def ticket_open_periods(row: Mapping[str, Any]) -> list[tuple[datetime, datetime | None]]:
    steps = [(parse_ts(t), state) for t, state in row["transitions"] or []]
    return open_periods([(t, state) for t, state in steps if t is not None])


PROJECTIONS: dict[str, Projection] = {
    p.kind: p
    for p in (
        Projection(
            "ticket",
            db.tickets,
            "ticket_id",
            project_ticket,
            stamps=("opened_at", "responded_at", "resolved_at", "closed_at"),
            spans=(("opened_at", "resolved_at"),),
            dims=("kind", "service", "priority", "assignment_group", "major", "channel"),
            periods=ticket_open_periods,
            period_columns=("transitions",),
        ),
        Projection(
            "change",
            db.changes,
            "change_id",
            project_change,
            stamps=("requested_at", "approved_at", "implemented_at"),
            spans=(("planned_start", "planned_end"),),
            dims=("approved", "ci_ids", "service"),
        ),
        Projection(
            "ci",
            db.config_items,
            "ci_id",
            project_ci,
            spans=(("created_at", "deleted_at"),),
            # The CMDB keeps no topology history: a CI's services, criticality and
            # dependencies as they are now count over its whole life (availability, coverage).
            dims=("services", "critical", "depends_on"),
        ),
        Projection("audit", db.cmdb_audits, "audit_id", project_audit, stamps=("completed_at",)),
        Projection(
            "alert",
            db.alerts,
            "alert_id",
            project_alert,
            stamps=("started_at", "ended_at"),
            spans=(("started_at", "ended_at"),),
            dims=("ci_id", "service", "outage", "severity"),
        ),
        Projection(
            "check",
            db.monitor_checks,
            "check_id",
            project_check,
            spans=(("registered_at", "removed_at"),),
            dims=("ci_id",),
        ),
        Projection("call", db.calls, "call_id", project_call, stamps=("completed_at",)),
        Projection("survey", db.surveys, "survey_id", project_survey, stamps=("completed_at",)),
        Projection(
            "article",
            db.knowledge_articles,
            "article_id",
            project_article,
            stamps=("published_at", "last_updated_at", "retired_at"),
            spans=(("published_at", "retired_at"),),
            dims=("service",),
        ),
    )
}
