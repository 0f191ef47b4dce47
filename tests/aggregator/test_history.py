"""History shows up first where it happened (issue 10): the windows holding a backfill's events
are computed before what its open tickets move over the years since (their backlog), and hours
older than the retention are not stored but answered at query time by the same statement."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from services.api.app import create_app
from shared.settings import Settings
from tests.helpers import FIXTURES_NOW, aggregator, store, ticket_event, utc

RETENTION = Settings(
    _env_file=None,  # type: ignore[call-arg]
    aggregator_slow_seconds=0,
    hour_retention_days=92,
)


def history() -> list[dict[str, object]]:
    """60 incidents of 2016, one every six days; every other one is still open today."""
    events = []
    for n in range(60):
        opened = utc(2016, 1, 4, 9) + timedelta(days=6 * n)
        events.append(ticket_event(f"H{n}", opened, "new", service="email", priority=3))
        if n % 2:
            events.append(ticket_event(f"H{n}", opened + timedelta(hours=5), "resolved"))
    return events


def opened_in_2016(engine: Engine) -> float:
    with engine.connect() as conn:
        return float(
            conn.execute(
                text(
                    "SELECT coalesce(sum(count), 0) FROM indicator_points "
                    "WHERE indicator = 'ticket_opened_count' AND window_kind = 'month' "
                    "AND dimensions = '{}' AND window_start < '2017-01-01'"
                )
            ).scalar_one()
        )


def queued(engine: Engine, where: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM window_queue WHERE {where}")).scalar())


def test_a_backfill_is_visible_before_the_backlog_it_moves_over_the_years(engine: Engine) -> None:
    store(engine, history())
    agg = aggregator(engine, RETENTION)
    agg.evaluate_sla()
    agg.expand_marks()
    # the open tickets moved the backlog of every window since 2016, but hours only within
    # the retention are queued (older ones are answered at query time)
    since = FIXTURES_NOW - timedelta(days=93)
    assert queued(engine, "window_kind = 'hour' AND window_start < '2016-12-31'") == 0
    assert queued(engine, f"window_kind = 'hour' AND window_start < '{since.isoformat()}'") == 0
    assert queued(engine, "lane = 'span' AND window_kind = 'day'") > 3000  # ~10 years of days
    chunks = 0
    while opened_in_2016(engine) < 60:
        assert agg.recompute_dirty(budget=0) > 0
        chunks += 1
    # the 2016 months are there while most of the years of backlog still wait
    assert queued(engine, "lane = 'span'") > 2000
    while agg.recompute_dirty() > 0:
        pass
    assert queued(engine, "true") == 0
    with engine.connect() as conn:  # 30 of them open at the end of 2024, for instance
        backlog = conn.execute(
            text(
                "SELECT value FROM indicator_points WHERE indicator = 'incident_backlog_count' "
                "AND window_kind = 'month' AND window_start = '2024-12-01' AND dimensions = '{}'"
            )
        ).scalar()
    assert backlog == 30


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    kept = settings.model_copy(update={"hour_retention_days": 92})
    with TestClient(create_app(kept, engine)) as c:
        yield c


def test_hours_older_than_the_retention_are_pruned_and_answered_at_query_time(
    engine: Engine, client: TestClient
) -> None:
    old = utc(2026, 1, 5, 9)  # long before the retention of 92 days
    store(
        engine,
        [
            ticket_event("R1", old, "new", service="email", priority=2),
            ticket_event("R1", old + timedelta(minutes=30), "resolved"),
            ticket_event("R2", old + timedelta(minutes=10), "new", service="erp", priority=2),
            ticket_event("R2", old + timedelta(minutes=50), "resolved"),
        ],
    )
    keep_all = aggregator(engine)  # the tests' aggregator keeps every hour
    keep_all.evaluate_sla()
    while keep_all.recompute_dirty() > 0:
        pass
    params = {
        "window": "hour",
        "start": old.isoformat(),
        "end": (old + timedelta(hours=1)).isoformat(),
        "group_by": "priority",
    }
    stored = client.get("/v1/indicators/incident_resolution_time_seconds", params=params).json()
    aggregator(engine, RETENTION).prune()
    with engine.connect() as conn:
        left = conn.execute(
            text("SELECT count(*) FROM indicator_points WHERE window_kind = 'hour'")
        ).scalar()
    assert left == 0
    computed = client.get("/v1/indicators/incident_resolution_time_seconds", params=params).json()
    # (30 + 40) / 2 minutes = 2100 s, by priority 2, stored then computed: the same point
    assert computed == stored
    assert [(p["dimensions"], p["value"], p["count"]) for p in computed["points"]] == [
        ({"priority": "2"}, 2100.0, 2)
    ]
