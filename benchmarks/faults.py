"""Engines of a run's own that it can take away and give back while the services run: a broker
that hangs and comes back, a PostgreSQL server that crashes and restarts on the same port and
data. The fault tests (tests/faults) and the soak (benchmarks/soak.py) use them; the engines a
test session shares must stay up for every other test."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from services.local.engines import EmbeddedBroker, EmbeddedPostgres
from shared.db import migrate


class FreezableBroker(EmbeddedBroker):
    """A Tansu broker whose `freeze()` stops its process (SIGSTOP): connections stay open and
    nothing answers, as a hung broker; `thaw()` lets it go on with its log intact. This is the
    only broker outage the embedded Tansu allows: it keeps its log in memory, so a stopped and
    restarted one would have lost every record."""

    _frozen: bool = False

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("the broker is not running")
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


@dataclass
class RestartablePostgres:
    """A PostgreSQL server on a port and data directory that survive `crash()` and `start()`:
    an outage the clients see as the real thing (connections reset, then refused), after which
    the server recovers its data from its WAL."""

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
        """A new database, migrated to head; its URL."""
        with psycopg.connect(
            host="127.0.0.1", port=self.server.port, user="postgres", autocommit=True
        ) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        url = self.url(name)
        migrate(url)
        return url

    def postmaster_pid(self) -> int | None:
        """The running server's main process, None when it is down."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None

    def crash(self, timeout: float = 30) -> None:
        """Immediate shutdown (SIGQUIT to the postmaster, what `pg_ctl -m immediate` sends):
        every backend ends at once, nothing is flushed, the next start runs crash recovery."""
        pid = self.postmaster_pid()
        if pid is None:
            raise RuntimeError("PostgreSQL is not running")
        os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgreSQL (pid {pid}) still up {timeout:.0f} s after SIGQUIT")
            time.sleep(0.1)

    def stop(self) -> None:
        self.server.stop(force=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
