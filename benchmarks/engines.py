"""Engines for a benchmark run: embedded unless ITSM_DATABASE_URL / ITSM_KAFKA_BOOTSTRAP_SERVERS
name external ones."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from services.local.engines import EmbeddedBroker, EmbeddedPostgres
from shared.db import migrate
from shared.settings import Settings


@contextlib.contextmanager
def engines(name: str) -> Iterator[tuple[str, str]]:
    """(database url of a fresh, migrated database, kafka bootstrap servers)."""
    pg = broker = None
    tmp = Path(tempfile.mkdtemp(prefix="itsm-bench-"))
    try:
        admin = os.environ.get("ITSM_DATABASE_URL")
        if admin:
            admin = Settings(_env_file=None, database_url=admin).require_database_url()  # type: ignore[call-arg]
        else:
            pg = EmbeddedPostgres(tmp / "pg").start()
            admin = pg.url
        kafka = os.environ.get("ITSM_KAFKA_BOOTSTRAP_SERVERS")
        if not kafka:
            broker = EmbeddedBroker().start()
            kafka = broker.bootstrap
        u = make_url(admin)
        db = f"bench_{name}_{os.getpid()}"
        with psycopg.connect(
            host=u.host,
            port=u.port,
            user=u.username,
            password=u.password,
            dbname=u.database or "postgres",
            autocommit=True,
        ) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {db}")
            conn.execute(f"CREATE DATABASE {db}")
        url = u.set(database=db).render_as_string(hide_password=False)
        migrate(url)
        yield url, kafka
    finally:
        if broker is not None:
            broker.stop()
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
