"""The `/metrics` snapshot (SPEC §8): the aggregator renders the indicator, objective and drift
series (exposition.py) into Prometheus text and stores it in `exposition_snapshot`; the api
serves the stored bytes. At a month of 1,000,000 tickets a rendering costs seconds of CPU: done
here, every ITSM_EXPOSITION_INTERVAL_SECONDS, it never holds a scrape behind it.

When the read fails nothing is written: the last snapshot ages until the api calls it stale, so
a broken database never reads as zero backlog. Several aggregators may render; a rendering
skips when another one stored a snapshot recently, and an older rendering never replaces a
newer one."""

from __future__ import annotations

import gzip
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.registry import Collector
from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from services.aggregator.exposition import (
    MAX_SERIES,
    ImprovementCollector,
    IndicatorCollector,
    ObjectiveCollector,
)
from services.catalog import CatalogCache
from shared.db import INDICATORS_SNAPSHOT, exposition_snapshot

log = logging.getLogger("itsm.aggregator.snapshot")


@dataclass(frozen=True)
class Rendering:
    """One rendering of the indicator, objective and drift series."""

    body: bytes
    gzipped: bytes  # the body as stored
    series: int  # sample lines
    dropped: int  # indicator series left out by the series budget
    seconds: float  # reading and formatting


@dataclass(frozen=True)
class Snapshot:
    """A stored rendering: `rendered_at` is the database's clock when its read began."""

    rendered_at: datetime
    rendering: Rendering


def render(
    engine: Engine,
    tz: ZoneInfo,
    catalogs: CatalogCache,
    clock: Callable[[], datetime],
    max_series: int = MAX_SERIES,
) -> Rendering:
    """The series as Prometheus text, the windows current at `clock()`. Raises DBAPIError when
    a read fails (nothing half-read is rendered)."""
    started = time.perf_counter()
    collectors = snapshot_collectors(engine, tz, catalogs, clock, max_series)
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    body = generate_latest(registry)
    gzipped = gzip.compress(body, compresslevel=6, mtime=0)
    dropped = sum(c.dropped for c in collectors if isinstance(c, IndicatorCollector))
    return Rendering(body, gzipped, sample_lines(body), dropped, time.perf_counter() - started)


def snapshot_collectors(
    engine: Engine,
    tz: ZoneInfo,
    catalogs: CatalogCache,
    clock: Callable[[], datetime],
    max_series: int = MAX_SERIES,
) -> list[Collector]:
    """What the snapshot renders. Their `describe()` names every family it can hold (custom
    measurements aside): the deploy tests check dashboards and rules against it."""
    return [
        IndicatorCollector(engine, tz, catalogs, clock, max_series=max_series),
        ObjectiveCollector(engine, tz, clock),
        ImprovementCollector(engine),
    ]


def sample_lines(body: bytes) -> int:
    """Sample lines of a text exposition: every line but the `#` ones (counted in C, not by
    splitting megabytes of text)."""
    lines = body.count(b"\n") + (0 if not body or body.endswith(b"\n") else 1)
    return lines - body.count(b"\n#") - body.startswith(b"#")


class SnapshotWriter:
    """Renders and stores the snapshot named `name` (the aggregator's `exposition` job)."""

    def __init__(
        self,
        engine: Engine,
        tz: ZoneInfo,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_series: int = MAX_SERIES,
        name: str = INDICATORS_SNAPSHOT,
    ) -> None:
        self.engine = engine
        self.tz = tz
        self.clock = clock
        self.max_series = max_series
        self.name = name
        self.catalogs = CatalogCache()

    def publish(self, skip_younger_than: float = 0.0) -> Snapshot | None:
        """Render and store a snapshot; None when a snapshot younger than `skip_younger_than`
        seconds is stored already (another aggregator's), or when the database could not be
        read or written (logged; the stored snapshot stays as it was)."""
        stage = "read"
        try:
            started_at, age = self._database_time()
            if age is not None and age < skip_younger_than:
                log.debug(
                    "exposition snapshot is recent, not rendered",
                    extra={"snapshot": self.name, "age_s": round(age, 1)},
                )
                return None
            rendering = render(self.engine, self.tz, self.catalogs, self.clock, self.max_series)
            stage = "write"
            with self.engine.begin() as conn:
                store_snapshot(conn, self.name, started_at, rendering)
        except DBAPIError as err:
            log.warning(
                "exposition snapshot not rendered, the stored one ages",
                extra={
                    "snapshot": self.name,
                    "stage": stage,
                    "windows_at": self.clock().isoformat(),
                    "error": str(getattr(err, "orig", err)).strip().splitlines()[0][:300],
                },
            )
            return None
        log.debug(
            "exposition snapshot stored",
            extra={
                "snapshot": self.name,
                "series": rendering.series,
                "dropped": rendering.dropped,
                "bytes": len(rendering.body),
                "ms": round(rendering.seconds * 1000),
            },
        )
        return Snapshot(started_at, rendering)

    def _database_time(self) -> tuple[datetime, float | None]:
        """The database's clock now, and the age of the stored snapshot (None: none yet)."""
        s = exposition_snapshot.c
        stored = select(s.rendered_at).where(s.name == self.name).scalar_subquery()
        now = func.clock_timestamp()
        with self.engine.connect() as conn:
            row = conn.execute(select(now.label("now"), stored.label("rendered_at"))).one()
        age = None if row.rendered_at is None else (row.now - row.rendered_at).total_seconds()
        return row.now, age


def store_snapshot(
    conn: Connection, name: str, rendered_at: datetime, rendering: Rendering
) -> None:
    """Upsert the snapshot, unless one whose rendering began later is stored already (two
    aggregators rendering at once: the later read wins whichever finishes last)."""
    stmt = insert(exposition_snapshot).values(
        name=name,
        rendered_at=rendered_at,
        body_gzip=rendering.gzipped,
        series=rendering.series,
        dropped=rendering.dropped,
        render_seconds=rendering.seconds,
    )
    new = stmt.excluded
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[exposition_snapshot.c.name],
            set_={
                "rendered_at": new.rendered_at,
                "body_gzip": new.body_gzip,
                "series": new.series,
                "dropped": new.dropped,
                "render_seconds": new.render_seconds,
            },
            where=exposition_snapshot.c.rendered_at < new.rendered_at,
        )
    )
