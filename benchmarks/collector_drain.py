"""Drain a backlog of mixed events from Kafka into PostgreSQL with the collector, beside a bare
kafka-python consumer (+ json.loads) reading the same topics in the same run (issue 5)."""

from __future__ import annotations

import json
import multiprocessing
import random
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from benchmarks.engines import engines
from services.collector.consumer import Collector
from services.collector.metrics import CollectorMetrics
from services.collector.projections.registry import PROJECTIONS
from services.collector.store import BatchResult
from shared import logging as itsm_logging
from shared.db import make_engine
from shared.kafka import CONSUMER_TIMINGS, ensure_topics
from shared.settings import Settings

SERVICES = ["email", "erp", "crm", "network", "vpn", "hr-portal"]
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


def mixed_events(n: int, seed: int = 1) -> list[tuple[str, str, dict[str, Any]]]:
    """(topic suffix, key, event): tickets with lifecycles, changes, alerts, CIs, calls, surveys,
    measurements, ~1% duplicates and ~0.2% poison."""
    rng = random.Random(seed)
    base = datetime(2026, 10, 1, tzinfo=UTC)
    out: list[tuple[str, str, dict[str, Any]]] = []

    def ev(etype: str, when: datetime, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "source": "bench://itsm",
            "type": etype,
            "time": when.isoformat(),
            "data": data,
        }

    i = 0
    while len(out) < n:
        i += 1
        t = base + timedelta(seconds=rng.randint(0, 30 * 86400))
        roll = rng.random()
        if roll < 0.6:
            tid = f"INC{i:07d}"
            common = {
                "ticket_id": tid,
                "service": rng.choice(SERVICES),
                "priority": rng.randint(1, 4),
            }
            for k, state in enumerate(["new", "assigned", "in_progress", "resolved"]):
                kind = "created" if k == 0 else ("resolved" if state == "resolved" else "updated")
                out.append(
                    (
                        "tickets",
                        tid,
                        ev(
                            f"itsm.ticket.{kind}",
                            t + timedelta(minutes=20 * k),
                            {
                                **common,
                                "state": state,
                                "sequence": k + 1,
                                "assignment_group": "desk",
                            },
                        ),
                    )
                )
        elif roll < 0.7:
            cid = f"CHG{i:07d}"
            for k, verb in enumerate(["requested", "approved", "implemented"]):
                out.append(
                    (
                        "changes",
                        cid,
                        ev(
                            f"itsm.change.{verb}",
                            t + timedelta(hours=k),
                            {
                                "change_id": cid,
                                "change_type": "normal",
                                "outcome": "successful" if k == 2 else None,
                            },
                        ),
                    )
                )
        elif roll < 0.8:
            aid = f"AL{i:07d}"
            for k, verb in enumerate(["firing", "resolved"]):
                out.append(
                    (
                        "monitoring",
                        aid,
                        ev(
                            f"itsm.monitor.alert.{verb}",
                            t + timedelta(minutes=7 * k),
                            {"alert_id": aid, "ci_id": f"ci{i % 300}", "severity": "critical"},
                        ),
                    )
                )
        elif roll < 0.85:
            out.append(
                (
                    "config",
                    f"ci{i % 300}",
                    ev(
                        "itsm.config.ci.upserted",
                        t,
                        {"ci_id": f"ci{i % 300}", "services": [rng.choice(SERVICES)]},
                    ),
                )
            )
        elif roll < 0.93:
            out.append(
                (
                    "servicedesk",
                    f"CALL{i}",
                    ev(
                        "itsm.servicedesk.call.completed",
                        t,
                        {
                            "call_id": f"CALL{i}",
                            "answered": rng.random() < 0.9,
                            "handle_seconds": rng.randint(30, 900),
                        },
                    ),
                )
            )
        elif roll < 0.98:
            out.append(
                (
                    "feedback",
                    f"S{i}",
                    ev(
                        "itsm.feedback.survey.completed",
                        t,
                        {"survey_id": f"S{i}", "score": rng.randint(1, 5)},
                    ),
                )
            )
        else:
            out.append(
                (
                    "feedback",
                    "training",
                    ev(
                        "itsm.measurement.recorded",
                        t,
                        {
                            "indicator": "training_hours",
                            "value": 2.0,
                            "period_start": t.isoformat(),
                            "period_end": (t + timedelta(hours=8)).isoformat(),
                        },
                    ),
                )
            )
    out = out[:n]
    for _ in range(n // 100):  # duplicates
        out.insert(rng.randrange(len(out)), out[rng.randrange(len(out))])
    for _ in range(n // 500):  # poison
        out.insert(rng.randrange(len(out)), ("tickets", "poison", {"not": "an event"}))
    return out


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
        seen += (
            sum(result.stored.values())
            + sum(result.duplicate.values())
            + sum(result.dead_letter.values())
        )
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
        events = mixed_events(n)
        print(f"producing {len(events):,} mixed events ...", flush=True)
        produce_rate = produce(settings, events)
        print(f"bare consumer ×{BARE_RUNS} ...", flush=True)
        # The fastest of a few reads: one read takes ~2 s, and this machine's speed varies
        # from second to second; the collector is compared with the consumer at its best.
        bare = max(bare_consumer(settings, len(events)) for _ in range(BARE_RUNS))
        print("collector ...", flush=True)
        coll = collector(settings, len(events))
        print(f"{SCALE_OUT} collectors in one group ...", flush=True)
        group = scaled_out(settings, len(events), SCALE_OUT)
    return {
        "events": len(events),
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
