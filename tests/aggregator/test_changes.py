"""A recent hour kept by what changed in it (services/aggregator/changes.py): every write to
`tickets` leaves the row as it was; an hour dirtied by tickets' changes alone adds what they
changed since its partials' snapshot, new minus old, and ends exactly where a recompute from
its rows would — also while a collector commits during the computation."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from services.aggregator import changes
from services.aggregator.compute import catalog_params, query_points
from services.aggregator.jobs import Aggregator
from services.aggregator.policy import stored_groupings
from services.catalog import active_catalog, apply_catalog
from shared.db import make_engine
from tests.aggregator.test_merge import (
    BACKLOG,
    NOW,
    TICKETS,
    computed_points,
    drain,
    same,
    stored_points,
)
from tests.aggregator.test_oracle import CATALOG
from tests.conftest import Postgres
from tests.helpers import UTC_TZ, aggregator, store, ticket_event, utc

HOUR_START = utc(2026, 10, 4, 16)  # an hour of a recent day (NOW: 10-04 18:00)
WINDOWS = (
    ("hour", [utc(2026, 10, 4) + timedelta(hours=h) for h in range(24)]),
    ("day", [utc(2026, 10, 3), utc(2026, 10, 4)]),
    ("week", [utc(2026, 9, 28)]),
    ("month", [utc(2026, 10, 1)]),
)


@pytest.fixture
def db(postgres: Postgres) -> Iterator[Engine]:
    eng = make_engine(postgres.fresh())
    with eng.begin() as conn:
        apply_catalog(conn, CATALOG, "changes.yaml")
    yield eng
    eng.dispose()


def renewed(agg: Aggregator) -> dict[str, float]:
    return {
        by: agg.metrics.hours_renewed.labels(by)._value.get()  # type: ignore[attr-defined]
        for by in ("changes", "rows")
    }


def at(minute: int, hour: datetime = HOUR_START) -> datetime:
    return hour + timedelta(minutes=minute)


def assert_exact(engine: Engine) -> None:
    """Every stored point of the ticket indicators equals the same statement over the rows."""
    wanted = {i.id for i in TICKETS + BACKLOG}
    for kind, starts in WINDOWS:
        got = {k: v for k, v in stored_points(engine, kind).items() if k[0] in wanted}
        got = {k: v for k, v in got.items() if k[1] in starts}
        expected = computed_points(engine, kind, starts, TICKETS + BACKLOG, NOW)
        assert got.keys() == expected.keys(), kind
        assert {k: (got[k], expected[k]) for k in got if not same(got[k], expected[k])} == {}


def assert_partials_exact(engine: Engine) -> None:
    """The hour partials equal the hours' points at the day's groupings, from the rows."""
    hours = [(h, h + timedelta(hours=1)) for h in WINDOWS[0][1]]
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT indicator, window_start, dimensions, count, sum_v, sum_w "
                "FROM indicator_partials WHERE window_start >= :day"
            ),
            {"day": utc(2026, 10, 4)},
        ).all()
        params = catalog_params(active_catalog(conn), UTC_TZ)
        expected = {
            (i.id, p.window_start, tuple(sorted(p.dimensions.items()))): (p.value, p.count)
            for i in TICKETS
            for g in stored_groupings(i, "day")
            for p in query_points(conn, i, hours, g, {}, now=NOW, params=params)
        }
    got = {}
    for r in rows:
        value = (
            float(r.sum_v / r.sum_w)
            if r.sum_w is not None
            else float(r.sum_v / r.count)
            if r.sum_v is not None
            else float(r.count)
        )
        got[(r.indicator, r.window_start, tuple(sorted(r.dimensions.items())))] = (value, r.count)
    assert got.keys() == expected.keys()
    assert {k: (got[k], expected[k]) for k in got if not same(got[k], expected[k])} == {}


def test_every_write_to_tickets_leaves_the_row_as_it_was(db: Engine) -> None:
    store(db, [ticket_event("C1", at(5), "new", service="email", priority=2)])
    store(db, [ticket_event("C1", at(20), "resolved")])
    with db.connect() as conn:
        rows = conn.execute(
            text("SELECT entity_kind, entity_id, old FROM row_changes ORDER BY id")
        ).all()
    assert [(r.entity_kind, r.entity_id) for r in rows] == [("ticket", "C1"), ("ticket", "C1")]
    assert rows[0].old is None  # a new row: nothing before it
    assert rows[1].old["state"] == "new"  # the row before the resolution
    assert rows[1].old["resolved_at"] is None
    assert rows[1].old["service"] == "email"


def test_an_hour_kept_by_its_changes_ends_where_its_recompute_would(db: Engine) -> None:
    store(
        db,
        [
            ticket_event(f"K{n}", at(n), "new", kind="incident", service="email", priority=3)
            for n in range(6)
        ],
    )
    first = drain(db)
    assert renewed(first)["rows"] == 24  # a new recent day: every hour from its rows
    batches: list[list[dict[str, Any]]] = [
        # new tickets in the hour, one of them resolved in it
        [
            ticket_event("K6", at(30), "new", kind="incident", service="erp", priority=1),
            ticket_event("K6", at(50), "resolved"),
        ],
        # a ticket moves to another service and group: its opened sample changes dimensions
        [ticket_event("K1", at(35), "assigned", service="erp", assignment_group="net")],
        # resolutions in the next hour and the same one; a reassignment counted at resolution
        [
            ticket_event("K2", at(70), "resolved"),
            ticket_event("K3", at(40), "assigned", assignment_group="db"),
            ticket_event("K3", at(45), "assigned", assignment_group="net"),
            ticket_event("K3", at(55), "resolved"),
        ],
        # a reopen: the resolution leaves its hour
        [ticket_event("K6", at(58), "in_progress")],
        # a late event placing an earlier opening (out of order)
        [ticket_event("K7", at(2), "new", kind="service_request", service="email", priority=4)],
    ]
    by_changes = 0.0
    for batch in batches:
        store(db, batch)
        agg = drain(db)
        by_changes += renewed(agg)["changes"]
        assert renewed(agg)["rows"] == 0, "no hour of the recent day recomputed from its rows"
        assert_exact(db)
    # two writes of one ticket, committed apart, before the next computation: the earliest
    # holds the row as the partials' snapshot saw it
    store(db, [ticket_event("K4", at(36), "assigned", assignment_group="db")])
    store(db, [ticket_event("K4", at(48), "resolved", service="erp")])
    agg = drain(db)
    assert renewed(agg)["rows"] == 0
    by_changes += renewed(agg)["changes"]
    assert_exact(db)
    assert by_changes >= len(batches) + 1
    assert_partials_exact(db)


def test_a_recompute_command_or_an_old_snapshot_renews_the_hour_from_its_rows(
    db: Engine,
) -> None:
    store(db, [ticket_event("R1", at(5), "new", service="email")])
    drain(db)
    aggregator(db, clock=lambda: NOW).mark_since(HOUR_START, HOUR_START + timedelta(minutes=30))
    assert renewed(drain(db)) == {"changes": 0, "rows": 1}
    with db.begin() as conn:  # the snapshot grows older than changes.FRESH
        conn.execute(
            text("UPDATE partial_snapshots SET taken_at = now() - CAST(:age AS interval)"),
            {"age": changes.FRESH + timedelta(seconds=1)},
        )
    store(db, [ticket_event("R2", at(9), "new", service="erp")])
    stale = renewed(drain(db))  # the hour, and those the open tickets' backlog moved in
    assert stale["changes"] == 0 and stale["rows"] >= 1
    store(db, [ticket_event("R3", at(12), "new", service="erp")])
    fresh = renewed(drain(db))  # the snapshots are fresh again
    assert fresh["changes"] >= 1 and fresh["rows"] == 0
    assert_exact(db)


def test_changes_committed_during_the_computation_are_added_next_time(db: Engine) -> None:
    """A collector keeps committing while the aggregator computes the same hour: each write
    lands exactly once (before the snapshot an hour's statement reads, or after it)."""
    rng = random.Random(11)
    store(db, [ticket_event(f"W{n}", at(n), "new", service="email") for n in range(20)])
    drain(db)
    stop = threading.Event()
    written = []

    def write() -> None:
        n = 0
        while not stop.is_set() and n < 400:
            tid = f"W{rng.randrange(40)}"
            state = rng.choice(["new", "assigned", "resolved", "in_progress"])
            service = rng.choice(["email", "erp", "crm"])
            minute = rng.randrange(0, 110)
            store(db, [ticket_event(tid, at(minute), state, service=service, kind="incident")])
            written.append(tid)
            n += 1

    writer = threading.Thread(target=write)
    writer.start()
    kept = 0.0
    try:
        while writer.is_alive():
            kept += renewed(drain(db))["changes"]
    finally:
        stop.set()
        writer.join()
    kept += renewed(drain(db))["changes"]
    assert len(written) >= 50 and kept > 0
    assert_exact(db)


def test_changes_every_snapshot_saw_are_forgotten(db: Engine) -> None:
    store(db, [ticket_event("F1", at(5), "new", service="email")])
    drain(db)
    store(db, [ticket_event("F2", at(6), "new", service="email")])  # after the snapshot
    agg = aggregator(db)
    assert agg.forget_changes() >= 1  # F1's write, which every snapshot sees
    with db.connect() as conn:
        kept = "SELECT entity_id FROM row_changes WHERE entity_kind = 'ticket'"
        assert conn.execute(text(kept)).scalars().all() == ["F2"]
    with db.begin() as conn:
        conn.execute(text("DELETE FROM partial_snapshots"))
    with db.begin() as holding:  # a transaction recording a snapshot has not committed
        holding.execute(text("SELECT pg_advisory_xact_lock_shared(hashtext('itsm-row-changes'))"))
        assert agg.forget_changes() == 0
    assert agg.forget_changes() >= 1  # no snapshot left: every finished write goes
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM row_changes")).scalar_one() == 0


def test_the_changes_job_deletes_without_holding_the_passes_lock(db: Engine) -> None:
    """Only the bound is computed under the lock every snapshot-recording pass shares; the
    changes below it are deleted after, while such a pass holds it (deleting a million-ticket
    month's changes under it had every point-lane pass wait 1.5–2 s)."""
    store(db, [ticket_event(f"B{i}", at(5), "new", service="email") for i in range(5)])
    with db.begin() as conn:
        conn.execute(text("DELETE FROM partial_snapshots"))  # no snapshot: all of them go
        bound = changes.forget_bound(conn)
    assert bound is not None
    store(db, [ticket_event("B5", at(6), "new", service="email")])  # written after the bound
    with db.begin() as holding:  # a pass recording a snapshot, from now on
        holding.execute(text("SELECT pg_advisory_xact_lock_shared(hashtext('itsm-row-changes'))"))
        with db.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '2s'"))  # waiting for it would fail
            assert changes.forget_before(conn, bound) == 5
    assert aggregator(db).forget_changes() == 1  # B5's, with a bound of its own
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM row_changes")).scalar_one() == 0


def test_sla_ratios_are_kept_by_the_changes_of_tickets_and_their_evaluations(
    postgres: Postgres,
) -> None:
    """The SLA ratios read `ticket_sla` joined with `tickets`: a response or resolution decided
    later, by an event or by the SLA job, changes the evaluation; a reassignment changes the
    ticket; both are added from what changed."""
    from tests.aggregator.test_sla import CATALOG as SLA_CATALOG

    eng = make_engine(postgres.fresh())
    with eng.begin() as conn:
        apply_catalog(conn, SLA_CATALOG, "sla.yaml")
    store(
        eng,
        [
            ticket_event(f"S{n}", at(n), "new", kind="incident", service="email", priority=1)
            for n in range(4)
        ],
    )
    drain(eng)
    batches = [
        [ticket_event("S0", at(10), "in_progress")],  # responded within 15 minutes: met
        [ticket_event("S1", at(40), "in_progress", assignment_group="net")],  # late: breached
        [ticket_event("S2", at(50), "resolved")],
        [ticket_event("S4", at(55), "new", kind="incident", service="erp", priority=1)],
    ]
    for batch in batches:
        store(eng, batch)
        agg = drain(eng)
        assert renewed(agg)["rows"] == 0
        assert_exact(eng)
    ratio = stored_points(eng, "day")[("incident_sla_response_met_ratio", utc(2026, 10, 4), ())]
    # S0 met; S1, S2, S3 breached at 16:16-16:18 (responded late or never), S4 at 17:10
    assert ratio[:2] == (0.2, 5)
    eng.dispose()


def test_which_indicators_are_kept_by_changes() -> None:
    """The ticket indicators and the SLA ratios read tracked projections; the others (changes,
    calls, alerts…) are recomputed from their rows."""
    from services.aggregator.compute import plans
    from services.aggregator.indicators import all_indicators

    kept = {
        i.id: changes.rows_of(p)
        for p in plans([i for i in all_indicators() if i.mergeable])
        for i in p
    }
    sla = kept["incident_sla_resolution_met_ratio"]
    assert sla is not None
    assert (sla.tables, sla.key) == ((("ticket_sla", "s"), ("tickets", "t")), "ticket_id")
    opened = kept["ticket_opened_count"]
    assert opened is not None and opened.tables == (("tickets", ""),)
    assert kept["change_count"] is None and kept["call_answer_ratio"] is None
    assert {i for i, r in kept.items() if r is not None} >= {
        "ticket_resolved_count",
        "incident_resolution_time_seconds",
        "incident_sla_response_met_ratio",
        "major_incident_count",
    }
