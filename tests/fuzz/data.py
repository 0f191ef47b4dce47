"""The data set the fuzz tests read: the example catalog, a few days of October 2026 of every
entity the read routes show (ids with `/`, markup, SQL and right-to-left text among them),
aggregated, a dead letter, an improvement and a review — and the app over them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from services.api.app import create_app
from services.api.server import protocol
from services.catalog import apply_catalog
from services.local.engines import free_port
from shared.db import make_engine
from shared.kafka import ensure_topics
from shared.settings import Settings
from tests.conftest import Postgres, make_settings, wait_until
from tests.helpers import Clock, add_dead_letter, aggregate, cloud_event, store, ticket_event, utc

CATALOG = Path(__file__).resolve().parents[2] / "deploy" / "catalog.example.yaml"
MANAGE_TOKEN = "manage-secret"
ADMIN = {"Authorization": "Bearer admin-secret"}

# Values a hostile or merely unusual source sends, stored as they come and shown verbatim.
SLASHED = "INC/2026/0001"
MARKUP = "<script>alert(1)</script>"
SQL = "' OR 1=1 --"
RTL = "\u202eevil\u202c 😀"


def t(day: int, hour: int, minute: int = 0) -> datetime:
    return utc(2026, 10, day, hour, minute)


EVENTS = [
    ticket_event(SLASHED, t(5, 9), "new", service="email", priority=2, channel="phone",
                 assignment_group=MARKUP, title=SQL),
    ticket_event(SLASHED, t(5, 9, 30), "in_progress", assignee=RTL),
    ticket_event(SLASHED, t(5, 11), "resolved"),
    ticket_event(SQL, t(6, 10), "new", service="erp", priority=1, major=True, title=MARKUP),
    ticket_event(RTL, t(7, 8), "new", service="email", priority=3, kind="service_request"),
    cloud_event("itsm.change.requested", t(4, 8), "c-r", change_id="CHG/1", change_type="normal",
                service="email", ci_ids=["CI/MAIL"]),
    cloud_event("itsm.change.implemented", t(5, 8), "c-i", change_id="CHG/1",
                outcome="successful"),
    cloud_event("itsm.config.ci.upserted", t(1, 0), "ci-u", ci_id="CI/MAIL", name=MARKUP,
                services=["email"], critical=True),
    cloud_event("itsm.monitor.alert.firing", t(6, 8), "a-f", alert_id="A1", ci_id="CI/MAIL",
                severity="critical", started_at=t(6, 8).isoformat()),
    cloud_event("itsm.monitor.alert.resolved", t(6, 9), "a-r", alert_id="A1",
                ended_at=t(6, 9).isoformat()),
    cloud_event("itsm.feedback.survey.completed", t(6, 12), "s-1", survey_id="S1",
                service="email", score=4),
    cloud_event("itsm.measurement.recorded", t(6, 12), "m-1", indicator="training_hours",
                value=3, service="email", period_start=t(6, 0).isoformat(),
                period_end=t(7, 0).isoformat()),
]  # fmt: skip


def document() -> dict[str, Any]:
    """The app's OpenAPI document, which does not depend on its database or broker: read at
    import, for pytest to list operations and parameters (schemathesis' lazy loader from a
    fixture does not run under pytest 9); the served app's is checked to be the same."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    doc: dict[str, Any] = create_app(settings, create_engine("postgresql+psycopg://")).openapi()
    return doc


@contextmanager
def served(postgres: Postgres, kafka_bootstrap: str) -> Iterator[tuple[FastAPI, Engine]]:
    """The app over a fresh database holding the data set (its clock in the November after it)."""
    settings = make_settings(postgres.fresh(), kafka_bootstrap, manage_token=MANAGE_TOKEN)
    ensure_topics(settings)
    engine = make_engine(settings.require_database_url())
    with engine.begin() as conn:
        apply_catalog(conn, CATALOG.read_text(), str(CATALOG))
    store(engine, EVENTS)
    aggregate(engine)
    add_dead_letter(engine, b"\x00\xff" + MARKUP.encode(), f"not JSON: {SQL}")
    app = create_app(settings, engine, clock=Clock(utc(2026, 11, 5, 10)))
    # An improvement and a review: the documented examples (no lifespan: it would close the
    # app's producer on leaving).
    client = TestClient(app)
    schemas = app.openapi()["components"]["schemas"]
    for path, model in (("/v1/improvements", "ImprovementCreate"), ("/v1/reviews", "ReviewCreate")):
        example = schemas[model]["examples"][0]
        created = client.post(path, json=example, headers=ADMIN)
        assert created.status_code == 201, created.text
    try:
        yield app, engine
    finally:
        app.state.publisher.close()
        engine.dispose()


@contextmanager
def listening(app: FastAPI, header_timeout: float = 10, body_timeout: float = 60) -> Iterator[str]:
    """`app` served as `itsm-metrics api` serves it (uvicorn, services/api/server.py) on a free
    port of this host, in a thread; yields its base URL. No lifespan: the caller owns the app's
    producer."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=protocol(header_timeout, body_timeout),
        lifespan="off",
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=10, what="uvicorn to listen")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
