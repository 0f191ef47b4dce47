"""The aggregator at real scale (issue 10), on one realistic month of 1,000,000 tickets (200
services over 15 customers, 60 groups, 400 engineers, 5,000 CIs; changes, alerts, calls,
surveys alongside: benchmarks/realistic.py), late in that month:

1. recompute: every window of the month from the projections (SLA evaluation first);
2. freshness: collector and aggregator running, 1,000 events/s of new tickets, each timed from
   its send to the first poll (every 20 ms) of the stored month count that includes it;
3. reads: 16 clients reading a month of daily points by service over HTTP, and the `/metrics`
   exposition at that size (the aggregator's rendering of its snapshot, and scrapes of the api
   while the snapshot is rendered again).

The aggregator's clock is set to 2026-10-28 12:00 UTC and runs on from there, so "late in a
busy month" holds whatever the date of the run."""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from kafka import KafkaProducer
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from benchmarks import procs, reads
from benchmarks.engines import engines
from benchmarks.freshness import end_to_end, quantile, watch_count
from benchmarks.realistic import catalog_yaml, load_month, world
from benchmarks.realistic_world import KIND_WEIGHTS, PRIORITY_WEIGHTS, cdf, pick
from services.aggregator import queue
from services.aggregator.jobs import Aggregator
from services.aggregator.metrics import AggregatorMetrics
from services.aggregator.snapshot import SnapshotWriter
from services.catalog import apply_catalog
from shared import logging as itsm_logging
from shared.db import make_engine
from shared.kafka import ensure_topics
from shared.settings import Settings

UTC_TZ = ZoneInfo("UTC")  # the benchmark's reporting zone (the default)
MONTH = datetime(2026, 10, 1, tzinfo=UTC)
NOW = datetime(2026, 10, 28, 12, tzinfo=UTC)  # late in the month
# The windows /metrics shows: the benchmark's clock a moment after the freshness run.
SCRAPED_AT = NOW + timedelta(minutes=2)


def run(tickets: int = 1_000_000, rate: float = 1000.0, seconds: float = 60.0) -> dict[str, Any]:
    with engines("aggregator") as (db_url, kafka):
        engine = make_engine(db_url)
        with engine.begin() as conn:
            apply_catalog(conn, catalog_yaml(1), "benchmark.yaml")
            started = time.perf_counter()
            loaded = load_month(conn, tickets, MONTH, as_of=NOW)
        load_s = time.perf_counter() - started
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        print(f"  {sum(loaded.values()):,} rows loaded in {load_s:.0f} s", flush=True)
        result: dict[str, Any] = {"tickets": loaded["tickets"], "load_s": round(load_s, 1)}
        result.update(recompute_month(db_url))
        result.update(freshness(db_url, kafka, rate, seconds))
        result.update(exposition(db_url, kafka))
        result.update(reads.run_reads(db_url, kafka, MONTH, seconds=30, scrapes=0))
        engine.dispose()
    return result


def _settings(db_url: str, **overrides: Any) -> Settings:
    return Settings(_env_file=None, database_url=db_url, **overrides)  # type: ignore[call-arg]


