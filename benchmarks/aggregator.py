"""Aggregator benchmarks (issue 6): the recompute of one month of every indicator over 1,000,000
tickets, and event-to-indicator freshness with collector + aggregator running at 1,000 events/s."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaProducer
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from benchmarks.engines import engines
from services.aggregator.jobs import Aggregator
from services.aggregator.metrics import AggregatorMetrics
from services.collector.consumer import Collector
from services.collector.metrics import CollectorMetrics
from shared.db import make_engine
from shared.kafka import ensure_topics
from shared.settings import Settings

# One month of tickets written straight into the projection (this measures the recompute, not
# the ingest): October 2026, services × priorities × groups, 90 % resolved after 10 min–3 days.
_TICKETS = text(
    """
    INSERT INTO tickets (ticket_id, kind, state, service, priority, assignment_group, opened_at,
                         responded_at, resolved_at, reassignments, reopens, last_event_time,
                         event_count, snapshot, knowledge_article_ids, major)
    SELECT 'B' || g, CASE WHEN g % 10 < 8 THEN 'incident' ELSE 'service_request' END,
           CASE WHEN g % 10 = 9 THEN 'in_progress' ELSE 'resolved' END,
           (ARRAY['email','erp','crm','network','vpn','hr-portal'])[1 + g % 6], 1 + g % 4,
           (ARRAY['desk','network-ops','apps','infra'])[1 + g % 4],
           o, o + interval '5 minutes',
           CASE WHEN g % 10 = 9 THEN NULL ELSE o + (600 + (g * 7919) % 259200) * interval '1 s' END,
           (g % 7 = 0)::int, (g % 31 = 0)::int, o, 3, '{}'::jsonb,
           CASE WHEN g % 5 = 0 THEN ARRAY['KB1'] ELSE '{}' END, g % 997 = 0
    FROM generate_series(1::bigint, :n) AS g,
         LATERAL (SELECT timestamptz '2026-10-01 00:00+00'
                         + ((g * 2654435761) % 2592000) * interval '1 s' AS o) AS t
    """
)


def recompute_month(n: int = 1_000_000) -> dict[str, Any]:
    with engines("recompute") as (db_url, _kafka):
        engine = make_engine(db_url)
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(_TICKETS, {"n": n})
        with engine.begin() as conn:
            conn.execute(text("ANALYZE tickets"))
        load_s = time.perf_counter() - started
        settings = Settings(_env_file=None, database_url=db_url)  # type: ignore[call-arg]
        agg = Aggregator(settings, engine, AggregatorMetrics(CollectorRegistry()))
        agg.mark_since(datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 31, 23, tzinfo=UTC))
        print(f"  {n:,} tickets loaded in {load_s:.1f} s; recomputing October ...", flush=True)
        started = time.perf_counter()
        windows = 0
        while (done := agg.recompute_dirty(limit=100_000)) > 0:
            windows += done
        elapsed = time.perf_counter() - started
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM indicator_values")).scalar_one()
        engine.dispose()
    return {
        "tickets": n,
        "windows": windows,
        "points_stored": stored,
        "recompute_seconds": round(elapsed, 1),
    }


def freshness(rate: float = 1000.0, seconds: float = 30.0) -> dict[str, Any]:
    """Two measures of event-to-indicator freshness: end to end, from sending the k-th ticket
    creation to the first poll (every 20 ms) of the stored month count showing k tickets; and
    the aggregator's own histogram (receipt → recompute), as bucket upper bounds."""
    created: list[float] = []  # monotonic send time of each creation, in order
    seen: list[tuple[float, int]] = []  # (monotonic poll time, stored count)
    with engines("fresh") as (db_url, kafka):
        settings = Settings(
            _env_file=None,
            database_url=db_url,  # type: ignore[call-arg]
            kafka_bootstrap_servers=kafka,
            topic_prefix="fresh.",
            consumer_group="fresh",
            aggregator_interval_seconds=0.5,
        )
        ensure_topics(settings)
        engine = make_engine(db_url)
        collector = Collector(settings, engine, CollectorMetrics(CollectorRegistry()))
        agg_metrics = AggregatorMetrics(CollectorRegistry())
        aggregator = Aggregator(settings, engine, agg_metrics)
        stop = threading.Event()
        threads = [
            threading.Thread(target=collector.run, daemon=True),
            threading.Thread(target=aggregator.run, args=(stop,), daemon=True),
        ]
        for t in threads:
            t.start()
        time.sleep(5)  # consumer group join
        producer = KafkaProducer(bootstrap_servers=kafka, acks="all", linger_ms=5)
        watcher = threading.Thread(target=_watch_opened, args=(engine, stop, seen), daemon=True)
        watcher.start()
        sent = 0
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            due = int(elapsed * rate)
            while sent < due:
                now = datetime.now(UTC)
                if sent % 2 == 0:
                    created.append(time.monotonic())
                tid = f"F{sent // 2}"
                state = "new" if sent % 2 == 0 else "resolved"
                ev = {
                    "specversion": "1.0",
                    "id": uuid.uuid4().hex,
                    "source": "bench://fresh",
                    "type": f"itsm.ticket.{'created' if state == 'new' else 'resolved'}",
                    "time": now.isoformat(),
                    "data": {
                        "ticket_id": tid,
                        "state": state,
                        "service": "email",
                        "priority": 1 + sent % 4,
                    },
                }
                producer.send("fresh.tickets", key=tid.encode(), value=json.dumps(ev).encode())
                sent += 1
            time.sleep(0.01)
        producer.flush()
        time.sleep(10)  # let the last batches through
        stop.set()
        collector.stop_event.set()
        for t in threads:
            t.join(30)
        engine.dispose()
    samples = sorted(_freshness_samples(agg_metrics))
    latencies = sorted(_end_to_end(created, seen))
    return {
        "events": sent,
        "rate_per_s": rate,
        "freshness_p50_s": _quantile(latencies, 0.5),
        "freshness_p99_s": _quantile(latencies, 0.99),
        "freshness_max_s": latencies[-1] if latencies else None,
        "freshness_measured": f"{len(latencies)} of {len(created)} ticket creations",
        "histogram_p50_le_s": _quantile(samples, 0.5),
        "histogram_p99_le_s": _quantile(samples, 0.99),
    }


