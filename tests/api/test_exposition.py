"""`/metrics` serves the snapshot the aggregator stored (SPEC §8): fresh, it is served after the
api's own metrics as one valid text; stale, missing or unreadable, its series are absent and
`itsm_exposition_stale` says so, never zeros; its body is fetched only when it changed."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from services.api.app import create_app
from shared.db import make_engine
from shared.settings import Settings
from tests.conftest import Postgres
from tests.helpers import aggregate, publish, real_clock, store, ticket_event


def api_own(family: str) -> bool:
    """What the api itself exposes; every other family comes from the snapshot."""
    status = ("itsm_exposition_age_seconds", "itsm_exposition_stale")
    return family.startswith("itsm_http_") or family in status


OPENED_TODAY = (
    'itsm_ticket_opened_count{assignment_group="",channel="",customer="",kind="",period="current",'
    'priority="",service="",window="day"}'
)


@pytest.fixture
def api_engine(settings: Settings) -> Iterator[Engine]:
    """The api's own engine, apart from the one the test (and its aggregator) write with."""
    eng = make_engine(settings.require_database_url())
    yield eng
    eng.dispose()


@pytest.fixture
def client(settings: Settings, api_engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings, api_engine)) as c:
        yield c


def scrape(client: TestClient) -> dict[str, Any]:
    """The families of one scrape by name (a name twice would fail here)."""
    resp = client.get("/metrics")
    assert resp.status_code == 200
    families: dict[str, Any] = {}
    for fam in text_string_to_metric_families(resp.text):
        assert fam.name not in families, f"{fam.name} twice in one scrape"
        families[fam.name] = fam
    return families


def value(families: dict[str, Any], name: str) -> float:
    [s] = families[name].samples
    return float(s.value)


def snapshot_samples(families: dict[str, Any]) -> list[str]:
    return [s.name for name, fam in families.items() if not api_own(name) for s in fam.samples]


def open_today(engine: Engine, *ticket_ids: str) -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    store(engine, [ticket_event(t, today, "new", service="email") for t in ticket_ids])
    aggregate(engine, clock=real_clock)


def test_a_fresh_snapshot_is_served_after_the_apis_own_metrics(
    client: TestClient, engine: Engine
) -> None:
    open_today(engine, "F1")
    body = publish(engine, clock=real_clock).rendering.body.decode()
    served = client.get("/metrics").text
    assert f"{OPENED_TODAY} 1.0" in body
    # the api's own text, whole lines, then the snapshot as the aggregator rendered it
    assert served.endswith(body) and served[: -len(body)].endswith("\n")
    assert served[: -len(body)].startswith("# HELP itsm_http_requests_total ")
    families = scrape(client)  # one valid text, each family once
    assert value(families, "itsm_exposition_stale") == 0.0
    assert 0.0 <= value(families, "itsm_exposition_age_seconds") < 60
    assert value(families, "itsm_exposition_series_dropped") == 0.0
    assert {
        "itsm_objective_status",
        "itsm_objective_target",
        "itsm_objective_samples",
        "itsm_indicator_drift_score",
        "itsm_indicator_drifting",
    } <= set(families)


def test_before_any_rendering_no_indicator_series_and_stale(client: TestClient) -> None:
    families = scrape(client)
    assert snapshot_samples(families) == []
    assert value(families, "itsm_exposition_stale") == 1.0
    assert math.isnan(value(families, "itsm_exposition_age_seconds"))  # never rendered


def test_a_snapshot_older_than_the_threshold_is_not_served(
    client: TestClient, engine: Engine, settings: Settings
) -> None:
    open_today(engine, "O1")
    publish(engine, clock=real_clock)
    assert value(scrape(client), "itsm_exposition_stale") == 0.0
    # the aggregator stopped rendering an hour ago (threshold: 120 s)
    assert settings.exposition_stale_seconds == 120
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE exposition_snapshot SET rendered_at = rendered_at - interval '1 hour'")
        )
    families = scrape(client)
    assert snapshot_samples(families) == []
    assert "itsm_ticket_opened_count" not in families
    assert value(families, "itsm_exposition_stale") == 1.0
    assert 3600 <= value(families, "itsm_exposition_age_seconds") < 3660


def test_an_unreachable_database_leaves_the_indicator_series_out_never_zeros(
    client: TestClient,
    engine: Engine,
    settings: Settings,
    postgres: Postgres,
    caplog: pytest.LogCaptureFixture,
) -> None:
    open_today(engine, "U1", "U2")
    publish(engine, clock=real_clock)
    before = scrape(client)  # cached by the api
    assert value(before, "itsm_exposition_stale") == 0.0
    assert f"{OPENED_TODAY} 2.0" in client.get("/metrics").text
    url = settings.require_database_url()
    postgres.allow_connections(url, False)
    try:
        with caplog.at_level(logging.WARNING, logger="itsm.api.exposition"):
            scrape(client)
            families = scrape(client)  # still answers, from the api's own metrics
        # one line when the snapshot became unreadable, not one per scrape
        [warning] = [r for r in caplog.records if r.name == "itsm.api.exposition"]
        assert "not currently accepting connections" in warning.error  # type: ignore[attr-defined]
        assert value(families, "itsm_exposition_stale") == 1.0
        # the age of the copy read before, counted on
        age = value(families, "itsm_exposition_age_seconds")
        assert value(before, "itsm_exposition_age_seconds") <= age < 60
        # not one indicator, objective or drift sample; in particular no zero count
        assert snapshot_samples(families) == []
        assert "itsm_incident_backlog_count" not in families
    finally:
        postgres.allow_connections(url, True)
    assert f"{OPENED_TODAY} 2.0" in client.get("/metrics").text  # back when it is


def test_a_scrape_fetches_the_body_only_after_a_new_rendering(
    client: TestClient, engine: Engine, api_engine: Engine
) -> None:
    columns: list[list[str]] = []  # the columns of each statement the api ran on the snapshot

    @event.listens_for(api_engine, "after_cursor_execute")
    def selected(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if "exposition_snapshot" in statement:
            columns.append([c.name for c in cursor.description])

    def bodies() -> int:
        return sum("body_gzip" in c for c in columns)

    open_today(engine, "B1")
    publish(engine, clock=real_clock)
    texts = [client.get("/metrics").text for _ in range(3)]
    assert all(f"{OPENED_TODAY} 1.0" in t for t in texts)
    # three scrapes read the snapshot's head; the first alone fetched its body
    assert len(columns) == 4
    assert bodies() == 1
    assert all(c == ["rendered_at", "size", "age"] for c in columns if "body_gzip" not in c)
    open_today(engine, "B2")
    publish(engine, clock=real_clock)  # a new rendering: the next scrape fetches it, once
    assert f"{OPENED_TODAY} 2.0" in client.get("/metrics").text
    assert f"{OPENED_TODAY} 2.0" in client.get("/metrics").text
    assert (len(columns), bodies()) == (7, 2)
