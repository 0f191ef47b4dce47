"""Scheduler jobs: turn dirty marks into queued windows, compute them unit by unit, record
freshness, render the /metrics snapshot (snapshot.py). Several aggregator processes may run:
each unit is computed by one of them (advisory lock + SKIP LOCKED), and each unit is its own
transaction, so a backfill of years goes in bounded steps with the current windows taken first
between them, and a unit that fails is retried and then parked without holding back the
others."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from services.aggregator import changes, pending, queue
from services.aggregator.compute import catalog_params
from services.aggregator.drift import update_drift
from services.aggregator.indicators.custom import indicators_for
from services.aggregator.metrics import AggregatorMetrics
from services.aggregator.policy import hours_kept_since
from services.aggregator.queue import Horizon, Row, Unit
from services.aggregator.sla import evaluate_pending
from services.aggregator.snapshot import Snapshot, SnapshotWriter
from services.aggregator.units import Context, process_days, process_windows, queue_later
from services.catalog import Catalog, CatalogCache
from services.catalog.store import DEFAULT_SHA
from shared.db import unreachable
from shared.dirty import mark_dirty
from shared.settings import Settings
from shared.windows import window_end

log = logging.getLogger("itsm.aggregator")

# Days whose end lies within this much of now keep hour partials (merge.py): today, and
# yesterday while late events for it still come in.
RECENT_DAYS = timedelta(days=2)
# What one chunk of past windows should cost: several units in one transaction when they are
# cheap, one when they are not (measured as they go).
CHUNK_SECONDS = 1.0
MAX_UNITS_PER_CHUNK = 31
# One run of the dirty-window job at the most; the next run comes at the next interval.
RUN_SECONDS = 10.0
# A fold waits while another transaction has been open this long, at most this long after the
# oldest pending difference (jobs.Aggregator.fold).
FOLD_WAIT_FOR = timedelta(seconds=5)
FOLD_DEFER_AT_MOST = timedelta(seconds=30)
# The share of a core the exact percentiles of one running window may take: a unit that took
# 15 s waits 150 s before the next (never less than the slower cadence). The same share bounds
# drift scoring, whose cost grows with the number of series.
COSTLY_SHARE = 0.1
# And the slower parts of all running windows together (day, week, month, quarter: each paced by
# COSTLY_SHARE alone, four due at once took a core for a minute, as after every start, before
# their costs are measured): after one that took t s, the next waits t × 3. Measured on the
# million-ticket month at 1,000 events/s, p99 freshness 2.8–3.1 s instead of 3.7–4.6 s.
RUNNING_SLOW_SHARE = 0.25
RUNNING_SLOW_REST_FROM = 1.0  # s: cheaper ones (a small database's) need no rest
# The /metrics snapshot too: at a million tickets a month a rendering takes ~5 s of the
# aggregator's CPU, so it is renewed every ~50 s instead of every 15 s (the api calls it stale
# only after ITSM_EXPOSITION_STALE_SECONDS, 120 s).
EXPOSITION_SHARE = 0.1
# How often the points of a running window of a kind are counted (itsm_aggregator_window_points).
WINDOW_POINTS_EVERY = 30.0
# A job over the stored values that lives above the aggregator (the improvements' verification
# reads them with the api's indicator reads): the CLI passes it in, the aggregator never imports
# the api. Called with a transaction, the active catalog and the aggregator's clock.
Verifier = Callable[[Connection, Catalog, datetime], int]


class Aggregator:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        metrics: AggregatorMetrics | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        verify_improvements: Verifier | None = None,
    ) -> None:
        self.settings = settings
        self._verify_improvements = verify_improvements
        self.engine = engine
        self.metrics = metrics or AggregatorMetrics()
        self.tz = ZoneInfo(settings.reporting_timezone)
        self.clock = clock
        self._last_refresh: datetime | None = None
        self._catalogs = CatalogCache()
        self._catalog_sha = DEFAULT_SHA
        self._unit_seconds: dict[str, float] = {}  # measured cost of a past unit, per kind
        # measured cost of a running window's unit of the slow lanes (percentiles, states), per
        # kind
        self._costly_seconds: dict[str, float] = {}
        self._slow_rest_until = 0.0  # monotonic: until then no running window's slower parts
        self._points_measured: dict[str, float] = {}  # when window_points was last read, per kind
        self.snapshots = SnapshotWriter(engine, self.tz, clock, settings.metrics_max_series)

    def catalog(self, conn: Connection) -> tuple[Catalog, str]:
        """The active catalog, parsed again only when another version became active."""
        catalog, sha = self._catalogs.get(conn)
        if sha != self._catalog_sha:
            self._catalog_sha = sha
            log.info("catalog loaded", extra={"sha": sha[:12], "summary": catalog.summary()})
        return catalog, sha

    def horizon(self, now: datetime) -> Horizon:
        return Horizon(
            now=now,
            tz=self.tz,
            hours_since=hours_kept_since(now, self.settings.hour_retention_days),
            slow=timedelta(seconds=self.settings.aggregator_slow_seconds),
            costly_wait={
                kind: timedelta(seconds=cost / COSTLY_SHARE)
                for kind, cost in self._costly_seconds.items()
            },
        )

    def evaluate_sla(self) -> int:
        """Bring `ticket_sla` up to date (changed incidents, passed deadlines)."""
        total = 0
        while True:
            with self.engine.begin() as conn:
                catalog, sha = self.catalog(conn)
                n = evaluate_pending(conn, catalog, sha, self.clock())
            total += n
            if n < 5000:
                return total

    # --- dirty windows ---------------------------------------------------------------------

    def recompute_dirty(
        self,
        budget: float | None = None,
        lanes: Sequence[str] = queue.LANES,
        running: bool | None = None,
    ) -> int:
        """Compute due windows unit after unit (each chunk of units its own transaction) until
        none is due, or `budget` seconds have passed (at least one chunk). Returns the units
        computed. `running`: only running windows (True), only the others (False), or both."""
        started = time.perf_counter()
        computed = idle = 0
        while True:
            if running is not False:  # the loop of past windows leaves it to the others
                self.expand_marks()
            n = self._chunk(lanes, self._resting(lanes, running))
            if n < 0:  # nothing due
                break
            computed += n
            idle = idle + 1 if n == 0 else 0
            if idle >= 3:  # only units other aggregators hold
                break
            if budget is not None and time.perf_counter() - started >= budget:
                break
        self._observe_queue(time.perf_counter() - started)
        return computed

    def _resting(self, lanes: Sequence[str], running: bool | None) -> bool | None:
        """Which windows the slower lanes take now: only past ones while the running windows'
        slower parts rest (RUNNING_SLOW_SHARE), with the slower cadence on."""
        resting = (
            running is None
            and self.settings.aggregator_slow_seconds > 0
            and set(lanes) <= set(queue.SLOW_LANES)
            and time.monotonic() < self._slow_rest_until
        )
        return False if resting else running

    def expand_marks(self) -> int:
        """Turn every dirty mark into queue rows."""
        total = 0
        while True:
            with self.engine.begin() as conn:
                n = queue.expand_marks(conn, self.horizon(self.clock()))
            total += n
            if n < queue.MARKS_PER_CLAIM:
                return total

    def _chunk(self, lanes: Sequence[str], running: bool | None = None) -> int:
        """Claim and compute the next units; -1 when nothing is due, 0 when only units another
        aggregator holds were found (they are left for a moment)."""
        now = self.clock()
        horizon = self.horizon(now)
        claimed: list[Row] = []
        units: list[Unit] = []
        started = time.perf_counter()
        try:
            with self.engine.begin() as conn:
                first = queue.next_units(conn, horizon, MAX_UNITS_PER_CHUNK, lanes, running)
                if not first:
                    return -1
                for unit in first[: self._room(now, first[0])]:
                    if queue.try_lock(conn, unit):
                        rows = queue.claim(conn, unit, now, lanes)
                        if rows:
                            units.append(unit)
                            claimed += rows
                    else:  # another aggregator (or this one's other loop) computes it now
                        queue.postpone(conn, unit, lanes, now + timedelta(seconds=1))
                if units:
                    conn.execute(_WORK_MEM, {"mb": f"{self.settings.aggregator_work_mem_mb}MB"})
                    self._compute(conn, horizon, units, claimed)
                    self._measure(units, claimed, time.perf_counter() - started, now)
                    queue.done(conn, claimed, self.horizon(now))
        except DBAPIError as err:
            if unreachable(err):
                raise  # the database is away: nothing to count against the windows
            if _transient(err):  # a deadlock: the rows stay due and are taken again
                _warn("window recompute met a deadlock, will retry", err)
                return 0
            self._failed(units, claimed, err, now)
            return 0
        except Exception as err:  # a unit that cannot be computed must not stop the others
            if not units:
                raise
            self._failed(units, claimed, err, now)
            return 0
        elapsed = time.perf_counter() - started
        if units:
            self._computed(units, claimed, elapsed, now)
        return len(units)

    def _room(self, now: datetime, unit: Unit | None) -> int:
        """How many units of this kind fit in a chunk of CHUNK_SECONDS, by their measured cost
        (past windows only: a current one is computed alone, first)."""
        if unit is None:
            return MAX_UNITS_PER_CHUNK
        if unit.end > now:
            return 1
        cost = self._unit_seconds.get(unit.kind)
        if cost is None:
            return 1
        return max(1, min(MAX_UNITS_PER_CHUNK, int(CHUNK_SECONDS / max(cost, 1e-3))))

    def _compute(
        self, conn: Connection, horizon: Horizon, units: Sequence[Unit], rows: Sequence[Row]
    ) -> None:
        catalog, _ = self.catalog(conn)
        ctx = Context(
            horizon=horizon,
            catalog=catalog,
            params=catalog_params(catalog, self.tz),
            indicators=indicators_for(conn, catalog),
            recent_since=horizon.now - RECENT_DAYS,
        )
        kind = units[0].kind
        if kind == "day":
            process_days(conn, ctx, units, rows)
        else:
            process_windows(conn, ctx, kind, units, rows)
        queue_later(conn, ctx)
        for by, n in ctx.renewed.items():
            self.metrics.hours_renewed.labels(by).inc(n)

    def _measure(
        self, units: Sequence[Unit], rows: Sequence[Row], elapsed: float, now: datetime
    ) -> None:
        """What a unit of this kind costs: a past one, for sizing chunks; a running window's
        costly parts (slow lanes), for how long they wait before the next time."""
        kind = units[0].kind
        if units[0].end <= now:  # a past unit: what the next chunk of this kind may hold
            per_unit = elapsed / len(units)
            previous = self._unit_seconds.get(kind, per_unit)
            self._unit_seconds[kind] = 0.7 * previous + 0.3 * per_unit
        elif any(r.lane in queue.SLOW_LANES for r in rows):
            self._costly_seconds[kind] = elapsed
            if elapsed >= RUNNING_SLOW_REST_FROM:  # the next running window's rest meanwhile
                rest = elapsed * (1 / RUNNING_SLOW_SHARE - 1)
                self._slow_rest_until = time.monotonic() + rest

    def _computed(
        self, units: Sequence[Unit], rows: Sequence[Row], elapsed: float, now: datetime
    ) -> None:
        kind = units[0].kind
        finished = datetime.now(UTC)
        received = [r.first_received_at for r in rows if r.lane == "point" and r.scopes]
        if received:
            self.metrics.freshness.observe(max(0.0, (finished - min(received)).total_seconds()))
        last = units[-1]
        # counting a month's points costs a scan of them: a running window's count is renewed
        # every WINDOW_POINTS_EVERY, not after every pass
        measured = self._points_measured.get(last.kind)
        if last.end <= now or measured is None or time.monotonic() - measured > WINDOW_POINTS_EVERY:
            self._points_measured[last.kind] = time.monotonic()
            with self.engine.connect() as conn:
                points = conn.execute(
                    _POINTS, {"kind": last.kind, "start": last.start}
                ).scalar_one()
            self.metrics.window_points.labels(last.kind).set(points)
        log.debug(
            "recomputed",
            extra={
                "kind": kind,
                "units": len(units),
                "rows": len(rows),
                "ms": round(elapsed * 1000),
            },
        )

    def _failed(
        self, units: Sequence[Unit], rows: Sequence[Row], err: Exception, now: datetime
    ) -> None:
        reason = str(getattr(err, "orig", err)).strip().splitlines()[0][:500]
        with self.engine.begin() as conn:
            parked = queue.failed(conn, rows, reason, now)
        self.metrics.window_failures.inc()
        log.warning(
            f"{'windows parked' if parked else 'window recompute failed, will retry'}: {reason}",
            extra={
                "units": [f"{u.kind}:{u.start.isoformat()}" for u in units][:10],
                "attempts": max((r.attempts for r in rows), default=0) + 1,
                "parked": parked,
                "error": reason,
            },
        )

    def _observe_queue(self, elapsed: float) -> None:
        with self.engine.connect() as conn:
            state = queue.state(conn, self.clock())
        self.metrics.dirty_windows.set(state.waiting)
        self.metrics.due_windows.set(state.due)
        self.metrics.parked_windows.set(state.parked)
        self.metrics.run_seconds.labels("dirty_windows").observe(elapsed)

    # --- marks from the clock and from commands ---------------------------------------------

    def mark_since(self, since: datetime, until: datetime | None = None) -> int:
        """Mark every window from `since` to now dirty (`itsm-metrics recompute --since`)."""
        now = self.clock()
        with self.engine.begin() as conn:
            return mark_dirty(conn, {"recompute": (set(), [(since, until or now)])}, now)

    def refresh_current(self, since: datetime, now: datetime) -> int:
        """Mark [since, now] dirty: what depends on the clock (open outages, the backlog, SLA
        targets passing) changes without events. Covering since the last run gives a window
        that just closed its final recompute."""
        with self.engine.begin() as conn:
            return mark_dirty(conn, {"clock": (set(), [(since, now)])}, now)

    def prune(self) -> None:
        """Forget what is no longer kept: hour points older than the retention (answered at
        query time) and the hour partials of days no longer recent."""
        now = self.clock()
        horizon = self.horizon(now)
        with self.engine.begin() as conn:
            conn.execute(_PRUNE_HOURS, {"since": horizon.hours_since})
            days = conn.execute(_OLD_PARTIAL_DAYS, {"before": now - RECENT_DAYS}).scalars().all()
            for day in days:
                unit = Unit("day", day, window_end("day", day, self.tz))
                if queue.try_lock(conn, unit):
                    conn.execute(_PRUNE_PARTIALS, {"day": day, "end": unit.end})

    def fold(self, force: bool = False) -> int | None:
        """Add the point lane's pending differences to their points (pending.fold);
        returns how many were folded, None when put off. A fold is put off while another
        transaction has been open for FOLD_WAIT_FOR (its snapshot would keep every row version
        the fold creates, and the point lane's next passes would walk them), up to
        FOLD_DEFER_AT_MOST after the oldest pending difference."""
        with self.engine.begin() as conn:
            r = conn.execute(_FOLD_STATE).one()
            waited = r.oldest.total_seconds() if r.oldest is not None else 0.0
            self.metrics.pending_age.set(waited)
            if r.oldest is None:
                return 0
            busy = r.open_for is not None and r.open_for > FOLD_WAIT_FOR
            if busy and not force and r.oldest < FOLD_DEFER_AT_MOST:
                self.metrics.folds_deferred.inc()
                return None
            # hundreds of thousands of differences are grouped and sorted: in memory, not in
            # temporary files (it halved a fold's time at 1,000 events/s)
            conn.execute(_WORK_MEM, {"mb": f"{self.settings.aggregator_work_mem_mb}MB"})
            folded = pending.fold(conn, now=self.clock())
        if folded is not None:
            self.metrics.pending_age.set(0)
            self.metrics.folded.inc(folded)
        return folded

    def forget_changes(self) -> int:
        """Delete the row changes no hour partial needs any more (changes.py): their bound under
        the lock every snapshot-recording pass shares, then the changes without it."""
        with self.engine.begin() as conn:
            bound = changes.forget_bound(conn)
        if bound is None:
            return 0
        with self.engine.begin() as conn:
            return changes.forget_before(conn, bound)

    # --- the scheduler ---------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        every = self.settings.aggregator_interval_seconds
        expo = self.settings.exposition_interval_seconds
        # Each loop in a thread of its own: events' instants (the `point` lane) never wait for
        # SLA evaluation, for states, time shares and percentiles, for drift, or for the
        # rendering of /metrics.
        jobs: list[tuple[Callable[[], None], float, str]] = [
            (self._guarded(self._fast, "point_lane"), every, "point_lane"),
            (self._guarded(self._past, "past_points"), every, "past_points"),
            (self._guarded(self.evaluate_sla, "sla"), every, "sla"),
            (self._guarded(self._slow, "slow_lanes"), every, "slow_lanes"),
            (self._safe_refresh, self.settings.aggregator_refresh_seconds, "clock_refresh"),
            (
                self._guarded(_paced(self.drift, COSTLY_SHARE), "drift"),
                self.settings.aggregator_drift_seconds,
                "drift",
            ),
            # Another aggregator's snapshot from less than half an interval ago is as good: with
            # several aggregators it is renewed every half to whole interval, not N times.
            (
                self._guarded(
                    _paced(lambda: self.publish_exposition(expo / 2), EXPOSITION_SHARE),
                    "exposition",
                ),
                expo,
                "exposition",
            ),
            (self._guarded(self.prune, "prune"), 300, "prune"),
            (self._guarded(self.forget_changes, "changes"), 30, "changes"),
            (self._guarded(self.fold, "fold"), self.settings.aggregator_fold_seconds, "fold"),
        ]
        if self._verify_improvements is not None:
            jobs.append(
                (self._guarded(self.verify_improvements, "improvements"), 60, "improvements")
            )
        # a thread for every job: none waits for a free one behind a long drift scoring
        scheduler = BackgroundScheduler(
            timezone=UTC, executors={"default": ThreadPoolExecutor(len(jobs))}
        )
        for fn, seconds, name in jobs:
            scheduler.add_job(
                fn,
                "interval",
                seconds=seconds,
                id=name,
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
        """Score every series' last complete window against the windows before it (SPEC §6.4);
        one transaction per indicator (update_drift commits as it goes)."""
        with self.engine.connect() as conn:
            catalog, _ = self.catalog(conn)
            conn.commit()
            return update_drift(conn, catalog, self.tz, now=self.clock())

    def publish_exposition(self, skip_younger_than: float = 0.0) -> Snapshot | None:
        """Render the /metrics snapshot of indicators, objectives and drift and store it for the
        api to serve (SPEC §8); None when nothing was stored (see SnapshotWriter.publish)."""
        return self.snapshots.publish(skip_younger_than)

    def verify_improvements(self) -> int:
        """Verify the improvements whose verification period has ended (SPEC §7.4)."""
        if self._verify_improvements is None:
            return 0
        with self.engine.begin() as conn:
            catalog, _ = self.catalog(conn)
            return self._verify_improvements(conn, catalog, self.clock())

    def _safe_refresh(self) -> None:
        now = self.clock()
        since, self._last_refresh = self._last_refresh or now, now
        try:
            self.refresh_current(since, now)
        except DBAPIError as err:
            self._last_refresh = since  # cover the missed stretch next time
            _warn("aggregator clock refresh failed, will retry", err)

    def _guarded(self, run: Callable[[], object], job: str) -> Callable[[], None]:
        """`run` as the scheduler's `job`: timed (itsm_aggregator_run_seconds{job}), and a
        database error logged (it runs again next time)."""

        def guarded() -> None:
            started = time.perf_counter()
            try:
                run()
            except DBAPIError as err:
                _warn(f"aggregator job {job} failed, will retry", err)
            self.metrics.run_seconds.labels(job).observe(time.perf_counter() - started)

        return guarded

    def _fast(self) -> None:
        self.recompute_dirty(budget=RUN_SECONDS, lanes=queue.FAST_LANES, running=True)

    def _past(self) -> None:
        self.recompute_dirty(budget=RUN_SECONDS, lanes=queue.FAST_LANES, running=False)

    def _slow(self) -> None:
        self.recompute_dirty(budget=RUN_SECONDS, lanes=queue.SLOW_LANES)


def _paced(run: Callable[[], object], share: float) -> Callable[[], None]:
    """`run` as a job taking at most `share` of the time: after a run that took t seconds, the
    next waits t / share (a drift scoring of 16 s waits 160 s), or the job's interval if longer,
    whatever the number of series."""
    next_at = 0.0

    def paced() -> None:
        nonlocal next_at
        if time.monotonic() < next_at:
            return
        started = time.monotonic()
        try:
            run()
        finally:
            next_at = started + (time.monotonic() - started) / share

    return paced


def _transient(err: DBAPIError) -> bool:
    """A deadlock or serialization failure: nothing wrong with the unit itself."""
    return getattr(err.orig, "sqlstate", None) in ("40P01", "40001")


def _warn(message: str, err: Exception) -> None:
    log.warning(message, extra={"error": str(err).splitlines()[0][:300]})


# A unit aggregates tens of thousands of samples over a dozen groupings: enough memory for its
# sorts and hashes not to spill to disk (the server's default is 4 MB), for its transaction only
# (settings.aggregator_work_mem_mb).
_WORK_MEM = text("SELECT set_config('work_mem', :mb, true)")
# Points stored for one window.
_POINTS = text(
    "SELECT count(*) FROM indicator_values WHERE window_kind = :kind AND window_start = :start"
)
_PRUNE_HOURS = text(
    """
    DELETE FROM indicator_values WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM indicator_values
        WHERE window_kind = 'hour' AND window_start < :since LIMIT 50000))
    """
)
# Since when differences are pending (the oldest id: the primary key's first row; counting
# them would read them all), and for how long the oldest other transaction of this database
# has been open.
_FOLD_STATE = text(
    """
    SELECT clock_timestamp() - (SELECT added_at FROM indicator_pending ORDER BY id LIMIT 1)
               AS oldest,
           (SELECT max(clock_timestamp() - xact_start) FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid()
              AND backend_type = 'client backend'
              AND (backend_xid IS NOT NULL OR backend_xmin IS NOT NULL)) AS open_for
    """
)
_OLD_PARTIAL_DAYS = text("SELECT day_start FROM partial_days WHERE day_start < :before")
_PRUNE_PARTIALS = text(
    """
    WITH gone AS (DELETE FROM partial_days WHERE day_start = :day RETURNING day_start)
    DELETE FROM indicator_partials WHERE window_start >= :day AND window_start < :end
    """
)
