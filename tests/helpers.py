"""Small builders shared by tests: CloudEvents and a direct store → aggregate path."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import cast, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine

from services.aggregator.jobs import Aggregator
from services.aggregator.snapshot import Snapshot
from services.collector.store import Incoming, store_batch
from shared.db import indicator_points
from shared.events import validate_event
from shared.settings import Settings

_ids = itertools.count(1)
# An aggregator's settings in tests: no slower cadence for the costly parts of current windows,
# every hour kept (the fixtures live in October 2026, whatever the date of the run), and the
# server's default work_mem: the fixtures' few rows are computed ~4x faster with it than with
# the 64 MB a million-ticket month needs (each statement sizes its hash tables up to it).
TEST_SETTINGS = Settings(
    _env_file=None,  # type: ignore[call-arg]
    aggregator_slow_seconds=0,
    hour_retention_days=36500,
    aggregator_work_mem_mb=4,
)
UTC_TZ = ZoneInfo("UTC")
# What "now" is for the tests' aggregators unless a test gives its own clock: noon of the day
# after the fixtures' October 2026 (a day begun, as on a real clock). Fixed, so that what depends
# on the clock (an open ticket's backlog up to now, SLA deadlines passing, which hours are kept)
# is the same whatever day the suite runs: on the real clock an open fixture ticket's backlog
# was recomputed for every hour since October, and the suite grew by the day. Tests whose events
# happen "today" pass `clock=real_clock`.
FIXTURES_NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


def fixtures_clock() -> datetime:
    return FIXTURES_NOW


class Clock:
    """A clock a test sets (`clock.now = …`) and hands to the app or an aggregator."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def real_clock() -> datetime:
    return datetime.now(UTC)


def ticket_event(
    ticket_id: str,
    at: datetime | str,
    state: str,
    *,
    event_type: str | None = None,
    event_id: str | None = None,
    source: str = "test://itsm",
    **data: Any,
) -> dict[str, Any]:
    when = at if isinstance(at, str) else at.isoformat()
    etype = event_type or {
        "new": "itsm.ticket.created",
        "resolved": "itsm.ticket.resolved",
        "closed": "itsm.ticket.closed",
        "cancelled": "itsm.ticket.cancelled",
    }.get(state, "itsm.ticket.updated")
    body = cloud_event(
        etype,
        when,
        event_id or f"evt-{next(_ids)}",
        source=source,
        ticket_id=ticket_id,
        state=state,
        **data,
    )
    return {**body, "subject": ticket_id}


def cloud_event(
    event_type: str, at: datetime | str, event_id: str, *, source: str = "test://itsm", **data: Any
) -> dict[str, Any]:
    """A CloudEvent of any type, `data` as given."""
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": source,
        "type": event_type,
        "time": at if isinstance(at, str) else at.isoformat(),
        "data": data,
    }


def october(h: int, m: int = 0, day: int = 5) -> datetime:
    """An instant of October 2026 (UTC): the month most hand-made fixtures live in."""
    return utc(2026, 10, day, h, m)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def store(engine: Engine, events: list[dict[str, Any]]) -> None:
    """Validate and store events as the collector does (one transaction)."""
    items = [Incoming(validate_event(e), "test.tickets", 0, i) for i, e in enumerate(events)]
    with engine.begin() as conn:
        store_batch(conn, items, [])


