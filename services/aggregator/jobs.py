"""Scheduler jobs: claim dirty windows, recompute them, record freshness. Several aggregator
processes may run: each window is claimed by one of them (advisory lock + SKIP LOCKED)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from services.aggregator.compute import recompute_windows
from services.aggregator.drift import update_drift
from services.aggregator.indicators import Indicator
from services.aggregator.indicators.custom import indicators_for
from services.aggregator.metrics import AggregatorMetrics
from services.aggregator.objectives import evaluate_windows
from services.aggregator.sla import evaluate_pending
from services.catalog import Catalog, CatalogCache
from services.catalog.model import OBJECTIVE_DERIVED_IDS
from services.catalog.store import DEFAULT_SHA
from shared.dirty import HOUR, mark_dirty, merge_spans
from shared.settings import Settings
from shared.windows import windows_overlapping

log = logging.getLogger("itsm.aggregator")

_CLAIM = text(
    """
    SELECT id, range_start, range_end, first_received_at FROM dirty_windows
    ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED
    """
)
# Of the windows to recompute, the ones no other aggregator is computing right now.
_LOCK = text(
    """
    SELECT k AS window_kind, s AS window_start
    FROM unnest(CAST(:kinds AS text[]), CAST(:starts AS timestamptz[])) AS t(k, s)
    WHERE pg_try_advisory_xact_lock(hashtext('itsm-window'),
                                    hashtext(k || ':' || extract(epoch FROM s)::text))
    """
)
# Windows another aggregator held, or left for the next pass, stay dirty: as the instants they
# start at, merged into ranges.
_REMARK = text(
    """
    INSERT INTO dirty_windows (scope, range_start, range_end, first_received_at)
    SELECT 'busy', a, b, :received
    FROM unnest(CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[])) AS r(a, b)
    """
)
# Windows one pass computes at the most, the newest first: a backfill of years goes in passes
# of bounded length (each its own transaction), and current windows are never behind it.
MAX_WINDOWS_PER_PASS = 2000
_DONE = text("DELETE FROM dirty_windows WHERE id = ANY(:ids)")
_REMAINING = text("SELECT count(*) FROM dirty_windows")


def catalog_params(catalog: Catalog) -> dict[str, Any]:
    """The catalog's settings the indicators' SQL reads (see compute.DEFAULT_PARAMS)."""
    return {
        "fcr_seconds": catalog.settings.first_contact_resolution_minutes * 60,
        "svc_ids": [s.id for s in catalog.services],
        "svc_customers": [s.customer for s in catalog.services],
    }


class Aggregator:
    def __init__(
        self, settings: Settings, engine: Engine, metrics: AggregatorMetrics | None = None
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = metrics or AggregatorMetrics()
        self.tz = ZoneInfo(settings.reporting_timezone)
        self._last_refresh: datetime | None = None
        self._catalogs = CatalogCache()
        self._catalog_sha = DEFAULT_SHA

    def catalog(self, conn: Connection) -> tuple[Catalog, str]:
        """The active catalog, parsed again only when another version became active."""
        catalog, sha = self._catalogs.get(conn)
        if sha != self._catalog_sha:
            self._catalog_sha = sha
            log.info("catalog loaded", extra={"sha": sha[:12], "summary": catalog.summary()})
        return catalog, sha

    def evaluate_sla(self) -> int:
        """Bring `ticket_sla` up to date (changed incidents, passed deadlines)."""
        total = 0
        while True:
            with self.engine.begin() as conn:
                catalog, sha = self.catalog(conn)
                n = evaluate_pending(conn, catalog, sha, datetime.now(UTC))
            total += n
            if n < 5000:
                return total

    def recompute_dirty(self, limit: int = 5000) -> int:
        """One pass: claim dirty marks, recompute the windows they touch in one transaction,
        delete the marks. Returns how many windows were recomputed."""
        started = time.perf_counter()
        with self.engine.begin() as conn:
            claimed = conn.execute(_CLAIM, {"limit": limit}).all()
            now = datetime.now(UTC)
            # Up to now: a window that has not begun has no points (compute.recompute_windows)
            # and is computed once the clock refresh reaches it, however far ahead it was marked.
            spans = merge_spans(
                [(r.range_start, min(r.range_end, now)) for r in claimed if r.range_start <= now]
            )
            touched = sorted(
                {w for a, b in spans for w in windows_overlapping(a, b, self.tz)},
                key=lambda w: w[1],
                reverse=True,
            )
            windows, later = touched[:MAX_WINDOWS_PER_PASS], touched[MAX_WINDOWS_PER_PASS:]
            locked: set[tuple[str, datetime]] = set()
            if windows:
                params = {"kinds": [k for k, _ in windows], "starts": [s for _, s in windows]}
                locked = {(r.window_kind, r.window_start) for r in conn.execute(_LOCK, params)}
            by_kind: dict[str, list[datetime]] = {}
            for kind, start in sorted(locked):
                by_kind.setdefault(kind, []).append(start)
            catalog, _ = self.catalog(conn)
            params = catalog_params(catalog)
            indicators = indicators_for(conn, catalog) if by_kind else []
            for kind, starts in by_kind.items():
                self._recompute(conn, catalog, indicators, kind, starts, now, params)
            if claimed:
                conn.execute(_DONE, {"ids": [r.id for r in claimed]})
                # busy elsewhere, or beyond this pass: each window's start touches it again
                left = [(s, s) for k, s in [*later, *windows] if (k, s) not in locked]
                if left:
                    ranges = merge_spans(left, gap=HOUR)
                    conn.execute(
                        _REMARK,
                        {
                            "starts": [a for a, _ in ranges],
                            "ends": [b for _, b in ranges],
                            "received": min(r.first_received_at for r in claimed),
                        },
                    )
            remaining = conn.execute(_REMAINING).scalar_one()
        self._observe(claimed, len(locked), remaining, time.perf_counter() - started)
        return len(locked)

    def _recompute(
        self,
        conn: Connection,
        catalog: Catalog,
        indicators: list[Indicator],
        kind: str,
        starts: list[datetime],
        now: datetime,
        params: dict[str, Any],
    ) -> None:
        """Indicators, then objective status from them, then the service indicators built on
        objective status (SPEC §5.3, §6.3): all in the same transaction, so each reads the
        values of this pass."""
        first = [i for i in indicators if i.id not in OBJECTIVE_DERIVED_IDS]
        derived = [i for i in indicators if i.id in OBJECTIVE_DERIVED_IDS]
        recompute_windows(conn, kind, starts, self.tz, first, now=now, params=params)
        evaluate_windows(conn, catalog, kind, starts, self.tz, now=now)
        recompute_windows(conn, kind, starts, self.tz, derived, now=now, params=params)

    def _observe(
        self, claimed: Sequence[Any], windows: int, remaining: int, elapsed: float
    ) -> None:
        finished = datetime.now(UTC)
        for r in claimed:  # one mark per stored batch: its freshness
            self.metrics.freshness.observe(
                max(0.0, (finished - r.first_received_at).total_seconds())
            )
        self.metrics.dirty_windows.set(remaining)
        self.metrics.run_seconds.labels("dirty_windows").observe(elapsed)
        if windows:
            log.info(
                "recomputed dirty windows",
                extra={
                    "windows": windows,
                    "marks": len(claimed),
                    "remaining_marks": remaining,
                    "ms": round(elapsed * 1000),
                },
            )

    def mark_since(self, since: datetime, until: datetime | None = None) -> int:
        """Mark every window from `since` to now dirty (`itsm-metrics recompute --since`)."""
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            return mark_dirty(conn, {"recompute": (set(), [(since, until or now)])}, now)

    def refresh_current(self, since: datetime, now: datetime) -> int:
        """Mark [since, now] dirty: what depends on the clock (open outages, the backlog, SLA
        targets passing) changes without events. Covering since the last run gives a window
        that just closed its final recompute."""
        with self.engine.begin() as conn:
            return mark_dirty(conn, {"clock": (set(), [(since, now)])}, now)

    def _safe_refresh(self) -> None:
        now = datetime.now(UTC)
        since, self._last_refresh = self._last_refresh or now, now
        try:
            self.refresh_current(since, now)
        except DBAPIError as err:
            self._last_refresh = since  # cover the missed stretch next time
            log.warning(
                "aggregator clock refresh failed, will retry",
                extra={"error": str(err).splitlines()[0][:300]},
            )

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
        scheduler.add_job(
            self._safe_refresh,
            "interval",
            seconds=self.settings.aggregator_refresh_seconds,
            id="clock_refresh",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )
        scheduler.add_job(
            self._safe_drift,
            "interval",
            seconds=60,
            id="drift",
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

    def drift(self) -> int:
        """Score every series' current window against its previous windows (SPEC §6.4)."""
        with self.engine.begin() as conn:
            catalog, _ = self.catalog(conn)
            return update_drift(conn, catalog, self.tz, now=datetime.now(UTC))

    def _safe_drift(self) -> None:
        started = time.perf_counter()
        try:
            self.drift()
        except DBAPIError as err:
            log.warning(
                "drift run failed, will retry", extra={"error": str(err).splitlines()[0][:300]}
            )
        self.metrics.run_seconds.labels("drift").observe(time.perf_counter() - started)

    def _safe_recompute(self) -> None:
        try:
            self.evaluate_sla()  # SLA decisions first: they mark the windows to recompute
            while self.recompute_dirty() > 0:
                pass  # drain a backlog without waiting for the next tick
        except DBAPIError as err:
            log.warning(
                "aggregator run failed, will retry", extra={"error": str(err).splitlines()[0][:300]}
            )
