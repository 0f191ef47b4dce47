"""Session fixtures: one real PostgreSQL and one real Kafka-protocol broker for the whole run
(embedded unless ITSM_DATABASE_URL / ITSM_KAFKA_BOOTSTRAP_SERVERS point at external ones).
Tests are isolated by database (cloned from a migrated template) and by topic prefix."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import Engine, make_url

from services.local.engines import EmbeddedBroker, EmbeddedPostgres
from shared.db import make_engine, migrate
from shared.kafka import ensure_topics
from shared.settings import Settings

# One per pytest-xdist worker: on an external server (ITSM_DATABASE_URL) the workers share it.
TEMPLATE = f"itsm_template{os.environ.get('PYTEST_XDIST_WORKER', '')}"


def pytest_configure(config: pytest.Config) -> None:
    # A stopped run (a CI time limit, `timeout`) unwinds like Ctrl-C, so the session fixtures
    # stop the embedded engines instead of leaving a PostgreSQL server behind.
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


_counter = itertools.count(1)


class Postgres:
    """Where the test server is and how to make a fresh, migrated database on it."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = make_url(admin_url)

    def url_for(self, database: str) -> str:
        return self.admin_url.set(database=database).render_as_string(hide_password=False)

    def _admin(self) -> psycopg.Connection[Any]:
        u = self.admin_url
        return psycopg.connect(
            host=u.host,
            port=u.port,
            user=u.username,
            password=u.password,
            dbname=u.database or "postgres",
            autocommit=True,
        )

    def create_template(self) -> None:
        with self._admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        migrate(self.url_for(TEMPLATE))

    def allow_connections(self, url: str, allowed: bool) -> None:
        """Let clients connect to the database of `url` again, or end its sessions and refuse
        new ones (superusers included): the database as a running service sees it when its
        server is gone."""
        name = make_url(url).database
        with self._admin() as conn:
            conn.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS {str(allowed).lower()}")
            if not allowed:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (name,),
                )

    def fresh(self, *, migrated: bool = True) -> str:
        name = f"itsm_test_{os.getpid()}_{next(_counter)}"
        with self._admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            template = f" TEMPLATE {TEMPLATE}" if migrated else ""
            conn.execute(f"CREATE DATABASE {name}{template}")
        return self.url_for(name)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    external = os.environ.get("ITSM_DATABASE_URL")
    server = None
    if external:
        pg = Postgres(Settings(database_url=external).require_database_url())
    else:
        server = EmbeddedPostgres(tmp_path_factory.mktemp("postgres") / "data").start()
        pg = Postgres(server.url)
    pg.create_template()
    yield pg
    if server is not None:
        server.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    external = os.environ.get("ITSM_KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    broker = EmbeddedBroker().start()
    yield broker.bootstrap
    broker.stop()


@pytest.fixture
def db_url(postgres: Postgres) -> str:
    return postgres.fresh()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def make_settings(db_url: str, kafka: str, **overrides: Any) -> Settings:
    n = next(_counter)
    values: dict[str, Any] = {
        "database_url": db_url,
        "kafka_bootstrap_servers": kafka,
        "topic_prefix": f"t{os.getpid()}x{n}.",
        "consumer_group": f"itsm-test-{os.getpid()}-{n}",
        "ingest_token": "ingest-secret",
        "admin_token": "admin-secret",
        "aggregator_interval_seconds": 0.2,
        # No slower cadence, and every hour kept: tests read what they just aggregated, and
        # their fixtures live in October 2026 whatever the date of the run.
        "aggregator_slow_seconds": 0,
        "hour_retention_days": 36500,
        "read_cache_seconds": 0,  # a read reads what the test just stored
        # A scrape serves the aggregator's snapshot: tests publish it (helpers.publish) right
        # before scraping; an aggregator loop renders one every half second.
        "exposition_interval_seconds": 0.5,
        "collector_batch_size": 500,
        "data_dir": Path("/nonexistent-test-data-dir"),
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(db_url: str, kafka_bootstrap: str) -> Settings:
    s = make_settings(db_url, kafka_bootstrap)
    ensure_topics(s)
    return s


@pytest.fixture
def collector_settings(postgres: Postgres, kafka_bootstrap: str) -> Settings:
    """Settings for tests that run collector processes: small batches, many of them."""
    s = make_settings(postgres.fresh(), kafka_bootstrap, collector_batch_size=50)
    ensure_topics(s)
    return s


@pytest.fixture
def collector_engine(collector_settings: Settings) -> Iterator[Engine]:
    eng = make_engine(collector_settings.require_database_url())
    yield eng
    eng.dispose()


def wait_until(
    predicate: Callable[[], Any],
    timeout: float = 30.0,
    interval: float = 0.1,
    what: str = "condition",
    diagnostics: Callable[[], str] | None = None,
) -> Any:
    """Poll `predicate` until it returns a truthy value; fail the test after `timeout` (with
    what `diagnostics` returns, e.g. the tails of the processes' logs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    detail = f"\n{diagnostics()}" if diagnostics is not None else ""
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{detail}")


class Running:
    """A service object running in a background thread until the test module ends."""

    def __init__(self, target: Callable[[], None], stop: Callable[[], None]) -> None:
        self._stop = stop
        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stop()
        self.thread.join(30)
        assert not self.thread.is_alive(), "service thread did not stop"
