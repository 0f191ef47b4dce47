"""Small builders shared by tests: CloudEvents and a direct store → aggregate path."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import cast, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine

from services.aggregator.jobs import Aggregator
from services.collector.store import Incoming, store_batch
from shared.db import indicator_values
from shared.events import validate_event
from shared.settings import Settings

_ids = itertools.count(1)
UTC_TZ = ZoneInfo("UTC")


def ticket_event(
    ticket_id: str,
    at: datetime | str,
    state: str,
    *,
    event_type: str | None = None,
    event_id: str | None = None,
    source: str = "test://itsm",
    **data: Any,
) -> dict[str, Any]:
    when = at if isinstance(at, str) else at.isoformat()
    etype = event_type or {
        "new": "itsm.ticket.created",
        "resolved": "itsm.ticket.resolved",
        "closed": "itsm.ticket.closed",
        "cancelled": "itsm.ticket.cancelled",
    }.get(state, "itsm.ticket.updated")
    return {
        "specversion": "1.0",
        "id": event_id or f"evt-{next(_ids)}",
        "source": source,
        "type": etype,
        "time": when,
        "subject": ticket_id,
        "data": {"ticket_id": ticket_id, "state": state, **data},
    }


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def store(engine: Engine, events: list[dict[str, Any]], tz: ZoneInfo = UTC_TZ) -> None:
    """Validate and store events as the collector does (one transaction)."""
    items = [Incoming(validate_event(e), "test.tickets", 0, i) for i, e in enumerate(events)]
    with engine.begin() as conn:
        store_batch(conn, items, [], tz)


def aggregate(engine: Engine, settings: Settings | None = None) -> int:
    """Recompute every dirty window; returns how many were recomputed."""
    from prometheus_client import CollectorRegistry

    from services.aggregator.metrics import AggregatorMetrics

    agg = Aggregator(
        settings or Settings(_env_file=None),
        engine,  # type: ignore[call-arg]
        AggregatorMetrics(CollectorRegistry()),
    )
    total = 0
    while (n := agg.recompute_dirty()) > 0:
        total += n
    return total


def points(
    engine: Engine, indicator: str, window: str, start: datetime, **dims: str
) -> dict[str, Any] | None:
    """The stored point of one indicator window for exactly these dimensions (None if absent)."""
    iv = indicator_values.c
    with engine.connect() as conn:
        row = conn.execute(
            select(iv.value, iv["count"], iv.p50, iv.p90).where(
                iv.indicator == indicator,
                iv.window_kind == window,
                iv.window_start == start,
                iv.dimensions == cast(dims, JSONB),
            )
        ).first()
    return None if row is None else dict(row._mapping)
