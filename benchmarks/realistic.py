"""Production-shaped ITSM data for the benchmarks, from one seed: 15 customers, 200 services,
60 assignment groups, 400 engineers, 5,000 CIs with dependencies; tickets with business-hour
and weekday seasonality and realistic lifecycles (responded in minutes, resolved after minutes
to weeks, ~8 % still open at the end, ~15 % reassigned, ~3 % reopened), plus changes, alerts,
calls, surveys and the knowledge base around them.

- `catalog_yaml(seed)`: the world's service catalog (SPEC §6.1).
- `ticket_events`, `change_events`, `alert_events`, `call_events`, `ci_events`,
  `article_events`, `mixed_events`: CloudEvents (SPEC §3) as (topic suffix, key, event), in
  time order.
- `load_month(conn, n_tickets, month_start, seed)`: the same distributions written straight
  into the projection tables in SQL (1,000,000 tickets in well under a minute).

The facts (cardinalities, weights, durations, seasonality) live in `realistic_world`; the
generators in `realistic_events`; the SQL in `realistic_sql`."""

from __future__ import annotations

from benchmarks.realistic_events import (
    alert_events,
    article_events,
    call_events,
    change_events,
    ci_events,
    mixed_events,
    month_end,
    ticket_events,
)
from benchmarks.realistic_sql import load_month
from benchmarks.realistic_world import World, catalog_yaml, world

__all__ = [
    "World",
    "alert_events",
    "article_events",
    "call_events",
    "catalog_yaml",
    "change_events",
    "ci_events",
    "load_month",
    "mixed_events",
    "month_end",
    "ticket_events",
    "world",
]
