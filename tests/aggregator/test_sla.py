"""SLA evaluation and the SLA indicators (SPEC §6.2, §5.2), hand-computed.

Office calendar (UTC for easy arithmetic): Mon–Fri 09:00–17:00, Wednesday 2026-10-07 a holiday.
2026-10-02 is a Friday, 10-05 a Monday."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from services.aggregator.sla import Target, evaluate, evaluate_pending
from services.catalog import apply_catalog, parse_catalog
from shared.db import ticket_sla
from tests.helpers import aggregate, points, store, ticket_event, utc

CATALOG = """
customers: [{id: acme, name: Acme}]
services:
  - {id: email, name: Email, customer: acme}
  - {id: erp, name: ERP, customer: acme}
calendars:
  - id: office
    timezone: UTC
    hours: {mon-fri: "09:00-17:00"}
    holidays: [2026-10-07]
sla_policies:
  - {id: p1, service: "*", priorities: [1], response_target: 15m, resolution_target: 4h}
  - id: email-office
    service: email
    priorities: [2, 3]
    response_target: 1h
    resolution_target: 8h
    calendar: office
"""


def t(day: int, h: int, m: int = 0) -> datetime:
    return utc(2026, 10, day, h, m)


def ticket(
    opened: datetime,
    transitions: list[tuple[datetime, str]],
    *,
    service: str = "email",
    priority: int = 2,
) -> dict[str, Any]:
    responded = next((when for when, s in transitions if s != "new"), None)
    resolved = next((when for when, s in reversed(transitions) if s == "resolved"), None)
    return {
        "service": service,
        "priority": priority,
        "opened_at": opened,
        "responded_at": responded,
        "resolved_at": resolved,
        "transitions": [[when.isoformat(), s] for when, s in transitions],
    }


@pytest.fixture(scope="module")
def catalog() -> Any:
    return parse_catalog(CATALOG)


NOW = t(25, 12)  # long after everything below


def test_resolution_across_a_weekend_counts_office_hours_only(catalog: Any) -> None:
    # Fri 16:00 → Mon 15:00: Fri 16–17 (1 h) + Mon 09–15 (6 h) = 7 h ≤ 8 h: met, at resolution
    tk = ticket(t(2, 16), [(t(2, 16), "new"), (t(2, 16, 30), "assigned"), (t(5, 15), "resolved")])
    ev = evaluate(tk, catalog, NOW)
    assert ev.policy_id == "email-office"
    assert ev.response == Target(3600.0, t(2, 17), True, t(2, 16, 30))  # 30 min ≤ 1 h
    # the 8 h deadline: Fri 16–17 (1 h) + Mon 09–16 (7 h) → Mon 16:00
    assert ev.resolution == Target(28800.0, t(5, 16), True, t(5, 15))


def test_pending_time_does_not_count(catalog: Any) -> None:
    # Mon 09:00 → Tue 12:00, pending Mon 10:00–14:00: Mon 8 h − 4 h + Tue 09–12 3 h = 7 h: met
    tk = ticket(
        t(5, 9),
        [
            (t(5, 9), "new"),
            (t(5, 9, 30), "in_progress"),
            (t(5, 10), "pending"),
            (t(5, 14), "in_progress"),
            (t(6, 12), "resolved"),
        ],
    )
    assert evaluate(tk, catalog, NOW).resolution.met is True
    # the same ticket without the pause: 8 h + 3 h = 11 h > 8 h: breached when the 8th office
    # hour ended, Mon 17:00 (the same business instant as Tue 09:00; the earlier is reported)
    no_pause = ticket(
        t(5, 9), [(t(5, 9), "new"), (t(5, 9, 30), "in_progress"), (t(6, 12), "resolved")]
    )
    assert evaluate(no_pause, catalog, NOW).resolution == Target(28800.0, t(5, 17), False, t(5, 17))


def test_open_incident_breaches_where_its_target_passes_with_no_event(catalog: Any) -> None:
    # opened Tue 13:00: Tue 13–17 (4 h), Wed holiday, Thu 09–13 (4 h) → due Thu 10-08 13:00
    tk = ticket(t(6, 13), [(t(6, 13), "new"), (t(6, 13, 20), "assigned")])
    before = evaluate(tk, catalog, t(8, 12))
    assert before.resolution == Target(28800.0, t(8, 13), None, None)  # open, not decided
    after = evaluate(tk, catalog, t(8, 14))
    assert after.resolution == Target(28800.0, t(8, 13), False, t(8, 13))


def test_late_response_is_breached_where_the_target_passed(catalog: Any) -> None:
    # P1 (24×7): opened 10:00, responded 10:20 > 15 min → breached at 10:15
    tk = ticket(
        t(5, 10),
        [(t(5, 10), "new"), (t(5, 10, 20), "assigned"), (t(5, 12), "resolved")],
        service="erp",
        priority=1,
    )
    ev = evaluate(tk, catalog, NOW)
    assert (ev.policy_id, ev.response.met, ev.response.decided_at) == ("p1", False, t(5, 10, 15))
    assert ev.resolution == Target(14400.0, t(5, 14), True, t(5, 12))  # 2 h ≤ 4 h


def test_an_incident_no_policy_covers_is_left_out(catalog: Any) -> None:
    tk = ticket(t(5, 9), [(t(5, 9), "new")], priority=4)
    assert evaluate(tk, catalog, NOW).policy_id is None


def test_paused_forever_is_never_decided(catalog: Any) -> None:
    tk = ticket(t(5, 9), [(t(5, 9), "new"), (t(5, 9, 10), "pending")])
    assert evaluate(tk, catalog, NOW).resolution == Target(28800.0, None, None, None)


# --- on PostgreSQL, through the collector's store and the aggregator ---------------------------
@pytest.fixture
def sla_day(engine: Engine) -> Engine:
    with engine.begin() as conn:
        apply_catalog(conn, CATALOG, "test")
    e = ticket_event
    store(
        engine,
        [
            # A: email P2, response met Fri, resolution met Mon 15:00
            e("A", t(2, 16), "new", service="email", priority=2),
            e("A", t(2, 16, 30), "assigned"),
            e("A", t(5, 15), "resolved"),
            # B: email P3, response met Mon 09:30, pending 10–14, resolution met Tue 12:00
            e("B", t(5, 9), "new", service="email", priority=3),
            e("B", t(5, 9, 30), "in_progress"),
            e("B", t(5, 10), "pending"),
            e("B", t(5, 14), "in_progress"),
            e("B", t(6, 12), "resolved"),
            # C: email P2 opened Tue 13:00, still open: resolution breached Thu 13:00
            e("C", t(6, 13), "new", service="email", priority=2),
            e("C", t(6, 13, 20), "assigned"),
            # D: erp P1, response breached Mon 10:15, resolution met Mon 12:00
            e("D", t(5, 10), "new", service="erp", priority=1),
            e("D", t(5, 10, 20), "assigned"),
            e("D", t(5, 12), "resolved"),
            # E: no policy (P4)
            e("E", t(5, 9), "new", service="email", priority=4),
            e("E", t(5, 9, 5), "resolved"),
        ],
    )
    aggregate(engine)
    return engine


def test_sla_resolution_ratio_by_decision_window(sla_day: Engine) -> None:
    # 10-05: A (met 15:00), D (met 12:00) → 2 / 2; 10-06: B met → 1 / 1; 10-08: C breached → 0 / 1
    def day(d: int) -> tuple[float, int]:
        p = points(sla_day, "incident_sla_resolution_met_ratio", "day", utc(2026, 10, d))
        return p["value"], p["count"]

    assert (day(5), day(6), day(8)) == ((1.0, 2), (1.0, 1), (0.0, 1))
    # October: A, B, D met, C breached → 3 / 4; E has no policy and is left out
    p = points(sla_day, "incident_sla_resolution_met_ratio", "month", utc(2026, 10, 1))
    assert (p["value"], p["count"]) == (0.75, 4)


def test_sla_response_ratio(sla_day: Engine) -> None:
    # 10-05: B met (09:30), D breached (10:15) → 1 / 2; 10-02: A met → 1 / 1
    p = points(sla_day, "incident_sla_response_met_ratio", "day", utc(2026, 10, 5))
    assert (p["value"], p["count"]) == (0.5, 2)
    p = points(sla_day, "incident_sla_response_met_ratio", "day", utc(2026, 10, 2))
    assert (p["value"], p["count"]) == (1.0, 1)


def test_scheduled_job_detects_a_breach_without_an_event(engine: Engine) -> None:
    with engine.begin() as conn:
        apply_catalog(conn, CATALOG, "test")
    store(engine, [ticket_event("F", t(6, 13), "new", service="email", priority=2)])
    catalog = parse_catalog(CATALOG)

    def run(now: datetime) -> Any:
        with engine.begin() as conn:
            evaluate_pending(conn, catalog, "sha", now)
            return conn.execute(select(ticket_sla).where(ticket_sla.c.ticket_id == "F")).one()

    before = run(t(8, 12))
    assert (before.resolution_met, before.resolution_due) == (None, t(8, 13))
    after = run(t(8, 13) + timedelta(seconds=1))  # nothing happened to the ticket
    assert (after.resolution_met, after.resolution_decided_at) == (False, t(8, 13))


def test_a_passed_deadline_marks_where_it_passed_not_the_unchanged_response(
    engine: Engine,
) -> None:
    """An incident responded on the 6th whose resolution deadline passes on the 8th: the pass
    that breaches it marks the 8th, not the 6th, where its response (met, unchanged) was
    decided; a whole old day was recomputed for nothing."""
    from sqlalchemy import text

    with engine.begin() as conn:
        apply_catalog(conn, CATALOG, "test")
    store(
        engine,
        [
            ticket_event("H", t(6, 13), "new", service="email", priority=2),
            ticket_event("H", t(6, 13, 30), "in_progress", service="email", priority=2),
        ],
    )
    catalog = parse_catalog(CATALOG)

    def marked(now: datetime) -> list[tuple[datetime, datetime]]:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM dirty_windows"))
            evaluate_pending(conn, catalog, "sha", now)
            return [
                (r.range_start, r.range_end)
                for r in conn.execute(
                    text("SELECT range_start, range_end FROM dirty_windows WHERE scope = 'sla'")
                )
            ]

    assert marked(t(8, 12)) == [(t(6, 13, 30), t(6, 13, 30))]  # first evaluation: responded
    breached = marked(t(8, 13) + timedelta(seconds=1))  # nothing happened to the ticket
    assert breached == [(t(8, 13), t(8, 13))]
    store(engine, [ticket_event("H", t(8, 14), "resolved", service="email", priority=2)])
    # the incident was written: both its targets' places (its dimensions may have moved)
    assert sorted(marked(t(8, 15))) == [(t(6, 13, 30), t(6, 13, 30)), (t(8, 13), t(8, 13))]


def test_later_passes_read_only_the_incidents_written_since(engine: Engine) -> None:
    """After a first pass over every incident, a pass reads the incidents written since its
    snapshot and the deadlines passed (services/aggregator/sla.py), not every incident; a new
    catalog version scans them all again."""
    from sqlalchemy import text

    with engine.begin() as conn:
        apply_catalog(conn, CATALOG, "test")
    store(
        engine,
        [
            ticket_event(tid, t(5, 10), "new", service="email", priority=2)
            for tid in ("G1", "G2", "G3")
        ],
    )
    catalog = parse_catalog(CATALOG)

    def run(sha: str = "sha") -> int:
        with engine.begin() as conn:
            return evaluate_pending(conn, catalog, sha, t(5, 11))

    assert run() == 3  # the first pass: every incident
    assert run() == 0
    store(engine, [ticket_event("G2", t(5, 10, 30), "in_progress", service="email", priority=2)])
    with engine.begin() as conn:  # G3 looks stale to a full scan, but nobody wrote it
        conn.execute(
            text("UPDATE ticket_sla SET ticket_updated_at = '2000-01-01' WHERE ticket_id = 'G3'")
        )
    assert run() == 1  # G2, written since: responded at 10:30, met
    with engine.begin() as conn:
        responded = conn.execute(
            select(ticket_sla.c.response_met).where(ticket_sla.c.ticket_id == "G2")
        ).scalar_one()
    assert responded is True
    assert run("another-sha") == 3  # a new catalog version: every incident again
