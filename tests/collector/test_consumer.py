"""The collector on the real broker and database: one long-lived consumer for the module."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from kafka import KafkaConsumer, KafkaProducer
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.engine import Engine

from services.collector.consumer import Collector
from services.collector.metrics import CollectorMetrics
from shared.db import make_engine
from shared.kafka import CONSUMER_TIMINGS, ensure_topics
from shared.settings import Settings
from tests.conftest import Postgres, Running, make_settings, wait_until
from tests.helpers import ticket_event, utc


@dataclass
class Stack:
    settings: Settings
    engine: Engine
    producer: KafkaProducer
    registry: CollectorRegistry

    def send(
        self, value: bytes | dict[str, object], key: str = "k", topic: str = "tickets"
    ) -> None:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        self.producer.send(self.settings.topic(topic), key=key.encode(), value=raw)
        self.producer.flush()

    def scalar(self, sql: str, **params: object) -> object:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def counter(self, outcome: str, etype: str) -> float:
        value = self.registry.get_sample_value(
            "itsm_collector_events_total",
            {"topic": self.settings.topic("tickets"), "type": etype, "outcome": outcome},
        )
        return value or 0.0


@pytest.fixture(scope="module")
def stack(postgres: Postgres, kafka_bootstrap: str) -> Iterator[Stack]:
    settings = make_settings(postgres.fresh(), kafka_bootstrap)
    ensure_topics(settings)
    engine = make_engine(settings.require_database_url())
    registry = CollectorRegistry()
    collector = Collector(settings, engine, CollectorMetrics(registry))
    running = Running(collector.run, collector.stop_event.set)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    yield Stack(settings, engine, producer, registry)
    producer.close()
    running.stop()
    engine.dispose()


def test_valid_ticket_events_are_stored_and_projected(stack: Stack) -> None:
    stack.send(ticket_event("C1", utc(2026, 10, 5, 9), "new", service="email"), key="C1")
    stack.send(ticket_event("C1", utc(2026, 10, 5, 9, 30), "resolved"), key="C1")
    wait_until(
        lambda: stack.scalar("SELECT state FROM tickets WHERE ticket_id='C1'") == "resolved",
        what="ticket C1 resolved",
    )
    assert stack.scalar("SELECT count(*) FROM events WHERE entity_id='C1'") == 2
    assert stack.scalar("SELECT count(*) FROM dirty_windows") > 0


def test_duplicate_is_counted_and_ignored(stack: Stack) -> None:
    ev = ticket_event("C2", utc(2026, 10, 5, 9), "new", event_id="dup-1")
    before = stack.counter("duplicate", "itsm.ticket.created")
    stack.send(ev, key="C2")
    stack.send(ev, key="C2")
    wait_until(
        lambda: stack.counter("duplicate", "itsm.ticket.created") == before + 1,
        what="the duplicate to be counted",
    )
    assert stack.scalar("SELECT count(*) FROM events WHERE id='dup-1'") == 1


POISON = [
    (b"{not json", "not JSON"),
    (b"[]", "event must be a JSON object"),
    (
        json.dumps(ticket_event("P1", "2026-10-05T09:00:00", "new")).encode(),
        "time: Input should have timezone info",
    ),
    (
        json.dumps(ticket_event("P2", utc(2026, 10, 5), "new", priority="urgent")).encode(),
        "data.priority: Input should be a valid integer",
    ),
    (
        json.dumps(
            {**ticket_event("P3", utc(2026, 10, 5), "new"), "type": "itsm.ticket.bogus"}
        ).encode(),
        "unknown event type",
    ),
    (
        json.dumps(ticket_event("P5", utc(2026, 10, 5), "new", service="mail\x00")).encode(),
        "NUL character",
    ),
    ("Ünïcode but not UTF-8".encode("latin-1"), "not UTF-8 text"),
    # an integer wider than its column (once a poison batch: "out of range for type integer")
    (
        json.dumps(ticket_event("P8", utc(2026, 10, 5), "new", reassignment_count=2**40)).encode(),
        "data.reassignment_count: Input should be less than or equal to 2147483647",
    ),
    # nesting the projections could not write back as JSON (once a poison batch)
    (
        json.dumps(ticket_event("P9", utc(2026, 10, 5), "new", notes="X"))
        .replace('"X"', "[" * 300 + "]" * 300)
        .encode(),
        "nested deeper than 32 levels",
    ),
    # JSON that Python's json module reads and PostgreSQL refuses (once a poison batch)
    (
        json.dumps(ticket_event("P6", utc(2026, 10, 5), "new", notes="X"))
        .replace('"X"', "NaN")
        .encode(),
        "not JSON",
    ),
    (
        json.dumps(ticket_event("P7", utc(2026, 10, 5), "new", notes="X"))
        .replace('"X"', '"\\ud800"')
        .encode(),
        "not JSON",
    ),
    (
        json.dumps(ticket_event("P4", utc(2026, 10, 5), "new", notes="x" * 300_000)).encode(),
        "over the 262144-byte limit",
    ),
]


def test_poison_messages_become_dead_letters_and_the_next_event_still_lands(stack: Stack) -> None:
    for raw, _ in POISON:
        stack.send(raw, key="poison")
    stack.send(ticket_event("C3", utc(2026, 10, 5, 9), "new"), key="C3")
    wait_until(
        lambda: stack.scalar("SELECT count(*) FROM tickets WHERE ticket_id='C3'") == 1,
        what="the valid event behind the poison",
    )
    with stack.engine.connect() as conn:
        rows = conn.execute(
            text('SELECT reason, raw, topic, "offset" FROM dead_letters ORDER BY "offset"')
        ).all()
    assert len(rows) == len(POISON)
    for (raw, reason), row in zip(POISON, rows, strict=True):
        assert reason in row.reason
        assert bytes(row.raw) == raw  # the raw bytes are kept for replay
        assert row.topic == stack.settings.topic("tickets")
    # not JSON, not an object: no readable type
    wait_until(
        lambda: (
            (
                stack.registry.get_sample_value(
                    "itsm_collector_events_total",
                    {
                        "topic": stack.settings.topic("tickets"),
                        "type": "unknown",
                        "outcome": "dead_letter",
                    },
                )
                or 0
            )
            >= 2
        ),
        what="the dead letters to be counted",
    )


def test_dead_letters_are_published_with_their_reason(stack: Stack) -> None:
    consumer = KafkaConsumer(
        stack.settings.deadletter_topic,
        bootstrap_servers=stack.settings.kafka_bootstrap_servers,
        group_id=f"{stack.settings.consumer_group}-dlq",
        auto_offset_reset="earliest",
        **CONSUMER_TIMINGS,
    )
    try:
        seen: list[dict[str, bytes]] = []

        def poll() -> bool:
            for records in consumer.poll(500).values():
                seen.extend(dict(r.headers) for r in records)
            return len(seen) >= len(POISON)

        wait_until(poll, timeout=30, what="dead letters on the topic")
    finally:
        consumer.close()
    assert any(b"not JSON" in h["reason"] for h in seen)
    assert all(h["topic"] == stack.settings.topic("tickets").encode() for h in seen)


def test_hostile_strings_are_stored_literally(stack: Stack) -> None:
    hostile = "x'); DROP TABLE tickets; -- <img src=x onerror=alert(1)>"
    stack.send(ticket_event("C4", utc(2026, 10, 5, 9), "new", service=hostile), key="C4")
    wait_until(
        lambda: stack.scalar("SELECT service FROM tickets WHERE ticket_id='C4'") == hostile,
        what="the hostile service name stored as data",
    )
    assert stack.scalar("SELECT count(*) FROM tickets") >= 1


def test_event_of_another_type_on_the_tickets_topic_is_accepted(stack: Stack) -> None:
    call = {
        "specversion": "1.0",
        "id": "call-1",
        "source": "pbx://hq",
        "type": "itsm.servicedesk.call.completed",
        "time": "2026-10-05T09:00:00Z",
        "data": {"call_id": "call-1", "answered": True, "handle_seconds": 200},
    }
    stack.send(call, key="call-1")
    wait_until(
        lambda: stack.scalar("SELECT entity_kind FROM events WHERE id='call-1'") == "call",
        what="the call event stored",
    )


def test_a_batch_stored_is_counted_when_its_offsets_commit_fails(
    postgres: Postgres, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker timing out the offsets' commit (just after it thawed, in the soak) leaves the
    batch stored: it is counted as stored then, and comes again from the last commit as a
    duplicate (the soak had counted 161 events fewer than the table held)."""
    from kafka.errors import KafkaTimeoutError

    settings = make_settings(postgres.fresh(), kafka_bootstrap)
    ensure_topics(settings)
    engine = make_engine(settings.require_database_url())
    registry = CollectorRegistry()
    stack = Stack(settings, engine, KafkaProducer(bootstrap_servers=kafka_bootstrap), registry)
    failures = [KafkaTimeoutError("injected: the commit timed out")]
    commit = KafkaConsumer.commit

    def failing_commit(self: KafkaConsumer, *args: object, **kwargs: object) -> None:
        if failures:
            raise failures.pop()
        commit(self, *args, **kwargs)

    monkeypatch.setattr(KafkaConsumer, "commit", failing_commit)
    collector = Collector(settings, engine, CollectorMetrics(registry))
    running = Running(collector.run, collector.stop_event.set)
    try:
        stack.send(ticket_event("CC1", utc(2026, 10, 5, 9), "new"), key="CC1")
        wait_until(
            lambda: stack.counter("duplicate", "itsm.ticket.created") == 1,
            what="the batch again after the failed commit",
        )
        assert not failures  # the commit did fail once
        assert stack.counter("stored", "itsm.ticket.created") == 1
        assert stack.scalar("SELECT count(*) FROM events WHERE entity_id = 'CC1'") == 1
    finally:
        running.stop()
        stack.producer.close()
        engine.dispose()
