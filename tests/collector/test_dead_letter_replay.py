"""Replaying dead letters (SPEC §3.6): the pure plan, then on the real database and broker, from
the CLI, and through a running collector."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.engine import Engine

from services.collector.consumer import Collector
from services.collector.dead_letters import (
    Replay,
    ReplayReport,
    Selection,
    StillInvalid,
    StoredDeadLetter,
    plan_replay,
    replay,
    select_candidates,
)
from services.collector.metrics import CollectorMetrics
from shared.kafka import producer_config
from shared.settings import Settings
from tests.conftest import Running, wait_until
from tests.e2e.conftest import ROOT, service_env
from tests.helpers import add_dead_letter, read_topic, ticket_event, topic_size, utc

LIMIT = 262_144
PRIORITY_REASON = "data.priority: Input should be a valid integer"


def raw(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def ticket(ticket_id: str, event_id: str, **data: Any) -> bytes:
    return raw(ticket_event(ticket_id, utc(2026, 10, 5, 9), "new", event_id=event_id, **data))


def call(event_id: str) -> bytes:
    return raw(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": "pbx://hq",
            "type": "itsm.servicedesk.call.completed",
            "time": "2026-10-05T09:00:00Z",
            "data": {"call_id": event_id, "answered": True},
        }
    )


def stored(id: int, payload: bytes, topic: str | None = "itsm.tickets") -> StoredDeadLetter:
    return StoredDeadLetter(
        id, utc(2026, 10, 5), "refused by an older contract", payload, topic, 0, id,
        None, None, None, None,
    )  # fmt: skip


def topic_for(suffix: str) -> str:
    return f"itsm.{suffix}"


# --- the plan (pure) ----------------------------------------------------------------------------
def test_now_valid_input_is_planned_back_to_its_original_topic_keyed_by_entity() -> None:
    payload = ticket("INC1", "e1")
    plan = plan_replay([stored(7, payload, "legacy.tickets")], max_bytes=LIMIT, topic_for=topic_for)
    assert plan.replays == [
        Replay(7, "legacy.tickets", b"INC1", payload, True, "itsm.ticket.created", "e1")
    ]
    assert plan.invalid == []


def test_now_valid_input_without_a_topic_goes_to_its_types_topic() -> None:
    plan = plan_replay([stored(3, call("c1"), topic=None)], max_bytes=LIMIT, topic_for=topic_for)
    assert [(r.topic, r.key) for r in plan.replays] == [("itsm.servicedesk", b"c1")]


def test_still_invalid_input_is_reported_with_its_current_reason() -> None:
    letters = [
        stored(1, b"{not json"),
        stored(2, ticket("INC2", "e2", priority="urgent")),
        stored(3, ticket("INC3", "e3", notes="x" * 300)),
    ]
    plan = plan_replay(letters, max_bytes=300, topic_for=topic_for)
    assert plan.replays == []
    assert [i.dead_letter_id for i in plan.invalid] == [1, 2, 3]
    assert plan.invalid[0].reason.startswith("not JSON: ")
    assert plan.invalid[1].reason == PRIORITY_REASON
    size = len(ticket("INC3", "e3", notes="x" * 300))
    assert plan.invalid[2].reason == f"event is {size} bytes, over the 300-byte limit"


def test_force_sends_still_invalid_input_back_unkeyed_but_only_where_it_came_from() -> None:
    bad = ticket("INC2", "e2", priority="urgent")
    plan = plan_replay(
        [stored(1, bad), stored(2, b"{", topic=None)],
        max_bytes=LIMIT,
        topic_for=topic_for,
        force=True,
    )
    assert plan.replays == [
        Replay(1, "itsm.tickets", None, bad, False, "itsm.ticket.created", "e2")
    ]
    [invalid] = plan.invalid
    assert invalid.dead_letter_id == 2
    assert invalid.reason.startswith("not JSON: ")
    assert invalid.reason.endswith(" (no original topic to force it back to)")


# --- on the real engines ------------------------------------------------------------------------
@pytest.fixture
def producer(settings: Settings) -> Iterator[KafkaProducer]:
    p = KafkaProducer(**producer_config(settings))
    yield p
    p.close(timeout=5)


def replayed_at(engine: Engine) -> dict[int, datetime | None]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT id, replayed_at FROM dead_letters")).all())


def test_replay_produces_what_now_passes_and_marks_exactly_those(
    settings: Settings, engine: Engine, producer: KafkaProducer
) -> None:
    good = ticket("INC10", "r-good")
    tickets = settings.topic("tickets")
    good_id = add_dead_letter(engine, good, "refused by an older contract", topic=tickets)
    bad_id = add_dead_letter(
        engine, ticket("INC11", "r-bad", priority="urgent"), PRIORITY_REASON, topic=tickets
    )
    report = replay(engine, producer, settings, Selection())
    assert report.checked == 2
    assert [r.dead_letter_id for r in report.replayed] == [good_id]
    assert report.invalid == [StillInvalid(bad_id, PRIORITY_REASON)]
    [record] = read_topic(settings, "tickets", 1)
    assert (record.key, record.value) == (b"INC10", good)  # the original bytes, keyed by ticket
    assert topic_size(settings, "tickets") == 1  # the still-invalid one was not produced
    marks = replayed_at(engine)
    assert marks[good_id] is not None
    assert marks[bad_id] is None
    # a second replay finds only the still-invalid one
    again = replay(engine, producer, settings, Selection())
    assert (again.checked, again.replayed) == (1, [])


def test_dry_run_produces_and_marks_nothing(
    settings: Settings, engine: Engine, producer: KafkaProducer
) -> None:
    good_id = add_dead_letter(engine, ticket("INC20", "d-good"), "old", topic=None)
    report = replay(engine, None, settings, Selection(), dry_run=True)
    assert [(r.dead_letter_id, r.topic) for r in report.replayed] == [
        (good_id, settings.topic("tickets"))
    ]
    assert topic_size(settings, "tickets") == 0
    assert replayed_at(engine) == {good_id: None}


def test_selection_by_ids_since_and_reason(settings: Settings, engine: Engine) -> None:
    old = add_dead_letter(
        engine, b"{", "not JSON: old", received_at=utc(2026, 1, 1), replayed_at=utc(2026, 1, 2)
    )
    mid = add_dead_letter(engine, b"{", "not JSON: mid", received_at=utc(2026, 6, 1))
    new = add_dead_letter(engine, b"{}", "data.priority: new", received_at=utc(2026, 9, 1))

    def chosen(selection: Selection) -> list[int]:
        with engine.begin() as conn:
            return [d.id for d in select_candidates(conn, selection)]

    assert chosen(Selection()) == [mid, new]  # replayed ones only when asked for by id
    assert chosen(Selection(ids=(old, new))) == [old, new]
    assert chosen(Selection(since=utc(2026, 7, 1))) == [new]
    assert chosen(Selection(reason_contains="NOT json")) == [mid]
    assert chosen(Selection(ids=(old, mid), reason_contains="old")) == [old]


def test_concurrent_replays_skip_each_others_rows(settings: Settings, engine: Engine) -> None:
    first, second = (add_dead_letter(engine, b"{", "not JSON") for _ in range(2))
    with engine.begin() as conn_a, engine.begin() as conn_b:
        a = [d.id for d in select_candidates(conn_a, Selection(), limit=1)]
        b = [d.id for d in select_candidates(conn_b, Selection())]
    assert (a, b) == ([first], [second])


def test_replay_goes_through_every_batch(
    settings: Settings, engine: Engine, producer: KafkaProducer
) -> None:
    tickets = settings.topic("tickets")
    made = [
        add_dead_letter(engine, ticket(f"INC3{n}", f"b-{n}"), "old", topic=tickets)
        if n % 2 == 0
        else add_dead_letter(engine, b"{", "not JSON", topic=tickets)
        for n in range(5)
    ]
    seen: list[int] = []

    def on_batch(report: ReplayReport) -> None:
        seen.append(report.checked)

    report = replay(engine, producer, settings, Selection(), batch_size=2, on_batch=on_batch)
    # 5 rows in batches of 2: checked 2, 4, 5; rows 0, 2, 4 are valid
    assert seen == [2, 4, 5]
    assert [r.dead_letter_id for r in report.replayed] == [made[0], made[2], made[4]]
    assert [i.dead_letter_id for i in report.invalid] == [made[1], made[3]]
    assert {r.key for r in read_topic(settings, "tickets", 3)} == {b"INC30", b"INC32", b"INC34"}


# --- the CLI ------------------------------------------------------------------------------------
def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = service_env(
        ITSM_DATABASE_URL=settings.require_database_url(),
        ITSM_KAFKA_BOOTSTRAP_SERVERS=settings.require_kafka(),
        ITSM_TOPIC_PREFIX=settings.topic_prefix,
    )
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "dead-letters", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_replay_prints_what_it_replayed_and_what_is_still_invalid(
    settings: Settings, engine: Engine
) -> None:
    tickets = settings.topic("tickets")
    good = add_dead_letter(engine, ticket("INC40", "c-good"), "old", topic=tickets)
    bad = add_dead_letter(engine, b"\x00garbage", "not JSON", topic=tickets)
    dry = cli(settings, "replay", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        "would replay 1, still invalid 1",
        f"  would replay #{good} to {tickets}: itsm.ticket.created c-good",
        f"  still invalid #{bad}: not JSON: unexpected character, expected a JSON value: "
        "line 1 column 1 (char 0)",
        "dry run: nothing produced or marked",
    ]
    assert topic_size(settings, "tickets") == 0
    result = cli(settings, "replay")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "replayed 1, still invalid 1"
    assert "checking 2 dead letters" in result.stderr  # progress goes to stderr
    assert [r.key for r in read_topic(settings, "tickets", 1)] == [b"INC40"]
    assert replayed_at(engine)[good] is not None


def test_cli_list_prints_a_table_without_terminal_escapes(
    settings: Settings, engine: Engine
) -> None:
    red = add_dead_letter(engine, b"{", "not JSON: \x1b[31mred\x1b[0m", topic="itsm.tickets")
    add_dead_letter(engine, b"{}", "data.priority: Input should be a valid integer")
    result = cli(settings, "list", "--reason", "not json")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "id",
        "received",
        "replayed",
        "topic",
        "type",
        "event",
        "id",
        "reason",
    ]
    assert len(lines) == 2
    assert "\x1b" not in result.stdout
    # id, date, time, replayed, topic, reason; no type and no event id
    cells = lines[1].split()
    expected = [str(red), "no", "itsm.tickets", "not", "JSON:", "?[31mred?[0m"]
    assert [cells[0], *cells[3:]] == expected


def test_cli_list_with_a_zero_limit_is_one_line(settings: Settings) -> None:
    result = cli(settings, "list", "--limit", "0")
    assert result.returncode == 1
    assert result.stderr.strip() == "itsm-metrics: limit must be at least 1, got 0"


def test_cli_replay_of_an_unknown_id_is_one_line(settings: Settings) -> None:
    result = cli(settings, "replay", "--id", "999")
    assert result.returncode == 1
    assert result.stderr.strip() == "itsm-metrics: no dead letter with id 999"


# --- end to end through a running collector ----------------------------------------------------
@pytest.fixture
def collector(settings: Settings, engine: Engine) -> Iterator[Collector]:
    c = Collector(settings, engine, CollectorMetrics(CollectorRegistry()))
    running = Running(c.run, c.stop_event.set)
    yield c
    running.stop()


def scalar(engine: Engine, sql: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def test_a_replayed_dead_letter_ends_up_in_the_events_table(
    settings: Settings, engine: Engine, producer: KafkaProducer, collector: Collector
) -> None:
    tickets = settings.topic("tickets")
    good = ticket("INC50", "e2e-good")
    add_dead_letter(engine, good, "refused by an older contract", topic=tickets)
    add_dead_letter(
        engine, ticket("INC51", "e2e-bad", priority="x"), PRIORITY_REASON, topic=tickets
    )
    report = replay(engine, producer, settings, Selection())
    assert len(report.replayed) == 1
    wait_until(
        lambda: scalar(engine, "SELECT count(*) FROM events WHERE id = 'e2e-good'") == 1,
        what="the replayed event stored",
    )
    assert scalar(engine, "SELECT state FROM tickets WHERE ticket_id = 'INC50'") == "new"
    # the still-invalid one was never produced, so it cannot come back as a new dead letter
    assert topic_size(settings, "tickets") == 1
    assert scalar(engine, "SELECT count(*) FROM dead_letters") == 2


def test_a_forced_replay_of_still_invalid_input_lands_as_a_new_dead_letter(
    settings: Settings, engine: Engine, producer: KafkaProducer, collector: Collector
) -> None:
    bad = ticket("INC60", "forced", priority="x")
    old = add_dead_letter(engine, bad, PRIORITY_REASON, topic=settings.topic("tickets"))
    report = replay(engine, producer, settings, Selection(ids=(old,)), force=True)
    assert [(r.dead_letter_id, r.valid) for r in report.replayed] == [(old, False)]
    wait_until(
        lambda: scalar(engine, "SELECT count(*) FROM dead_letters") == 2,
        what="the forced replay dead-lettered again",
    )
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, reason, raw, replayed_at FROM dead_letters ORDER BY id")
        ).all()
    assert rows[0].id == old and rows[0].replayed_at is not None
    assert (rows[1].reason, bytes(rows[1].raw), rows[1].replayed_at) == (PRIORITY_REASON, bad, None)
    assert scalar(engine, "SELECT count(*) FROM events") == 0
