"""Two collectors folding the same entities at once (a type may arrive on another topic, SPEC §3):
each batch re-folds its entities from their whole history, so without serialisation per entity
the later commit overwrites the other's projection with a fold missing the other's events."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import Engine

from services.collector.projections.registry import PROJECTIONS
from services.collector.store import Incoming, store_batch
from shared.db import make_engine
from shared.events import validate_event
from tests.conftest import Postgres
from tests.helpers import cloud_event, october, store, ticket_event

TABLES = {p.table.name: p.key for p in PROJECTIONS.values() if p.kind in ("ticket", "change")}


def rows(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    with engine.connect() as conn:
        return {
            table: [
                {k: v for k, v in r._mapping.items() if k != "updated_at"}
                for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY {key}"))
            ]
            for table, key in TABLES.items()
        }


def stored_events(engine: Engine) -> list[dict[str, Any]]:
    """Every stored event, as the CloudEvent it was."""
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT source, id, type, time, subject, data FROM events ORDER BY source, id")
        )
        return [
            {
                "specversion": "1.0",
                "source": r.source,
                "id": r.id,
                "type": r.type,
                "time": r.time.isoformat(),
                **({"subject": r.subject} if r.subject else {}),
                "data": r.data,
            }
            for r in found
        ]


@pytest.fixture
def refold(postgres: Postgres) -> Iterator[Engine]:
    """A second database, where the stored events are folded again in one batch."""
    eng = make_engine(postgres.fresh())
    yield eng
    eng.dispose()


def both_write_at_once(engine: Engine, upsert_of: str) -> None:
    """Make each transaction wait (up to a second) at its upsert of `upsert_of` for the other
    to get there too: without per-entity serialisation both have then read the entities'
    histories and states before either commits, the lost update's interleaving, every time.
    With it the second is still waiting for the entities, and the first goes on alone."""
    barrier = threading.Barrier(2)

    @event.listens_for(engine, "before_cursor_execute")
    def meet(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().startswith(f"INSERT INTO {upsert_of} "):
            # broken: the other one is waiting for the entities, so this one goes on alone
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=1)


def store_concurrently(engine: Engine, batches: list[list[dict[str, Any]]]) -> None:
    """Each batch in its own transaction, all at once, as collectors of two topics would."""
    errors: list[BaseException] = []

    def run(batch: list[dict[str, Any]], topic: str) -> None:
        items = [Incoming(validate_event(e), topic, 0, n) for n, e in enumerate(batch)]
        try:
            with engine.begin() as conn:
                store_batch(conn, items, [])
        except BaseException as err:  # reported in the test's thread
            errors.append(err)

    threads = [
        threading.Thread(target=run, args=(b, f"itsm.topic{n}")) for n, b in enumerate(batches)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors


def test_two_collectors_folding_the_same_entities_at_once_lose_no_event(
    engine: Engine, refold: Engine
) -> None:
    # Existing entities: two tickets and a change, each with a stored state.
    store(
        engine,
        [
            ticket_event("T1", october(9), "new", service="email", priority=3),
            ticket_event("T2", october(9), "new", service="email", priority=3),
            cloud_event(
                "itsm.change.requested", october(9), "c-req", change_id="C1", state="requested"
            ),
        ],
    )
    both_write_at_once(engine, "tickets")
    # Two collectors, two topics, the same entities: one source updates T1 and T2 and the
    # change, the other resolves them; T3 is new to both (neither has a row to read).
    first = [
        ticket_event("T1", october(10), "assigned", source="test://a", assignment_group="net"),
        ticket_event("T2", october(10), "assigned", source="test://a", assignment_group="db"),
        ticket_event("T3", october(11), "new", source="test://a", service="vpn", priority=2),
        cloud_event("itsm.change.approved", october(10), "c-ok", change_id="C1", state="approved"),
    ]
    second = [
        ticket_event("T1", october(12), "resolved", source="test://b"),
        ticket_event("T2", october(12), "resolved", source="test://b"),
        ticket_event("T3", october(12), "in_progress", source="test://b", assignee="ann"),
        cloud_event(
            "itsm.change.implemented",
            october(13),
            "c-done",
            change_id="C1",
            state="implemented",
            outcome="successful",
        ),
    ]
    store_concurrently(engine, [first, second])

    events = stored_events(engine)
    assert len(events) == 3 + 4 + 4
    store(refold, events)  # every stored event, folded again in one transaction
    folded, again = rows(engine), rows(refold)
    assert folded == again
    # T1: created, assigned, resolved; T3: created by one source, worked by the other
    by_id = {r["ticket_id"]: r for r in folded["tickets"]}
    assert [by_id[t]["event_count"] for t in ("T1", "T2", "T3")] == [3, 3, 2]
    assert by_id["T1"]["state"] == "resolved" and by_id["T1"]["assignment_group"] == "net"
    assert by_id["T3"]["service"] == "vpn" and by_id["T3"]["assignee"] == "ann"
    [change] = folded["changes"]
    assert change["event_count"] == 3 and change["outcome"] == "successful"


def test_a_batch_locks_each_entity_once_whatever_its_size(engine: Engine) -> None:
    # One statement for the whole batch: a statement count that does not grow with the events.
    statements: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def count(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    store(engine, [ticket_event(f"L{n}", october(9), "new") for n in range(200)])
    assert sum("pg_advisory_xact_lock" in s for s in statements) == 1
