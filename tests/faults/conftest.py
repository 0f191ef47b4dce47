"""What the fault tests share: engines of their own that a test can freeze, stop and restart
(the session's engines must stay up for every other test), the services as processes a test
can kill and restart one by one (both in benchmarks/, which the soak runs too), and small
waits. The loads that keep events flowing over Kafka and over `POST /v1/events` while a fault
happens are in tests/faults/load.py; the invariants checked at the end of every fault in
tests/faults/invariants.py."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from benchmarks.faults import FreezableBroker, RestartablePostgres
from benchmarks.stack import SERVICES, Stack
from shared.settings import Settings
from tests.conftest import wait_until
from tests.helpers import counts

TOKEN = "ingest-secret"


# --- engines a test owns (benchmarks/faults.py) ---------------------------------------------


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[FreezableBroker]:
    broker = FreezableBroker(log_path=tmp_path / "broker.log")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[RestartablePostgres]:
    pg = RestartablePostgres(tmp_path / "pgdata")
    pg.start()
    yield pg
    pg.stop()


# --- the services as processes (benchmarks/stack.py) ---------------------------------------

# The short cadences of tests.e2e.conftest.services, and the ingest token of TOKEN.
TEST_ENV = {
    "ITSM_INGEST_TOKEN": TOKEN,
    "ITSM_AGGREGATOR_INTERVAL_SECONDS": "0.5",
    "ITSM_AGGREGATOR_SLOW_SECONDS": "2",
    "ITSM_EXPOSITION_INTERVAL_SECONDS": "1",
}


@contextlib.contextmanager
def running(
    settings: Settings, tmp_path: Path, env: dict[str, dict[str, str]] | None = None
) -> Iterator[Stack]:
    """The three services up and the api ready, each with its `env` added (by service name);
    at the end each must stop by itself with exit 0 (whatever was killed and restarted on the
    way)."""
    stack = Stack(settings, tmp_path / "services.log", TEST_ENV)
    for name in SERVICES:
        stack.start(name, **(env or {}).get(name, {}))
    try:
        stack.wait_ready()
        yield stack
    except BaseException:
        stack.stop()
        raise
    codes = stack.stop()
    assert codes == dict.fromkeys(stack.procs, 0), stack.tail()


# --- small waits ----------------------------------------------------------------------------


def waited(seconds: float, check: Callable[[], None] | None = None, every: float = 0.5) -> None:
    """Sleep `seconds`, calling `check` every `every` seconds on the way (e.g. that no service
    died while an engine is away)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if check is not None:
            check()
        time.sleep(min(every, left))


def wait_stored(stack: Stack, engine: Engine, n: int, timeout: float) -> None:
    """Wait until `n` distinct events are stored (rows of `events`)."""
    wait_until(
        lambda: counts(engine)["events"] == n,
        timeout=timeout,
        what=f"the {n} distinct events stored",
        diagnostics=stack.tail,
    )


def wait_serving(stack: Stack, start: datetime, opened: int, timeout: float = 60) -> None:
    """Wait until the api serves `opened` incidents opened in the day from `start` (the sum of
    `ticket_opened_count`'s hour points): the aggregator computed what the collector stored."""

    def served() -> float | None:
        try:
            response = httpx.get(
                f"{stack.url}/v1/indicators/ticket_opened_count",
                params={
                    "window": "hour",
                    "start": start.isoformat(),
                    "end": (start + timedelta(days=1)).isoformat(),
                },
                timeout=10,
            )
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        return float(sum(p["value"] or 0 for p in response.json()["points"]))

    wait_until(
        lambda: served() == opened,
        timeout=timeout,
        what=f"the api serving {opened} incidents opened",
        diagnostics=stack.tail,
    )
