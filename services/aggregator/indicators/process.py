"""Process indicators (SPEC §5.2) over the ticket projection."""

from __future__ import annotations

from services.aggregator.indicators import Indicator, register

TICKET_DIMENSIONS = ("service", "priority", "kind")
INCIDENT_DIMENSIONS = ("service", "priority")

register(
    Indicator(
        id="ticket_opened_count",
        family="process",
        unit="count",
        direction="neutral",
        definition="Tickets opened in the window (by kind).",
        scope="ticket",
        assigned_by="opened_at",
        dimensions=TICKET_DIMENSIONS,
        aggregate="count",
        samples_sql="""
            SELECT service, priority, kind, 1.0 AS v FROM tickets
            WHERE opened_at >= w.window_start AND opened_at < w.window_end
        """,
    ),
    Indicator(
        id="ticket_resolved_count",
        family="process",
        unit="count",
        direction="neutral",
        definition="Tickets resolved in the window (latest resolution; reopened tickets count "
        "once, where they were last resolved).",
        scope="ticket",
        assigned_by="resolved_at",
        dimensions=TICKET_DIMENSIONS,
        aggregate="count",
        samples_sql="""
            SELECT service, priority, kind, 1.0 AS v FROM tickets
            WHERE resolved_at >= w.window_start AND resolved_at < w.window_end
        """,
    ),
    Indicator(
        id="incident_resolution_time_seconds",
        family="process",
        unit="seconds",
        direction="lower_is_better",
        definition="resolved_at − opened_at, wall clock, of incidents resolved in the window; "
        "value is the mean, with p50 and p90.",
        scope="ticket",
        assigned_by="resolved_at",
        dimensions=INCIDENT_DIMENSIONS,
        aggregate="mean",
        samples_sql="""
            SELECT service, priority,
                   greatest(0, extract(epoch FROM resolved_at - opened_at))::float8 AS v
            FROM tickets
            WHERE kind = 'incident'
              AND resolved_at >= w.window_start AND resolved_at < w.window_end
        """,
    ),
)