def recompute_month(db_url: str) -> dict[str, Any]:
    """Every window of the month, from nothing: how long, how many points, how much memory."""
    engine = make_engine(db_url)
    settings = _settings(db_url)
    clock = [NOW]
    agg = Aggregator(
        settings, engine, AggregatorMetrics(CollectorRegistry()), clock=lambda: clock[0]
    )
    started = time.perf_counter()
    evaluated = agg.evaluate_sla()
    sla_s = time.perf_counter() - started
    print(f"  SLA of {evaluated:,} incidents evaluated in {sla_s:.0f} s", flush=True)
    agg.mark_since(MONTH, NOW)
    started = time.perf_counter()
    units = chunks = 0
    next_report = started + 15
    # Then the slower cadence's work: the running windows' states and percentiles come due
    # ITSM_AGGREGATOR_SLOW_SECONDS later; the clock is moved on to them.
    for at in (NOW, NOW + timedelta(seconds=settings.aggregator_slow_seconds + 1)):
        clock[0] = at
        while (n := agg.recompute_dirty(budget=0)) > 0:
            units += n
            chunks += 1
            if time.perf_counter() > next_report:
                print(f"  recompute: {units} units in {chunks} chunks so far", flush=True)
                next_report += 15
    agg.fold(force=True)  # what the passes left pending, added up as the `fold` job would
    elapsed = time.perf_counter() - started
    with engine.connect() as conn:  # what `itsm-metrics windows status` reports
        by_kind = conn.execute(queue.POINTS_PER_KIND).all()
    engine.dispose()
    return {
        "sla_evaluated": evaluated,
        "sla_s": round(sla_s, 1),
        "recompute_units": units,
        "recompute_chunks": chunks,
        "recompute_s": round(elapsed, 1),
        "points_stored": sum(int(r.points) for r in by_kind),
        **{f"points_per_{r.window_kind}_window": round(r.mean) for r in by_kind},
        "recompute_peak_rss_mb": _peak_rss_mb(),
    }


