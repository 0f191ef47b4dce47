"""The aggregator at real scale (issue 10), on one realistic month of 1,000,000 tickets (200
services over 15 customers, 60 groups, 400 engineers, 5,000 CIs; changes, alerts, calls,
surveys alongside: benchmarks/realistic.py), late in that month:

1. recompute: every window of the month from the projections (SLA evaluation first);
2. freshness: collector and aggregator running, 1,000 events/s of new tickets, each timed from
   its send to the first poll (every 20 ms) of the stored month count that includes it;
3. reads: 16 clients reading a month of daily points by service over HTTP, and the `/metrics`
   exposition at that size (its series, its time).

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

import httpx
import uvicorn
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from benchmarks import procs, reads
from benchmarks.engines import engines
from benchmarks.realistic import catalog_yaml, load_month, world
from benchmarks.realistic_world import KIND_WEIGHTS, PRIORITY_WEIGHTS, cdf, pick
from services.aggregator import queue
from services.aggregator.jobs import Aggregator
from services.aggregator.metrics import AggregatorMetrics
from services.api.app import create_app
from services.catalog import apply_catalog
from services.local.engines import free_port
from shared import logging as itsm_logging
from shared.db import make_engine
from shared.kafka import ensure_topics
from shared.settings import Settings

MONTH = datetime(2026, 10, 1, tzinfo=UTC)
NOW = datetime(2026, 10, 28, 12, tzinfo=UTC)  # late in the month


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
    time.sleep(8)  # consumer group join; the first passes create today's hour partials
    created: list[float] = []  # monotonic send time of each creation, in order
    seen: list[tuple[float, int]] = []  # (monotonic poll time, stored count above base)
    watching = threading.Event()
    watcher = threading.Thread(
        target=_watch_opened, args=(engine, watching, seen, base), daemon=True
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
    latencies = sorted(_end_to_end(created, seen))
    return {
        "fresh_events": sent,
        "fresh_rate_per_s": rate,
        "fresh_p50_s": _quantile(latencies, 0.5),
        "fresh_p99_s": _quantile(latencies, 0.99),
        "fresh_max_s": latencies[-1] if latencies else None,
        "fresh_measured": f"{len(latencies)} of {len(created)} ticket creations",
        "fresh_collector_peak_rss_mb": round(collector_kb / 1024, 1),
        "fresh_aggregator_peak_rss_mb": round(aggregator_kb / 1024, 1),
    }


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
    SELECT coalesce(sum(count), 0) FROM indicator_values
    WHERE indicator = 'ticket_opened_count' AND window_kind = 'month'
      AND window_start = '2026-10-01T00:00:00Z' AND dimensions = '{}'
    """
)


def _watch_opened(
    engine: Any, stop: threading.Event, seen: list[tuple[float, int]], base: int
) -> None:
    """Poll the stored month count every 20 ms until stopped."""
    with engine.connect() as conn:
        while not stop.is_set():
            count = int(conn.execute(_OPENED).scalar_one())
            conn.commit()  # a new snapshot for the next poll
            seen.append((time.monotonic(), count - base))
            time.sleep(0.02)


def _end_to_end(created: list[float], seen: list[tuple[float, int]]) -> list[float]:
    """For the k-th creation, the first poll at which k new creations were counted, minus its
    send time. Creations never counted are left out (reported as measured k of n)."""
    out = []
    i = 0
    for k, sent_at in enumerate(created, start=1):
        while i < len(seen) and seen[i][1] < k:
            i += 1
        if i == len(seen):
            break
        out.append(round(max(0.0, seen[i][0] - sent_at), 3))
    return out


def exposition(db_url: str, kafka: str, scrapes: int = 40) -> dict[str, Any]:
    """`/metrics` over HTTP from an api whose clock is the benchmark's (late October; the api
    process of `run_reads` reads the windows of the real date). The first scrape waits for a
    rendering: what every scrape would cost with ITSM_METRICS_MAX_AGE_SECONDS=0, and what the
    background refresh costs. The others, one every 0.5 s, are served the last rendering while
    it is refreshed every 10 s (the default is 30 s: a refresh is what contends here)."""
    settings = _settings(db_url, kafka_bootstrap_servers=kafka, metrics_max_age_seconds=10)
    engine = make_engine(db_url)
    app = create_app(settings, engine, clock=Clock(NOW + timedelta(minutes=2)))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    times = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
        started = time.perf_counter()
        body = http.get("/metrics").text
        cold = time.perf_counter() - started
        for _ in range(scrapes):
            time.sleep(0.5)
            started = time.perf_counter()
            http.get("/metrics").raise_for_status()
            times.append(time.perf_counter() - started)
    server.should_exit = True
    thread.join(30)
    engine.dispose()
    lines = [ln for ln in body.splitlines() if ln and not ln.startswith("#")]
    dropped = next(ln for ln in lines if ln.startswith("itsm_exposition_series_dropped"))
    times.sort()
    return {
        "metrics_series_budget": settings.metrics_max_series,
        "metrics_series": sum(1 for ln in lines if ln.startswith("itsm_")),
        "metrics_series_dropped": float(dropped.split()[-1]),
        "metrics_bytes": len(body.encode()),
        "metrics_render_ms": round(1000 * cold, 1),
        "metrics_scrape_p50_ms": round(1000 * _quantile(times, 0.5), 1),  # type: ignore[operator]
        "metrics_scrape_p99_ms": round(1000 * _quantile(times, 0.99), 1),  # type: ignore[operator]
    }


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(q * (len(values) - 1) + 0.5))]


if __name__ == "__main__":
    print(json.dumps(run(), indent=2, default=str))
