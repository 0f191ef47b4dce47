"""What the fault tests share: engines of their own that a test can freeze, stop and restart
(the session's engines must stay up for every other test), the services as processes a test
can kill and restart one by one, and loads that keep events flowing over Kafka and over
`POST /v1/events` while a fault happens. The invariants checked at the end of every fault are
in tests/faults/invariants.py."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from services.local.engines import EmbeddedBroker, EmbeddedPostgres, free_port
from shared.db import migrate
from shared.settings import Settings
from tests.conftest import wait_until
from tests.e2e.conftest import service_env, spawn, stop

SERVICES = ("collector", "aggregator", "api")
TOKEN = "ingest-secret"


# --- engines a test owns ---------------------------------------------------------------------


class FreezableBroker(EmbeddedBroker):
    """A Tansu broker of one test's own. `freeze()` stops its process (SIGSTOP): connections
    stay open and nothing answers, as a hung broker; `thaw()` lets it go on with its log intact.
    (A stopped and restarted Tansu loses its log: this build has memory storage only.)"""

    _frozen: bool = False

    @property
    def pid(self) -> int:
        assert self._proc is not None, "the broker is not running"
        return self._proc.pid

    def freeze(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)
        self._frozen = True

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        self._frozen = False

    def stop(self) -> None:
        if self._frozen:
            self.thaw()  # a stopped process does not act on SIGTERM
        super().stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[FreezableBroker]:
    broker = FreezableBroker(log_path=tmp_path / "broker.log")
    broker.start()
    yield broker
    broker.stop()


@dataclass
class RestartablePostgres:
    """A PostgreSQL server of one test's own, on a port and data directory that survive
    `crash()` and `start()`: an outage the clients see as the real thing (connections reset,
    then refused), after which the server recovers its data from its WAL."""

    data: Path
    server: EmbeddedPostgres = field(init=False)

    def __post_init__(self) -> None:
        self.server = EmbeddedPostgres(self.data)

    def start(self) -> None:
        self.server.start()  # the same port from the second start on

    def url(self, database: str = "itsm") -> str:
        return (
            make_url(self.server.url).set(database=database).render_as_string(hide_password=False)
        )

    def create_database(self, name: str = "itsm") -> str:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.server.port, user="postgres", autocommit=True
        ) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        url = self.url(name)
        migrate(url)
        return url

    def crash(self) -> None:
        """Immediate shutdown (SIGQUIT to the postmaster, what `pg_ctl -m immediate` sends):
        every backend ends at once, nothing is flushed, the next start runs crash recovery."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGQUIT)
        wait_until(lambda: not _alive(pid), timeout=30, what="PostgreSQL to stop")

    def stop(self) -> None:
        self.server.stop(force=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[RestartablePostgres]:
    pg = RestartablePostgres(tmp_path / "pgdata")
    pg.start()
    yield pg
    pg.stop()


# --- the services as processes -------------------------------------------------------------


class Stack:
    """The collector, the aggregator and the api, each its own process on `settings`' database,
    broker, topics and group, with the short cadences of tests.e2e.conftest.services; a test may
    kill (SIGKILL) and restart each. Every process connects to PostgreSQL with its name as
    `application_name`, so a test sees in pg_stat_activity what each one is doing."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.settings = settings
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def env(self, name: str) -> dict[str, str]:
        s = self.settings
        database = make_url(s.require_database_url()).update_query_dict(
            {"application_name": f"itsm-{name}"}
        )
        return service_env(
            ITSM_DATABASE_URL=database.render_as_string(hide_password=False),
            ITSM_KAFKA_BOOTSTRAP_SERVERS=s.require_kafka(),
            ITSM_TOPIC_PREFIX=s.topic_prefix,
            ITSM_CONSUMER_GROUP=s.consumer_group,
            ITSM_COLLECTOR_BATCH_SIZE=str(s.collector_batch_size),
            ITSM_HOUR_RETENTION_DAYS=str(s.hour_retention_days),
            ITSM_INGEST_TOKEN=TOKEN,
            ITSM_API_PORT=str(self.port),
            ITSM_AGGREGATOR_INTERVAL_SECONDS="0.5",
            ITSM_AGGREGATOR_SLOW_SECONDS="2",
            ITSM_EXPOSITION_INTERVAL_SECONDS="1",
        )

    def start(self, *names: str, **env: str) -> None:
        """Start these services (all by default), with `env` added to their environment (e.g.
        ITSM_FAULT, shared/faults.py)."""
        for name in names or SERVICES:
            self.procs[name] = spawn([name], {**self.env(name), **env}, self.log)

    def kill(self, name: str) -> None:
        """SIGKILL: no handler runs, nothing is flushed or committed."""
        proc = self.procs[name]
        proc.kill()
        assert proc.wait(10) == -signal.SIGKILL

    def restart(self, name: str) -> None:
        """Start `name` again (after a kill or a crash); the api is waited for until ready."""
        assert self.procs[name].poll() is not None, f"{name} is still running"
        self.start(name)
        if name == "api":
            self.wait_ready()

    def assert_running(self) -> None:
        for name, p in self.procs.items():
            assert p.poll() is None, f"{name} exited with {p.returncode}: {self.tail()}"

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 60) -> None:
        def up() -> bool:
            self.assert_running()
            return self.ready()

        wait_until(up, timeout=timeout, what="the api to be ready", diagnostics=self.tail)

    def stop(self) -> dict[str, int]:
        """SIGTERM to every process at once, then each one's exit status."""
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        return {name: stop(p) for name, p in self.procs.items()}

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@contextlib.contextmanager
def running(
    settings: Settings, tmp_path: Path, env: dict[str, dict[str, str]] | None = None
) -> Iterator[Stack]:
    """The three services up and the api ready, each with its `env` added (by service name);
    at the end each must stop by itself with exit 0 (whatever was killed and restarted on the
    way)."""
    stack = Stack(settings, tmp_path / "services.log")
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
