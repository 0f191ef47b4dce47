"""PostgreSQL stops under a running api (issue 12): `/metrics` says the snapshot is stale and
leaves every indicator series out — never a zero that reads as "no backlog, no major
incident" — and serves them again when the database is back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from services.local.engines import EmbeddedPostgres, free_port
from shared.db import make_engine, migrate
from tests.conftest import make_settings, wait_until
from tests.e2e.conftest import service_env, spawn, stop
from tests.helpers import aggregate, publish, real_clock, store, ticket_event

pytestmark = pytest.mark.e2e


def _metrics(url: str) -> str:
    try:
        r = httpx.get(f"{url}/metrics", timeout=5)
    except httpx.HTTPError:
        return ""
    return r.text if r.status_code == 200 else ""


def _series(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name)]


def _has_data(engine: Engine) -> None:
    now = datetime.now(UTC)
    store(engine, [ticket_event("DB-1", now, "new", service="email")])
    aggregate(engine, clock=real_clock)


def test_metrics_are_stale_without_zeros_while_postgresql_is_stopped(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    # A server of its own: the session's is shared with every other test.
    server = EmbeddedPostgres(tmp_path / "pg").start()
    try:
        migrate(server.url)
        settings = make_settings(server.url, kafka_bootstrap)
        engine = make_engine(server.url)
        _has_data(engine)
        publish(engine, settings, real_clock)
        engine.dispose()
        port = free_port()
        api = spawn(
            ["api"],
            service_env(
                ITSM_DATABASE_URL=server.url,
                ITSM_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
                ITSM_API_PORT=str(port),
            ),
            tmp_path / "api.log",
        )
        url = f"http://127.0.0.1:{port}"
        try:
            served = wait_until(
                lambda: "itsm_ticket_opened_count{" in (t := _metrics(url)) and t,
                timeout=60,
                what="the api to serve the indicator series",
            )
            assert _series(served, "itsm_exposition_stale ") == ["itsm_exposition_stale 0.0"]
            assert _series(served, "itsm_incident_backlog_count{")  # a series to lose below

            server.stop()
            stale = wait_until(
                lambda: "itsm_exposition_stale 1.0" in (t := _metrics(url)) and t,
                timeout=30,
                what="/metrics to say stale once PostgreSQL is gone",
            )
            for name in (
                "itsm_ticket_opened_count",
                "itsm_incident_backlog_count",
                "itsm_major_incident_count",
                "itsm_objective_status",
            ):
                assert not _series(stale, name), f"{name} served without a database"
            # the api's own metrics are still there: the scrape itself works
            assert _series(stale, "itsm_exposition_age_seconds ")

            server.start()
            back = wait_until(
                lambda: "itsm_exposition_stale 0.0" in (t := _metrics(url)) and t,
                timeout=60,
                what="/metrics to serve the snapshot again",
            )
            assert _series(back, "itsm_ticket_opened_count{")
        finally:
            assert stop(api) == 0, (tmp_path / "api.log").read_text()[-2000:]
    finally:
        server.stop()
