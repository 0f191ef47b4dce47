"""The team review (SPEC §7.3, issue 11): one assignment group over one period, for the team's
own meeting — the previous plan and its progress, the group's brief, its difficult, unresolved
and aged tickets with links, the problems it worked on, and the next plan. Plain functions over
a connection (the caller owns the transaction).

Every indicator number is read through `figures.Reader` (the indicator API's own code) with the
filter `assignment_group=…`, so it is what `GET /v1/indicators/{id}` answers; the ticket lists
are read from the ticket projection."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, and_, func, literal, select
from sqlalchemy.dialects.postgresql import TSTZMULTIRANGE, TSTZRANGE

from services.aggregator.compute import QueryPoint
from services.aggregator.per_engineer import TEAM_KPIS, per_engineer
from services.api.indicators import Reading
from services.api.reviews import service as reviews
from services.api.reviews.figures import Reader
from services.api.reviews.schemas import ActionItem
from services.api.reviews.team_schemas import (
    DifficultTickets,
    EngineerKpis,
    GroupBrief,
    Kpi,
    Plan,
    ProblemLine,
    TeamReview,
    TicketLine,
    Unresolved,
)
from services.catalog import Catalog
from shared.db import review_action_items, tickets
from shared.db import reviews as review_records
from shared.errors import InvalidRequest

# At most this many tickets per list: a review is read in a meeting, not scrolled.
LIMIT = 10
# A ticket open longer than this at the period's end is aged.
AGED_AFTER_DAYS = 30


def review(
    conn: Connection,
    catalog: Catalog,
    *,
    assignment_group: str,
    period_text: str,
    reading: Reading,
    now: datetime,
) -> TeamReview:
    if not assignment_group.strip():
        raise InvalidRequest("give the assignment_group the team review is of")
    period = reviews.period_of(period_text)
    r = Reader(conn, catalog, period, reading, now)
    previous, still_open = reviews.before_period(
        conn, "team", "assignment_group", assignment_group, period, reading.tz
    )
    return TeamReview(
        assignment_group=assignment_group,
        **r.header(),
        plan=Plan(
            previous_review=previous,
            still_open=still_open,
            next_items=_next_items(conn, assignment_group, period.label),
        ),
        brief=_brief(r, {"assignment_group": assignment_group}),
        difficult=_difficult(conn, assignment_group, r.start, r.end),
        unresolved=_unresolved(conn, assignment_group, r.end),
        problems=_problems(conn, assignment_group, r.start, r.end),
        engineers=_engineers(conn, catalog, assignment_group, r.start, r.end, now, reading.tz),
    )


def _brief(r: Reader, filters: dict[str, str]) -> GroupBrief:
    return GroupBrief(
        opened=r.figure("ticket_opened_count", filters),
        resolved=r.figure("ticket_resolved_count", filters),
        backlog=r.figure("incident_backlog_count", filters),
        resolution_time=r.figure("incident_resolution_time_seconds", filters),
        sla_resolution_met=r.figure("incident_sla_resolution_met_ratio", filters),
        reassignment=r.figure("incident_reassignment_ratio", filters),
        reopen=r.figure("incident_reopen_ratio", filters),
    )


def _engineers(
    conn: Connection,
    catalog: Catalog,
    group: str,
    start: datetime,
    end: datetime,
    now: datetime,
    tz: ZoneInfo,
) -> list[EngineerKpis]:
    found = per_engineer(
        conn, catalog, TEAM_KPIS, (start, end), {"assignment_group": group}, tz=tz, now=now
    )

    def kpi(points: dict[str, QueryPoint], indicator: str) -> Kpi:
        p = points.get(indicator)
        return Kpi(value=None, count=0) if p is None else Kpi(value=p.value, count=p.count)

    out = []
    for assignee in sorted(found, key=lambda a: (a == "unknown", a)):
        points = found[assignee]
        duration = points.get("incident_resolution_time_seconds")
        out.append(
            EngineerKpis(
                assignee=assignee,
                resolved=kpi(points, "ticket_resolved_count"),
                resolution_time=kpi(points, "incident_resolution_time_seconds"),
                resolution_time_p50=duration.p50 if duration else None,
                resolution_time_p90=duration.p90 if duration else None,
                sla_resolution_met=kpi(points, "incident_sla_resolution_met_ratio"),
                reopen=kpi(points, "incident_reopen_ratio"),
            )
        )
    return out


def _overlapping(start: datetime, end: datetime) -> Any:
    """Open at some time in [start, end): the ticket's open periods meet the period."""
    period = func.tstzmultirange(func.tstzrange(start, end, type_=TSTZRANGE), type_=TSTZMULTIRANGE)
    return tickets.c.open_periods.op("&&")(period)


