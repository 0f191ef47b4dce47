"""The schema comes only from Alembic: migrations and the table metadata must agree."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from shared.db import alembic_config, check_migrated, make_engine, metadata
from tests.conftest import Postgres


def test_migrations_match_the_table_metadata(postgres: Postgres) -> None:
    engine = make_engine(postgres.fresh())
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []


def test_downgrade_to_base_and_up_again(postgres: Postgres) -> None:
    url = postgres.fresh()
    cfg = alembic_config(url)
    command.downgrade(cfg, "base")  # type: ignore[arg-type]
    engine = make_engine(url)
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    command.upgrade(cfg, "head")  # type: ignore[arg-type]
    check_migrated(engine)  # raises unless at head
    assert {"events", "dead_letters", "tickets", "indicator_values", "dirty_windows"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()