class Clock:
    """The benchmark's clock: NOW at the start, running on in real time."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.t0 = time.monotonic()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.t0)


def freshness(db_url: str, kafka: str, rate: float, seconds: float) -> dict[str, Any]:
    """Event-to-indicator time end to end: from sending the k-th ticket creation to the first
    poll (every 20 ms) of the stored month count that includes it (k above the month's count
    before the run); tickets of realistic dimensions, each created then resolved. The collector
    runs as `itsm-metrics collector`, the aggregator in a process of its own on the benchmark's
    clock; the peak RSS of each is read from /proc (VmHWM)."""
    overrides = {"topic_prefix": "fresh.", "consumer_group": "fresh"}
    settings = _settings(db_url, kafka_bootstrap_servers=kafka, **overrides)
    ensure_topics(settings)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        base = int(conn.execute(_OPENED).scalar_one())
        drift_before = conn.execute(_DRIFTED).scalar()
        started_db = (conn.execute(text("SELECT now()")).scalar_one(), drift_before)
    env = procs.environment(
        db_url, kafka, 0, ITSM_TOPIC_PREFIX="fresh.", ITSM_CONSUMER_GROUP="fresh"
    )
    collector = subprocess.Popen(
        [*procs.command(), "collector"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    spawn = multiprocessing.get_context("spawn")
    stop = spawn.Event()
    aggregator = spawn.Process(
        target=_aggregate, args=(db_url, kafka, overrides, stop), name="aggregator"
    )
    aggregator.start()
    assert aggregator.pid is not None
    settled_s = _settled(engine, started_db, Clock(NOW))  # about the aggregator's clock
    print(f"  freshness: the aggregator's start-up work done in {settled_s:.0f} s", flush=True)
    created: list[float] = []  # monotonic send time of each creation, in order
    seen: list[tuple[float, int]] = []  # (monotonic poll time, stored count above base)
    watching = threading.Event()
    watcher = threading.Thread(
        target=watch_count, args=(engine, _OPENED, watching, seen, base), daemon=True
    )
    watcher.start()
    producer = KafkaProducer(bootstrap_servers=kafka, acks="all", linger_ms=5)
    clock = Clock(NOW)
    sent = 0
    tickets = _new_tickets(clock)
    started = time.perf_counter()
    next_report = started + 10
    while (elapsed := time.perf_counter() - started) < seconds:
        due = int(elapsed * rate)
        while sent < due:
            kind, ev = next(tickets)
            if kind == "created":
                created.append(time.monotonic())
            key = ev["data"]["ticket_id"].encode()
            producer.send("fresh.tickets", key=key, value=json.dumps(ev).encode())
            sent += 1
        if time.perf_counter() > next_report:
            print(f"  freshness: {sent:,} events sent", flush=True)
            next_report += 10
        time.sleep(0.01)
    producer.flush()
    time.sleep(10)  # let the last batches through
    watching.set()
    collector_kb = procs.memory_kb(collector.pid)[1]
    aggregator_kb = procs.memory_kb(aggregator.pid)[1]
    stop.set()
    aggregator.join(60)
    procs.stop(collector, signal.SIGTERM, grace=30)
    watcher.join(5)
    engine.dispose()
    latencies = sorted(end_to_end(created, seen))
    return {
        "fresh_events": sent,
        "fresh_rate_per_s": rate,
        "fresh_p50_s": quantile(latencies, 0.5),
        "fresh_p99_s": quantile(latencies, 0.99),
        "fresh_max_s": latencies[-1] if latencies else None,
        "fresh_measured": f"{len(latencies)} of {len(created)} ticket creations",
        "fresh_startup_s": round(settled_s, 1),
        "fresh_collector_peak_rss_mb": round(collector_kb / 1024, 1),
        "fresh_aggregator_peak_rss_mb": round(aggregator_kb / 1024, 1),
    }


_DRIFTED = text("SELECT max(computed_at) FROM indicator_drift")
_SETTLED = text(
    """
    SELECT (SELECT max(rendered_at) FROM exposition_snapshot) > :since AS rendered,
           (SELECT max(computed_at) FROM indicator_drift) IS DISTINCT FROM :drift
           -- drift commits indicator by indicator, under a session lock held to the end
           AND NOT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
                           AND objid = hashtext('itsm-drift')::oid AND granted) AS scored,
           NOT EXISTS (SELECT 1 FROM window_queue WHERE parked_at IS NULL AND due_at <= :now)
               AS drained
    """
)


def _settled(
    engine: Any, started: tuple[datetime, Any], clock: Clock, timeout: float = 300.0
) -> float:
    """Wait until a freshly started aggregator has done its start-up work (its first drift
    scoring and `/metrics` rendering, the running windows' costly parts, the queue drained), so
    that freshness is measured in steady state, as a running service meets a burst; returns
    how long that took (a start-up meets its first burst later: see the README)."""
    t0 = time.perf_counter()
    time.sleep(8)  # consumer group join
    with engine.connect() as conn:
        while time.perf_counter() - t0 < timeout:
            params = {"since": started[0], "drift": started[1], "now": clock()}
            r = conn.execute(_SETTLED, params).one()
            conn.commit()
            if r.rendered and r.scored and r.drained:
                break
            time.sleep(1)
    return time.perf_counter() - t0


def _aggregate(db_url: str, kafka: str, overrides: dict[str, str], stop: Any) -> None:
    """The aggregator's loop in its own process, on the benchmark's clock (late in October
    whatever the date of the run), every 250 ms as `itsm-metrics aggregator` would be set."""
    itsm_logging.configure(os.environ.get("BENCH_AGGREGATOR_LOG", "WARNING"))
    settings = _settings(
        db_url, kafka_bootstrap_servers=kafka, aggregator_interval_seconds=0.25, **overrides
    )
    engine = make_engine(db_url)
    metrics = AggregatorMetrics(CollectorRegistry())
    Aggregator(settings, engine, metrics, clock=Clock(NOW)).run(stop)


def _new_tickets(clock: Callable[[], datetime]) -> Any:
    """Creations and resolutions of new tickets at the clock's time, with the realistic
    world's dimensions (service volume, groups, priority and kind weights)."""
    import random

    w = world(1)
    rng = random.Random(7)
    kinds, priorities = list(KIND_WEIGHTS), list(PRIORITY_WEIGHTS)
    kind_cdf, priority_cdf = cdf(KIND_WEIGHTS), cdf(PRIORITY_WEIGHTS)
    run = uuid.uuid4().hex[:6]  # new tickets on every run, also over a database kept between runs
    n = 0
    while True:
        tid = f"FRESH-{run}-{n:07d}"
        data = {
            "ticket_id": tid,
            "state": "new",
            "kind": kinds[pick(kind_cdf, rng.random())],
            "service": w.services[pick(w.service_cdf, rng.random())],
            "priority": priorities[pick(priority_cdf, rng.random())],
            "assignment_group": w.groups[pick(w.group_cdf, rng.random())],
            "channel": rng.choice(["portal", "email", "phone", "chat"]),
        }
        for verb, state in (("created", "new"), ("resolved", "resolved")):
            yield (
                verb,
                {
                    "specversion": "1.0",
                    "id": uuid.uuid4().hex,
                    "source": "bench://fresh",
                    "type": f"itsm.ticket.{verb}",
                    "time": clock().isoformat(),
                    "data": {**data, "state": state}
                    if verb == "created"
                    else {
                        "ticket_id": tid,
                        "state": state,
                    },
                },
            )
        n += 1


_OPENED = text(
    """
    SELECT coalesce(sum(count), 0) FROM indicator_points
    WHERE indicator = 'ticket_opened_count' AND window_kind = 'month'
      AND window_start = '2026-10-01T00:00:00Z' AND dimensions = '{}'
    """
)


def exposition(db_url: str, kafka: str, scrapes: int = 60, every: float = 0.5) -> dict[str, Any]:
    """`/metrics` at that size, in its two halves (SPEC §8). First the aggregator's rendering of
    the snapshot, on the benchmark's clock (late October), timed: its series, bytes and what
    the budget left out. Then `scrapes` scrapes over HTTP, one every `every` s, of
    `itsm-metrics api` (a process of its own, as deployed) while another process renders the
    snapshot again and again, as the aggregator does every ITSM_EXPOSITION_INTERVAL_SECONDS:
    a scrape never waits on a rendering; the first one after each new snapshot fetches its
    body, the others read a row's head."""
    settings = _settings(db_url, kafka_bootstrap_servers=kafka)
    engine = make_engine(db_url)
    writer = SnapshotWriter(engine, UTC_TZ, Clock(SCRAPED_AT), settings.metrics_max_series)
    started = time.perf_counter()
    snapshot = writer.publish()
    published = time.perf_counter() - started
    engine.dispose()
    if snapshot is None:
        raise RuntimeError("the /metrics snapshot could not be rendered (see the log)")
    r = snapshot.rendering
    print(f"  /metrics snapshot: {r.series:,} series, {len(r.body) / 1e6:.1f} MB", flush=True)
    spawn = multiprocessing.get_context("spawn")
    stop, renders = spawn.Event(), spawn.Value("i", 0)
    renderer = spawn.Process(target=_render, args=(db_url, stop, renders), name="renderer")
    renderer.start()
    try:
        with reads.api(db_url, kafka) as (url, _):
            at_start = renders.value
            scraped = reads.scrape(url, scrapes, every=every)
            during = renders.value - at_start
    finally:
        stop.set()
        renderer.join(120)
    return {
        "metrics_series_budget": settings.metrics_max_series,
        "metrics_series": r.series,
        "metrics_series_dropped": r.dropped,
        "metrics_bytes": len(r.body),
        "metrics_render_ms": round(1000 * r.seconds, 1),
        "metrics_publish_ms": round(1000 * published, 1),  # the rendering, then its upsert
        "metrics_renders_during_scrapes": during,
        "metrics_scrapes": scraped["metrics_scrapes"],
        "metrics_scrape_errors": scraped["metrics_errors"],
        "metrics_scrape_stale": scraped["metrics_stale"],
        "metrics_scrape_p50_ms": scraped["metrics_p50_ms"],
        "metrics_scrape_p99_ms": scraped["metrics_p99_ms"],
    }


def _render(db_url: str, stop: Any, renders: Any) -> None:
    """The aggregator's `exposition` job in a process of its own, with no pause but a second's:
    the snapshot rendered and stored again and again (back to back at scale, where one takes
    seconds) until stopped."""
    itsm_logging.configure(os.environ.get("BENCH_AGGREGATOR_LOG", "WARNING"))
    settings = _settings(db_url)
    engine = make_engine(db_url, pool_size=2)
    writer = SnapshotWriter(engine, UTC_TZ, Clock(SCRAPED_AT), settings.metrics_max_series)
    while not stop.is_set():
        started = time.perf_counter()
        if writer.publish() is not None:
            with renders.get_lock():
                renders.value += 1
        stop.wait(max(0.0, 1.0 - (time.perf_counter() - started)))
    engine.dispose()


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


if __name__ == "__main__":
    print(json.dumps(run(), indent=2, default=str))
