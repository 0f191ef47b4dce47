"""Drain a backlog of mixed events from Kafka into PostgreSQL with the collector, beside a bare
kafka-python consumer (+ json.loads) reading the same topics in the same run (issue 5).

The backlog is a month of the realistic world (`benchmarks.realistic.mixed_events`: 200
services, 60 groups, 400 engineers, 5,000 CIs), with ~1% duplicates and ~0.2% poison (events
that must become dead letters) mixed in."""

from __future__ import annotations

import json
import math
import multiprocessing
import random
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from benchmarks.engines import engines
from benchmarks.realistic import mixed_events, month_end
from services.collector.consumer import Collector
from services.collector.metrics import CollectorMetrics
from services.collector.projections.registry import PROJECTIONS
from services.collector.store import BatchResult
from shared import logging as itsm_logging
from shared.db import make_engine
from shared.kafka import CONSUMER_TIMINGS, ensure_topics
from shared.settings import Settings

MONTH = datetime(2026, 10, 1, tzinfo=UTC)
# Collector processes of the scale-out run: on the 2-core machine, 3 drained fastest (one
# collector leaves a core mostly idle while it waits for PostgreSQL; 4 or 6 did no better).
SCALE_OUT = 3
BARE_RUNS = 3
# What a drain writes, emptied before the scale-out run drains the backlog again.
DRAINED_TABLES = (
    "events",
    "dead_letters",
    "dirty_windows",
    "measurements",
    *(p.table.name for p in PROJECTIONS.values()),
)


def backlog(n: int, seed: int = 1) -> list[tuple[str, str, dict[str, Any]]]:
    """(topic suffix, key, event): the first `n` events of the realistic stream of a month
    (the CIs, checks and articles from before it, tickets with their calls and surveys,
    changes, alerts and unlogged calls, in time order), then ~1% duplicates and ~0.2% poison
    inserted at random places."""
    rng = random.Random(seed)
    out = _realistic(n, seed)
    for _ in range(n // 100):  # duplicates
        out.insert(rng.randrange(len(out)), out[rng.randrange(len(out))])
    for _ in range(n // 500):  # poison
        out.insert(rng.randrange(len(out)), ("tickets", "poison", {"not": "an event"}))
    return out


# What the realistic stream of a month holds whatever its ticket count (5,000 CIs, their
# monitoring checks, the knowledge base), and roughly how many events each ticket brings with
# it (its lifecycle, call and survey, and the world's changes, alerts and calls per ticket).
_PER_MONTH = {
    "itsm.config.ci.upserted",
    "itsm.monitor.check.registered",
    "itsm.knowledge.article.published",
    "itsm.knowledge.article.updated",
}
_FIXED_GUESS, _PER_TICKET_GUESS = 15_000, 5.0


def _realistic(n: int, seed: int) -> list[tuple[str, str, dict[str, Any]]]:
    """The first `n` events of `realistic.mixed_events` over MONTH, with just enough tickets
    for them (the stream of a guessed ticket count, regenerated larger when it falls short)."""
    n_tickets = max(1, math.ceil((n - _FIXED_GUESS) / _PER_TICKET_GUESS))
    while True:
        events = list(mixed_events(n_tickets, MONTH, month_end(MONTH), seed))
        if len(events) >= n:
            return events[:n]
        fixed = sum(1 for _, _, ev in events if ev["type"] in _PER_MONTH)
        per_ticket = max(1.0, (len(events) - fixed) / n_tickets)
        n_tickets = max(n_tickets + 1, math.ceil(1.02 * (n - fixed) / per_ticket))


def produce(settings: Settings, events: list[tuple[str, str, dict[str, Any]]]) -> float:
    producer = KafkaProducer(
        bootstrap_servers=settings.require_kafka(), acks="all", linger_ms=20, batch_size=256 * 1024
    )
    started = time.perf_counter()
    acked = 0

    def ok(_: Any) -> None:
        nonlocal acked
        acked += 1

    for suffix, key, event in events:
        producer.send(
            settings.topic(suffix), key=key.encode(), value=json.dumps(event).encode()
        ).add_callback(ok)
    producer.flush()
    producer.close()
    assert acked == len(events), f"only {acked} of {len(events)} acknowledged"
    return len(events) / (time.perf_counter() - started)


def bare_consumer(settings: Settings, expected: int) -> float:
    consumer = KafkaConsumer(
        *settings.event_topics,
        bootstrap_servers=settings.require_kafka(),
        group_id=f"bare-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=2000,
        **CONSUMER_TIMINGS,
    )
    seen = 0
    started = None
    while seen < expected:
        for records in consumer.poll(1000, max_records=2000).values():
            if started is None:
                started = time.perf_counter()
            for r in records:
                json.loads(r.value)
            seen += len(records)
    assert started is not None
    rate = seen / (time.perf_counter() - started)
    consumer.close()
    return rate


def postgres_cpu_seconds() -> float | None:
    """CPU seconds used so far by the PostgreSQL processes on this machine (the embedded
    server's), or None when there are none to see (an external database)."""
    import psutil

    total, seen = 0.0, False
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] == "postgres":
            try:
                cpu = proc.cpu_times()
            except psutil.Error:
                continue
            total += cpu.user + cpu.system
            seen = True
    return total if seen else None


def collector(settings: Settings, expected: int) -> dict[str, float]:
    engine = make_engine(settings.require_database_url())
    seen = 0
    outcomes = {"stored": 0, "duplicates": 0, "dead_letters": 0}
    started: float | None = None
    latencies: list[float] = []
    done = threading.Event()
    last = time.perf_counter()

    def on_batch(result: BatchResult) -> None:
        nonlocal seen, started, last
        now = time.perf_counter()
        if started is None:
            started = now
        else:
            latencies.append(now - last)
        last = now
        outcomes["stored"] += sum(result.stored.values())
        outcomes["duplicates"] += sum(result.duplicate.values())
        outcomes["dead_letters"] += sum(result.dead_letter.values())
        seen = sum(outcomes.values())
        if seen >= expected:
            done.set()

    c = Collector(settings, engine, CollectorMetrics(CollectorRegistry()), on_batch=on_batch)
    thread = threading.Thread(target=c.run, daemon=True)
    cpu0, pg0 = time.process_time(), postgres_cpu_seconds()
    thread.start()
    done.wait(600)
    finished = time.perf_counter()
    cpu, pg1 = time.process_time() - cpu0, postgres_cpu_seconds()
    c.stop_event.set()
    thread.join(30)
    engine.dispose()
    assert started is not None and seen >= expected, f"collector saw {seen} of {expected}"
    # the first batch's own time is not in the span: count it out
    rate = (seen - (seen / max(1, len(latencies) + 1))) / (finished - started)
    latencies.sort()
    return {
        "events_per_s": rate,
        "batch_p50_ms": 1000 * statistics.median(latencies) if latencies else 0.0,
        "batch_p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else 0.0,
        "batches": len(latencies) + 1,
        # Where the time goes (the group join included): this process and PostgreSQL.
        "python_cpu_us_per_event": 1e6 * cpu / seen,
        "postgres_cpu_us_per_event": (
            1e6 * (pg1 - pg0) / seen if pg0 is not None and pg1 is not None else float("nan")
        ),
        **outcomes,
    }


def _collector_process(settings: Settings, counts: Any) -> None:
    """One collector of a scale-out run: reports each batch's event count on `counts`."""
    itsm_logging.configure("ERROR")
    engine = make_engine(settings.require_database_url())

    def on_batch(result: BatchResult) -> None:
        n = sum(result.stored.values()) + sum(result.duplicate.values())
        counts.put((time.perf_counter(), n + sum(result.dead_letter.values())))

    Collector(settings, engine, CollectorMetrics(CollectorRegistry()), on_batch=on_batch).run()


def scaled_out(settings: Settings, expected: int, processes: int) -> float:
    """Events/s of `processes` collectors in one consumer group draining the same backlog
    into the emptied database (SPEC §2 scale-out)."""
    with make_engine(settings.require_database_url()).begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(DRAINED_TABLES)}"))
    ctx = multiprocessing.get_context("spawn")
    counts = ctx.Queue()
    group = settings.model_copy(update={"consumer_group": f"bench-scale-{uuid.uuid4().hex[:6]}"})
    workers = [
        ctx.Process(target=_collector_process, args=(group, counts), daemon=True)
        for _ in range(processes)
    ]
    for w in workers:
        w.start()
    seen = 0
    first: tuple[float, int] | None = None
    last = 0.0
    try:
        while seen < expected:
            at, n = counts.get(timeout=300)
            first = first or (at, n)
            seen, last = seen + n, at
    finally:
        for w in workers:
            w.terminate()
            w.join(10)
    assert first is not None
    return (seen - first[1]) / (last - first[0])


