"""`/metrics` of the stored indicators (SPEC §8): the api serves the snapshot the aggregator keeps
(services/aggregator/snapshot.py) and never computes a series. A scrape reads the snapshot's
`rendered_at` and size (one row by its key, a few bytes); the body, stored gzipped (9 MB of text
at a million tickets a month, 0.7 MB gzipped), is fetched again only when another rendering was
stored, and kept in memory between scrapes.

A snapshot older than ITSM_EXPOSITION_STALE_SECONDS, none at all, or one that cannot be read is
not served: the indicator, objective and drift series are absent and `itsm_exposition_stale` is
1, never a zero that would read as an empty backlog. `itsm_exposition_age_seconds` is the
snapshot's age on the database's clock; while the database cannot be read, the age of the copy
last read, counted on from then; NaN when no snapshot was ever read."""

from __future__ import annotations

import gzip
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Float, cast, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from shared.db import INDICATORS_SNAPSHOT, exposition_snapshot

log = logging.getLogger("itsm.api.exposition")

_s = exposition_snapshot.c
_AGE = cast(func.extract("epoch", func.clock_timestamp() - _s.rendered_at), Float).label("age")
_SIZE = func.octet_length(_s.body_gzip).label("size")  # the TOAST header: the body is not read


@dataclass(frozen=True)
class Served:
    """What one scrape serves of the snapshot: its body (empty when stale) and its state."""

    body: bytes
    age: float  # seconds; NaN when no snapshot was ever read
    stale: bool


class SnapshotReader:
    """The stored snapshot for scrapes, its body cached until another rendering is stored."""

    def __init__(
        self,
        engine: Engine,
        stale_after: float,
        name: str = INDICATORS_SNAPSHOT,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.stale_after = stale_after
        self.name = name
        self.monotonic = monotonic
        self._lock = threading.Lock()  # one reader at a time: a new body is fetched once
        self._key: tuple[datetime, int] | None = None  # (rendered_at, size) of the cached body
        self._body = b""
        self._age: tuple[float, float] | None = None  # (age, monotonic) at the last read
        self._failing = False

    def read(self) -> Served:
        with self._lock:
            try:
                age = self._refresh()
            except DBAPIError as err:
                self._unreadable(err)
                return Served(b"", self._age_now(), stale=True)
            if self._failing:
                self._failing = False
                log.info("exposition snapshot readable again", extra={"snapshot": self.name})
            if age is None:
                return Served(b"", math.nan, stale=True)
            stale = age > self.stale_after
            return Served(b"" if stale else self._body, age, stale)

    def _refresh(self) -> float | None:
        """Read the snapshot's head, and its body when it changed and is fresh; its age (None
        when there is no snapshot)."""
        with self.engine.connect() as conn:
            head = conn.execute(
                select(_s.rendered_at, _SIZE, _AGE).where(_s.name == self.name)
            ).one_or_none()
            if head is None:
                self._key, self._body, self._age = None, b"", None
                return None
            age = float(head.age)
            if (head.rendered_at, head.size) != self._key and age <= self.stale_after:
                age = self._fetch(conn)
        self._age = (age, self.monotonic())
        return age

    def _fetch(self, conn: Connection) -> float:
        """Cache the body; the row as a whole, so the body and the key it is cached under are
        one version whatever was stored since the head was read. Returns its age."""
        row = conn.execute(
            select(_s.rendered_at, _SIZE, _AGE, _s.body_gzip).where(_s.name == self.name)
        ).one()
        self._key, self._body = (row.rendered_at, row.size), gzip.decompress(row.body_gzip)
        log.debug(
            "exposition snapshot fetched",
            extra={"snapshot": self.name, "bytes": row.size, "rendered_at": str(row.rendered_at)},
        )
        return float(row.age)

    def _age_now(self) -> float:
        """The age of the copy last read, counted on; NaN when none was."""
        if self._age is None:
            return math.nan
        age, at = self._age
        return age + (self.monotonic() - at)

    def _unreadable(self, err: DBAPIError) -> None:
        if not self._failing:  # one line when it starts; the gauges say it on every scrape
            self._failing = True
            log.warning(
                "exposition snapshot cannot be read, indicator series left out of /metrics",
                extra={
                    "snapshot": self.name,
                    "error": str(getattr(err, "orig", err)).strip().splitlines()[0][:300],
                },
            )


class ExpositionStatus(Collector):
    """`itsm_exposition_age_seconds` and `itsm_exposition_stale` of one scrape."""

    def __init__(self, served: Served) -> None:
        self.served = served

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        age = GaugeMetricFamily(
            "itsm_exposition_age_seconds",
            "Age of the indicator snapshot the aggregator rendered for /metrics (NaN: none read)",
        )
        stale = GaugeMetricFamily(
            "itsm_exposition_stale",
            "1 when /metrics leaves out indicator, objective and drift series because their "
            "snapshot is stale, missing or unreadable; 0 when it serves them",
        )
        return age, stale

    def collect(self) -> Iterator[Metric]:
        age, stale = self._families()
        age.add_metric([], self.served.age)
        stale.add_metric([], 1.0 if self.served.stale else 0.0)
        yield from (age, stale)
