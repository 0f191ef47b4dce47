"""Per-engineer values for the team review (issue 11; SPEC §8: per-engineer values are never
labels). `assignee` is a private dimension (indicators.PRIVATE_DIMENSIONS): the ticket
indicators' statement selects it, but it is never stored (policy.py), never a /metrics label
(the exposition reads stored groupings only), and GET /v1/indicators refuses it. Its values
are computed here, at query time, by the same statement as every other point
(compute.query_points): one formula, never a second one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from services.aggregator.compute import QueryPoint, catalog_params, query_points
from services.aggregator.indicators.custom import find
from services.catalog import Catalog
from shared.errors import InvalidRequest, NotFound

ASSIGNEE = "assignee"
# The per-engineer KPI summary of a team review: resolved tickets, resolution time (mean, p50,
# p90), SLA resolution met ratio, reopen ratio.
TEAM_KPIS = (
    "ticket_resolved_count",
    "incident_resolution_time_seconds",
    "incident_sla_resolution_met_ratio",
    "incident_reopen_ratio",
)


def per_engineer(
    conn: Connection,
    catalog: Catalog,
    indicator_ids: Sequence[str],
    window: tuple[datetime, datetime],
    filters: Mapping[str, str] | None = None,
    *,
    tz: ZoneInfo,
    now: datetime | None = None,
) -> dict[str, dict[str, QueryPoint]]:
    """{assignee: {indicator: point}} of these indicators over `window` ([start, end)),
    filtered (e.g. {"assignment_group": "desk"}: the tickets whose current group is the
    team's), in the reporting time zone `tz`. An engineer appears under an indicator only where
    it has samples; tickets without an assignee come under "unknown" (work nobody took). Each
    point carries value, count, and for durations p50/p90."""
    start, end = window
    if start >= end:
        raise InvalidRequest("start must be before end")
    filters = dict(filters or {})
    params = catalog_params(catalog, tz)
    now = now or datetime.now(UTC)
    out: dict[str, dict[str, QueryPoint]] = {}
    for indicator_id in indicator_ids:
        ind = find(conn, catalog, indicator_id)
        if ind is None:
            raise NotFound(f"unknown indicator {indicator_id!r}")
        if ASSIGNEE not in ind.private_dimensions:
            raise InvalidRequest(f"{indicator_id} has no per-engineer values")
        unknown = sorted(set(filters) - set(ind.all_dimensions))
        if unknown:
            raise InvalidRequest(f"{indicator_id} has no dimension {', '.join(unknown)}")
        for p in query_points(conn, ind, [window], (ASSIGNEE,), filters, now=now, params=params):
            out.setdefault(str(p.dimensions[ASSIGNEE]), {})[indicator_id] = p
    return out