def _lines(conn: Connection, where: Any, order: list[Any], until: datetime) -> list[TicketLine]:
    t = tickets.c
    age = func.extract("epoch", func.coalesce(t.resolved_at, literal(until)) - t.opened_at)
    rows = conn.execute(
        select(
            t.ticket_id,
            t.kind,
            t.service,
            t.priority,
            t.state,
            t.opened_at,
            t.resolved_at,
            t.reassignments,
            t.reopens,
            (age / 86400.0).label("age_days"),
        )
        .where(where)
        .order_by(*order, t.ticket_id)
        .limit(LIMIT)
    )
    return [TicketLine(link=_link(row.ticket_id), **row._mapping) for row in rows]


def _difficult(conn: Connection, group: str, start: datetime, end: datetime) -> DifficultTickets:
    t = tickets.c
    touched = and_(t.assignment_group == group, _overlapping(start, end))
    return DifficultTickets(
        most_reassigned=_lines(
            conn, and_(touched, t.reassignments > 0), [t.reassignments.desc()], end
        ),
        longest_open=_lines(
            conn,
            touched,
            [(func.coalesce(t.resolved_at, literal(end)) - t.opened_at).desc()],
            end,
        ),
        reopened=_lines(conn, and_(touched, t.reopens > 0), [t.reopens.desc()], end),
    )


def _unresolved(conn: Connection, group: str, end: datetime) -> Unresolved:
    t = tickets.c
    open_then = and_(t.assignment_group == group, t.open_periods.op("@>")(literal(end)))
    aged_before = end - timedelta(days=AGED_AFTER_DAYS)
    count, aged = conn.execute(
        select(func.count(), func.count().filter(t.opened_at < aged_before)).where(open_then)
    ).one()
    return Unresolved(
        aged_after_days=AGED_AFTER_DAYS,
        count=count,
        aged=aged,
        tickets=_lines(conn, open_then, [t.opened_at], end),
    )


def _problems(conn: Connection, group: str, start: datetime, end: datetime) -> list[ProblemLine]:
    t = tickets.c
    linked = tickets.alias("linked")
    incidents = (
        select(func.count())
        .where(linked.c.problem_id == t.ticket_id, linked.c.kind == "incident")
        .scalar_subquery()
    )
    rows = conn.execute(
        select(t.ticket_id, t.service, t.state, t.opened_at, t.resolved_at, incidents.label("n"))
        .where(
            t.kind == "problem",
            t.assignment_group == group,
            t.state != "cancelled",
            _overlapping(start, end),
        )
        .order_by(t.opened_at, t.ticket_id)
    )
    return [
        ProblemLine(
            ticket_id=row.ticket_id,
            link=_link(row.ticket_id),
            service=row.service,
            state=row.state,
            opened_at=row.opened_at,
            resolved_at=row.resolved_at,
            linked_incidents=row.n,
        )
        for row in rows
    ]


def _link(ticket_id: str) -> str:
    """The ticket in this API."""
    return f"/v1/tickets/{quote(ticket_id, safe='')}"


def _next_items(conn: Connection, group: str, period: str) -> list[ActionItem]:
    """The action items recorded at this period's team review(s) of the group."""
    r, i = review_records.c, review_action_items.c
    held = select(r.id).where(
        r.kind == "team",
        r.scope_kind == "assignment_group",
        r.scope_id == group,
        r.period == period,
    )
    return reviews.items(conn, i.review_id.in_(held))