def aggregator(
    engine: Engine,
    settings: Settings | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Aggregator:
    """An aggregator with its own metrics registry (several may exist in one test process), on
    the fixtures' clock unless given one."""
    from prometheus_client import CollectorRegistry

    from services.aggregator.metrics import AggregatorMetrics

    return Aggregator(
        settings or TEST_SETTINGS,
        engine,
        AggregatorMetrics(CollectorRegistry()),
        clock=clock or fixtures_clock,
    )


def aggregate(
    engine: Engine, settings: Settings | None = None, clock: Callable[[], datetime] | None = None
) -> int:
    """Recompute every dirty window (as of `clock`, default the fixtures' now); returns how many
    were recomputed."""
    agg = aggregator(engine, settings, clock)
    agg.evaluate_sla()  # as the scheduled job does before recomputing
    total = 0
    while (n := agg.recompute_dirty()) > 0:
        total += n
    return total


def publish(
    engine: Engine, settings: Settings | None = None, clock: Callable[[], datetime] | None = None
) -> Snapshot:
    """Render and store the /metrics snapshot now, as the aggregator's `exposition` job does,
    so that a scrape serves what the test just aggregated."""
    snapshot = aggregator(engine, settings, clock).publish_exposition()
    assert snapshot is not None, "the snapshot was not stored (see the log)"
    return snapshot


def points(
    engine: Engine,
    indicator: str,
    window: str,
    start: datetime,
    *,
    tz: ZoneInfo = UTC_TZ,
    now: datetime = FIXTURES_NOW,
    **dims: str,
) -> dict[str, Any] | None:
    """The point of one indicator window for exactly these dimensions (None if absent): the
    stored one, or, for a grouping that is not stored, the one computed at query time (as the
    api answers it) in the reporting time zone `tz` at `now` (default the fixtures' now)."""
    from services.aggregator.compute import catalog_params, query_points
    from services.aggregator.indicators import get
    from services.aggregator.policy import is_stored
    from services.catalog import active_catalog
    from shared.windows import window_end

    ind = get(indicator)
    iv = indicator_points.c
    with engine.connect() as conn:
        if ind is not None and not is_stored(ind, window, tuple(dims)):
            end = window_end(window, start, tz)
            found = query_points(
                conn,
                ind,
                [(start, end)],
                tuple(dims),
                dims,
                now=now,
                params=catalog_params(active_catalog(conn), tz),
            )
            return next(
                (
                    {"value": p.value, "count": p.count, "p50": p.p50, "p90": p.p90}
                    for p in found
                    if p.dimensions == dims
                ),
                None,
            )
        row = conn.execute(
            select(iv.value, iv["count"], iv.p50, iv.p90).where(
                iv.indicator == indicator,
                iv.window_kind == window,
                iv.window_start == start,
                iv.dimensions == cast(dims, JSONB),
            )
        ).first()
    return None if row is None else dict(row._mapping)


def read_topic(settings: Settings, suffix: str, n: int, timeout: float = 30) -> list[Any]:
    """The first `n` records of a topic (all partitions, from the start), without a consumer
    group, so no group join to wait for."""
    from kafka import KafkaConsumer, TopicPartition

    from tests.conftest import wait_until

    topic = settings.topic(suffix)
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, auto_offset_reset="earliest"
    )
    got: list[Any] = []
    try:
        partitions = wait_until(
            lambda: consumer.partitions_for_topic(topic), what=f"metadata of {topic}"
        )
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])

        def poll() -> bool:
            for records in consumer.poll(500).values():
                got.extend(records)
            return len(got) >= n

        wait_until(poll, timeout=timeout, what=f"{n} records on {topic}")
    finally:
        consumer.close()
    return got


def topic_size(settings: Settings, suffix: str) -> int:
    """How many records were ever produced to a topic (sum of its partitions' end offsets)."""
    from kafka import KafkaConsumer, TopicPartition

    from tests.conftest import wait_until

    topic = settings.topic(suffix)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        partitions = wait_until(
            lambda: consumer.partitions_for_topic(topic), what=f"metadata of {topic}"
        )
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(ends.values())
    finally:
        consumer.close()


def add_dead_letter(engine: Engine, raw: bytes, reason: str, **columns: Any) -> int:
    """Insert one row into `dead_letters` as the collector would have; returns its id."""
    from sqlalchemy import insert

    from shared.db import dead_letters

    with engine.begin() as conn:
        return int(
            conn.execute(
                insert(dead_letters)
                .values(raw=raw, reason=reason, **columns)
                .returning(dead_letters.c.id)
            ).scalar_one()
        )


def collector_env(s: Settings, **extra: str) -> dict[str, str]:
    """Environment of a collector process on these settings."""
    from tests.e2e.conftest import service_env

    return service_env(
        ITSM_DATABASE_URL=s.require_database_url(),
        ITSM_KAFKA_BOOTSTRAP_SERVERS=s.require_kafka(),
        ITSM_TOPIC_PREFIX=s.topic_prefix,
        ITSM_CONSUMER_GROUP=s.consumer_group,
        ITSM_COLLECTOR_BATCH_SIZE=str(s.collector_batch_size),
        **extra,
    )


def produce_tickets(s: Settings, n_tickets: int) -> int:
    """Each ticket: created, then resolved 30 minutes later. Returns events produced."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=s.require_kafka(), acks="all", linger_ms=5)
    sent = 0
    for i in range(n_tickets):
        tid = f"K{i:05d}"
        for ev in (
            ticket_event(tid, utc(2026, 10, 5, 9), "new", service="email"),
            ticket_event(tid, utc(2026, 10, 5, 9, 30), "resolved"),
        ):
            producer.send(s.topic("tickets"), key=tid.encode(), value=json.dumps(ev).encode())
            sent += 1
    producer.flush()
    producer.close()
    return sent


def metric_samples(port: int, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of one metric that the process serving /metrics on `port` exposes now
    (none when it does not answer)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    try:
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return []
    return [
        (s.labels, s.value)
        for fam in text_string_to_metric_families(body)
        for s in fam.samples
        if s.name == name
    ]


def collector_events(port: int, outcome: str = "stored") -> float:
    """How many events the collector serving /metrics on `port` counted with this outcome."""
    return sum(
        v
        for labels, v in metric_samples(port, "itsm_collector_events_total")
        if labels["outcome"] == outcome
    )


def counts(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(
            conn.execute(
                text(
                    """SELECT (SELECT count(*) FROM events) AS events,
                      (SELECT count(*) FROM tickets) AS tickets,
                      (SELECT coalesce(sum(event_count), 0) FROM tickets) AS projected,
                      (SELECT count(*) FROM tickets WHERE state = 'resolved') AS resolved"""
                )
            )
            .one()
            ._mapping
        )