_OPENED = text(
    """
    SELECT coalesce(sum(count), 0) FROM indicator_values
    WHERE indicator = 'ticket_opened_count' AND window_kind = 'month' AND dimensions = '{}'
    """
)


def _watch_opened(engine: Any, stop: threading.Event, seen: list[tuple[float, int]]) -> None:
    """Poll the stored count of opened tickets (the month totals, so midnight does not reset
    it) every 20 ms until stopped."""
    with engine.connect() as conn:
        while not stop.is_set():
            count = int(conn.execute(_OPENED).scalar_one())
            conn.commit()  # a new snapshot for the next poll
            seen.append((time.monotonic(), count))
            time.sleep(0.02)


def _end_to_end(created: list[float], seen: list[tuple[float, int]]) -> list[float]:
    """For the k-th creation, the first poll at which k creations were counted, minus its send
    time. Creations never counted are left out (reported as measured k of n)."""
    out = []
    i = 0
    for k, sent_at in enumerate(created, start=1):
        while i < len(seen) and seen[i][1] < k:
            i += 1
        if i == len(seen):
            break
        out.append(round(max(0.0, seen[i][0] - sent_at), 3))
    return out


def _freshness_samples(metrics: AggregatorMetrics) -> list[float]:
    """Expand the histogram's buckets into bucket upper bounds (a conservative estimate)."""
    out: list[float] = []
    previous = 0.0
    for metric in metrics.freshness.collect():
        for s in metric.samples:
            if s.name.endswith("_bucket") and s.labels["le"] != "+Inf":
                out.extend([float(s.labels["le"])] * int(s.value - previous))
                previous = s.value
    return out


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(q * (len(values) - 1) + 0.5))]


def run() -> dict[str, Any]:
    result = recompute_month()
    result.update(freshness())
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2, default=str))
