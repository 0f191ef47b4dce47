"""Fixtures shared by the aggregator's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from services.catalog import apply_catalog
from shared.db import make_engine
from tests.aggregator.test_oracle import CATALOG
from tests.conftest import Postgres


@pytest.fixture(scope="module")
def merge_db(postgres: Postgres) -> Iterator[Engine]:
    """A database of the module's own under the oracle's catalog (merge and pending tests)."""
    eng = make_engine(postgres.fresh())
    with eng.begin() as conn:
        apply_catalog(conn, CATALOG, "merge.yaml")
    yield eng
    eng.dispose()
