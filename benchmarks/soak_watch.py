"""What the soak watches from outside the services while it runs: how far storing is behind
what the brokers acknowledged (the lag), when each ticket creation becomes visible to readers
(freshness, benchmarks/freshness.py), and the peak memory of every process.

The lag is counted, not asked of the broker: the events acknowledged to the soak's clients
minus the rows of the events table. (Tansu 0.6 answers `end_offsets()` wrongly, and a consumer
group's committed offsets say nothing about the HTTP path's events until they are produced.)
Every sample survives the database being away: a failed one is skipped. At the end, what the
collector counted by outcome and what the dead letters hold."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import datetime

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from benchmarks import procs
from benchmarks.faults import RestartablePostgres
from benchmarks.freshness import Seen, watch_count

LAG_EVERY = 1.0  # seconds between two counts of the events table
FRESH_EVERY = 0.1  # seconds between two polls of the count readers see
POSTGRES_EVERY = 5.0  # seconds between two samples of PostgreSQL's memory (reads every backend)

_STORED = text("SELECT count(*) FROM events")
# Tickets opened from `day0` on, as readers see them (stored points plus pending differences):
# the soak's tickets are all the tickets there are, all opened since it began.
OPENED_SINCE = text(
    """
    SELECT coalesce(sum(count), 0) FROM indicator_points
    WHERE indicator = 'ticket_opened_count' AND window_kind = 'day'
      AND window_start >= :day0 AND dimensions = '{}'
    """
)


class Watch:
    """Samples in threads until `stop()`: (monotonic time, events handed to the senders,
    acknowledged, stored) every second, from `counts()` (handed, acknowledged) and the events
    table; the count of tickets opened readers see every 100 ms; peak memory per process."""

    def __init__(
        self,
        engine: Engine,
        counts: Callable[[], tuple[int, int]],
        day0: datetime,
        postgres: RestartablePostgres,
    ) -> None:
        self.engine = engine
        self.counts = counts
        self.postgres = postgres
        self.lag: list[tuple[float, int, int, int]] = []
        self.seen: Seen = []
        self.memory = procs.PeakMemory(os.getpid(), interval=1.0, root="soak")
        self.postgres_peak_kb = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._count_stored, name="lag", daemon=True),
            threading.Thread(
                target=watch_count,
                args=(engine, OPENED_SINCE, self._stop, self.seen),
                kwargs={"every": FRESH_EVERY, "params": {"day0": day0}},
                name="freshness",
                daemon=True,
            ),
        ]

    def start(self) -> None:
        self.memory.start()
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(10)
        self.memory.stop()

    @property
    def stored(self) -> int:
        return self.lag[-1][3] if self.lag else 0

    @property
    def visible(self) -> int:
        return self.seen[-1][1] if self.seen else 0

    def _count_stored(self) -> None:
        next_postgres = 0.0
        while not self._stop.wait(LAG_EVERY):
            # Read first: the count may include a few events acknowledged in between (a lag
            # below 0 is taken as 0), and events are stored before their sender hears so too.
            handed, acked = self.counts()
            try:
                with self.engine.connect() as conn:
                    stored = int(conn.execute(_STORED).scalar_one())
            except DBAPIError:
                continue
            self.lag.append((time.monotonic(), handed, acked, stored))
            if time.monotonic() >= next_postgres:
                next_postgres = time.monotonic() + POSTGRES_EVERY
                self._sample_postgres()

    def _sample_postgres(self) -> None:
        pid = self.postgres.postmaster_pid()
        if pid is not None:
            self.postgres_peak_kb = max(self.postgres_peak_kb, procs.tree_pss_kb(pid))


def collector_counts(port: int) -> dict[str, float]:
    """The collector's own count of what it received, by outcome (stored, duplicate,
    dead_letter), from its /metrics."""
    try:
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    except httpx.HTTPError:
        return {}
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            if s.name == "itsm_collector_events_total":
                counts[s.labels["outcome"]] = counts.get(s.labels["outcome"], 0) + s.value
    return counts


_DEAD = text(
    """
    SELECT count(*) AS rows,
           count(DISTINCT raw) FILTER (WHERE position('"poison"'::bytea IN raw) > 0) AS poison,
           count(*) FILTER (WHERE position('"poison"'::bytea IN raw) = 0) AS other
    FROM dead_letters
    """
)


def dead_letters(engine: Engine) -> dict[str, int]:
    """Dead-letter rows; the distinct poison messages among them; the rows that are not."""
    with engine.connect() as conn:
        return {k: int(v) for k, v in conn.execute(_DEAD).one()._mapping.items()}
