"""Scheduler jobs: claim dirty windows, recompute them, record freshness. Several aggregator
processes may run: each window is claimed by one of them (advisory lock + SKIP LOCKED)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from services.aggregator.compute import recompute_window
from services.aggregator.metrics import AggregatorMetrics
from services.aggregator.windows import WINDOW_KINDS, window_end, window_start
from services.collector.store import mark_dirty
from shared.settings import Settings

log = logging.getLogger("itsm.aggregator")

_PENDING = text(
    """
    SELECT window_kind, window_start FROM dirty_windows
    GROUP BY window_kind, window_start ORDER BY min(id) LIMIT :limit
    """
)
_CLAIM = text(
    """
    SELECT id, first_received_at FROM dirty_windows
    WHERE window_kind = :kind AND window_start = :start
    FOR UPDATE SKIP LOCKED
    """
)
_LOCK = text("SELECT pg_try_advisory_xact_lock(hashtext('itsm-window'), hashtext(:key))")
_DONE = text("DELETE FROM dirty_windows WHERE id = ANY(:ids)")


class Aggregator:
    def __init__(
        self, settings: Settings, engine: Engine, metrics: AggregatorMetrics | None = None
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = metrics or AggregatorMetrics()
        self.tz = ZoneInfo(settings.reporting_timezone)

    def recompute_dirty(self, limit: int = 500) -> int:
        """One pass over pending dirty windows; returns how many windows were recomputed."""
        started = time.perf_counter()
        with self.engine.connect() as conn:
            pending = conn.execute(_PENDING, {"limit": limit}).all()
        done = 0
        for kind, start in pending:
            if self._recompute_one(kind, start):
                done += 1
        with self.engine.connect() as conn:
            remaining = conn.execute(text("SELECT count(*) FROM dirty_windows")).scalar_one()
        self.metrics.dirty_windows.set(remaining)
        self.metrics.run_seconds.labels("dirty_windows").observe(time.perf_counter() - started)
        if done:
            log.info(
                "recomputed dirty windows",
                extra={
                    "windows": done,
                    "remaining": remaining,
                    "ms": round((time.perf_counter() - started) * 1000),
                },
            )
        return done

    def _recompute_one(self, kind: str, start: datetime) -> bool:
        with self.engine.begin() as conn:
            if not conn.execute(_LOCK, {"key": f"{kind}:{start.isoformat()}"}).scalar():
                return False  # another aggregator is on this window
            claimed = conn.execute(_CLAIM, {"kind": kind, "start": start}).all()
            if not claimed:
                return False
            now = datetime.now(UTC)
            recompute_window(conn, kind, start, self.tz, now=now)
            conn.execute(_DONE, {"ids": [r.id for r in claimed]})
        oldest = min(r.first_received_at for r in claimed)
        self.metrics.freshness.observe(max(0.0, (datetime.now(UTC) - oldest).total_seconds()))
        return True

    def mark_since(self, since: datetime, until: datetime | None = None) -> int:
        """Mark every window from `since` to now dirty (`itsm-metrics recompute --since`)."""
        until = until or datetime.now(UTC)
        stamps: set[datetime] = set()
        for kind in WINDOW_KINDS:
            start = window_start(kind, since, self.tz)
            while start < until:
                stamps.add(start)
                start = window_end(kind, start, self.tz)
        with self.engine.begin() as conn:
            return mark_dirty(conn, "recompute", stamps, self.tz, datetime.now(UTC))

    def run(self, stop: threading.Event) -> None:
        scheduler = BackgroundScheduler(timezone=UTC)
        scheduler.add_job(
            self._safe_recompute,
            "interval",
            seconds=self.settings.aggregator_interval_seconds,
            id="dirty_windows",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )
        scheduler.start()
        log.info(
            "aggregator running", extra={"interval_s": self.settings.aggregator_interval_seconds}
        )
        try:
            stop.wait()
        finally:
            scheduler.shutdown(wait=True)
            log.info("aggregator stopped")

    def _safe_recompute(self) -> None:
        try:
            while self.recompute_dirty() > 0:
                pass  # drain a backlog without waiting for the next tick
        except DBAPIError as err:
            log.warning(
                "aggregator run failed, will retry", extra={"error": str(err).splitlines()[0][:300]}
            )