def run(n: int = 100_000) -> dict[str, Any]:
    with engines("drain") as (db_url, kafka):
        settings = Settings(
            _env_file=None,
            database_url=db_url,  # type: ignore[call-arg]
            kafka_bootstrap_servers=kafka,
            topic_prefix="bench.",
            consumer_group="bench-collector",
            collector_batch_size=2000,
        )
        ensure_topics(settings)
        events = backlog(n)
        tickets = sum(1 for _, _, ev in events if ev.get("type") == "itsm.ticket.created")
        print(
            f"producing {len(events):,} realistic mixed events ({tickets:,} tickets, "
            f"{n // 100:,} duplicates, {n // 500:,} poison) ...",
            flush=True,
        )
        produce_rate = produce(settings, events)
        print(f"bare consumer ×{BARE_RUNS} ...", flush=True)
        # The fastest of a few reads: one read takes ~2 s, and this machine's speed varies
        # from second to second; the collector is compared with the consumer at its best.
        bare = max(bare_consumer(settings, len(events)) for _ in range(BARE_RUNS))
        print("collector ...", flush=True)
        coll = collector(settings, len(events))
        if (coll["duplicates"], coll["dead_letters"]) != (n // 100, n // 500):
            print(
                f"  expected {n // 100:,} duplicates and {n // 500:,} dead letters, the collector "
                f"counted {coll['duplicates']:,} and {coll['dead_letters']:,}",
                flush=True,
            )
        print(f"{SCALE_OUT} collectors in one group ...", flush=True)
        group = scaled_out(settings, len(events), SCALE_OUT)
    return {
        "events": len(events),
        "tickets": tickets,
        "collector_stored": coll["stored"],
        "collector_duplicates": coll["duplicates"],
        "collector_dead_letters": coll["dead_letters"],
        "producer_events_per_s": round(produce_rate),
        "bare_consumer_events_per_s": round(bare),
        "collector_events_per_s": round(coll["events_per_s"]),
        "collector_vs_bare": round(coll["events_per_s"] / bare, 3),
        "collector_batch_p50_ms": round(coll["batch_p50_ms"], 1),
        "collector_batch_p99_ms": round(coll["batch_p99_ms"], 1),
        "collector_batches": coll["batches"],
        "collector_python_cpu_us_per_event": round(coll["python_cpu_us_per_event"], 1),
        "postgres_cpu_us_per_event": round(coll["postgres_cpu_us_per_event"], 1),
        "scaled_out_collectors": SCALE_OUT,
        "scaled_out_events_per_s": round(group),
        "scaled_out_vs_bare": round(group / bare, 3),
    }
