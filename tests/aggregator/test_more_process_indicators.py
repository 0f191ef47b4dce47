"""Process indicators of SPEC §5.2 on one hand-made day (2026-10-05, UTC), on real PostgreSQL.
Every expectation is computed by hand in the comment beside it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from shared.db import make_engine
from tests.conftest import Postgres
from tests.helpers import (
    aggregate,
    cloud_event,
    october,
    points,
    real_clock,
    store,
    ticket_event,
    utc,
)

DAY = utc(2026, 10, 5)

t = october


ev = cloud_event


@pytest.fixture(scope="module")
def day(postgres: Postgres) -> Iterator[Engine]:
    engine = make_engine(postgres.fresh())
    e = ticket_event
    events = [
        # I1 email p2 desk: opened 09:00, assigned 09:10, resolved 09:20; KB1 used
        e("I1", t(9), "new", service="email", priority=2),
        e("I1", t(9, 10), "assigned", assignment_group="desk"),
        e("I1", t(9, 20), "resolved", knowledge_article_ids=["KB1"]),
        # I2 email p3: desk 09:30, reassigned to network 10:00, resolved 12:00; linked to PRB1
        e("I2", t(9), "new", service="email", priority=3),
        e("I2", t(9, 30), "assigned", assignment_group="desk"),
        e("I2", t(10), "assigned", assignment_group="network"),
        e("I2", t(12), "resolved", problem_id="PRB1"),
        # I3 erp p1 major: in progress 10:05, resolved 10:20, reopened 10:40, resolved 11:00
        e("I3", t(10), "new", service="erp", priority=1, major=True, assignment_group="apps"),
        e("I3", t(10, 5), "in_progress"),
        e("I3", t(10, 20), "resolved"),
        e("I3", t(10, 40), "in_progress", event_type="itsm.ticket.reopened"),
        e("I3", t(11), "resolved"),
        # I4 erp p2: resolved 13:00 straight from new, the source says first contact
        e("I4", t(11), "new", service="erp", priority=2, assignment_group="apps"),
        e("I4", t(13), "resolved", first_contact_resolution=True),
        # I5: caused by change C3, still open
        e("I5", t(13), "new", service="email", priority=3, caused_by_change_id="C3"),
        # P1 problem: opened 10-01 09:00, resolved 10-05 09:00
        e("P1", t(9, day=1), "new", kind="problem", service="email"),
        e("P1", t(9), "resolved"),
        # S1 service request: not an incident
        e("S1", t(9), "new", kind="service_request", service="email"),
        e("S1", t(9, 5), "resolved"),
        # changes
        ev(
            "itsm.change.requested",
            t(9, day=4),
            "c1a",
            change_id="C1",
            change_type="normal",
            service="erp",
        ),
        ev("itsm.change.approved", t(12, day=4), "c1b", change_id="C1"),
        ev(
            "itsm.change.implemented",
            t(10),
            "c1c",
            change_id="C1",
            actual_end=t(10).isoformat(),
            outcome="successful",
        ),
        ev(
            "itsm.change.requested",
            t(8),
            "c2a",
            change_id="C2",
            change_type="emergency",
            service="erp",
        ),
        ev(
            "itsm.change.implemented",
            t(9),
            "c2b",
            change_id="C2",
            actual_end=t(9).isoformat(),
            outcome="failed",
        ),
        ev(
            "itsm.change.requested",
            t(6),
            "c3a",
            change_id="C3",
            change_type="normal",
            service="email",
        ),
        ev("itsm.change.implemented", t(12), "c3b", change_id="C3", outcome="successful"),
        ev(
            "itsm.change.requested",
            t(13),
            "c4a",
            change_id="C4",
            change_type="normal",
            service="email",
        ),
        ev("itsm.change.implemented", t(14), "c4b", change_id="C4"),
        # C5: no change type, implemented on 10-06: counts as a non-emergency change there
        ev("itsm.change.implemented", t(9, day=6), "c5", change_id="C5"),
        # calls
        ev(
            "itsm.servicedesk.call.completed",
            t(9),
            "k1",
            call_id="K1",
            answered=True,
            handle_seconds=200,
            ticket_id="I1",
        ),
        ev(
            "itsm.servicedesk.call.completed",
            t(9),
            "k2",
            call_id="K2",
            answered=True,
            handle_seconds=400,
        ),
        ev("itsm.servicedesk.call.completed", t(9), "k3", call_id="K3", answered=False),
        ev(
            "itsm.servicedesk.call.completed",
            t(9),
            "k4",
            call_id="K4",
            answered=True,
            handle_seconds=300,
            ticket_id="I2",
        ),
        # CMDB audits
        ev(
            "itsm.config.audit.completed",
            t(9),
            "a1",
            audit_id="A1",
            cis_checked=100,
            discrepancies=5,
        ),
        ev(
            "itsm.config.audit.completed",
            t(15),
            "a2",
            audit_id="A2",
            cis_checked=300,
            discrepancies=15,
        ),
        # knowledge: KB1 published 10-01, updated today; KB2 published 10-03; KB3 retired 10-04
        ev(
            "itsm.knowledge.article.published",
            t(9, day=1),
            "kb1a",
            article_id="KB1",
            service="email",
        ),
        ev("itsm.knowledge.article.updated", t(10), "kb1b", article_id="KB1"),
        ev(
            "itsm.knowledge.article.published",
            t(9, day=3),
            "kb2a",
            article_id="KB2",
            service="email",
        ),
        ev(
            "itsm.knowledge.article.published", t(9, day=2), "kb3a", article_id="KB3", service="erp"
        ),
        ev("itsm.knowledge.article.retired", t(9, day=4), "kb3b", article_id="KB3"),
        # surveys
        ev(
            "itsm.feedback.survey.completed", t(16), "s1", survey_id="SV1", score=5, service="email"
        ),
        ev(
            "itsm.feedback.survey.completed", t(16), "s2", survey_id="SV2", score=4, service="email"
        ),
        ev("itsm.feedback.survey.completed", t(16), "s3", survey_id="SV3", score=2, service="erp"),
        # CI1 exists since 10-01; today: with approved C1 (ok), without change (unauthorised),
        # with unapproved C4 (unauthorised); CI2 is new today (not counted)
        ev("itsm.config.ci.upserted", t(9, day=1), "ci1a", ci_id="CI1"),
        ev("itsm.config.ci.upserted", t(10), "ci1b", ci_id="CI1", change_id="C1"),
        ev("itsm.config.ci.upserted", t(11), "ci1c", ci_id="CI1"),
        ev("itsm.config.ci.upserted", t(12), "ci1d", ci_id="CI1", change_id="C4"),
        ev("itsm.config.ci.upserted", t(12), "ci2a", ci_id="CI2"),
    ]
    store(engine, events)
    aggregate(engine)
    yield engine
    engine.dispose()


def value(engine: Engine, indicator: str, **dims: str) -> tuple[float, int]:
    p = points(engine, indicator, "day", DAY, **dims)
    assert p is not None, f"{indicator} {dims} has no point"
    return round(p["value"], 6), p["count"]


@pytest.mark.parametrize(
    ("indicator", "dims", "expected"),
    [
        # responded today: I1 600, I2 1800, I3 300, I4 7200 (first move out of new) → 9900 / 4
        ("incident_response_time_seconds", {}, (2475.0, 4)),
        # resolved today: I1 1200, I2 10800, I3 3600 (to the last resolution), I4 7200 → 22800 / 4
        ("incident_resolution_time_seconds", {}, (5700.0, 4)),
        # I2 was reassigned: 1 of 4; email: I1, I2 → 1 of 2
        ("incident_reassignment_ratio", {}, (0.25, 4)),
        ("incident_reassignment_ratio", {"service": "email"}, (0.5, 2)),
        ("incident_dispatch_accuracy_ratio", {}, (0.75, 4)),
        # I3 was reopened
        ("incident_reopen_ratio", {}, (0.25, 4)),
        # I1 (no reassignment, 20 min ≤ 30) and I4 (the source's flag); not I2 (reassigned) nor
        # I3 (60 min)
        ("incident_first_contact_resolution_ratio", {}, (0.5, 4)),
        ("incident_knowledge_usage_ratio", {}, (0.25, 4)),
        ("incident_problem_linked_ratio", {}, (0.25, 4)),
        ("major_incident_count", {}, (1.0, 1)),
        # P1: 10-01 09:00 → 10-05 09:00 = 4 × 86400
        ("problem_resolution_time_seconds", {}, (345600.0, 1)),
        # C1, C2, C3, C4 implemented today
        ("change_count", {}, (4.0, 4)),
        ("change_count", {"change_type": "emergency"}, (1.0, 1)),
        # with an outcome: C1 ok, C2 failed, C3 ok → 2 / 3 (C4 has none)
        ("change_success_ratio", {}, (round(2 / 3, 6), 3)),
        # C2 failed, C3 caused incident I5 → 2 / 4
        ("change_failure_ratio", {}, (0.5, 4)),
        ("change_emergency_ratio", {}, (0.25, 4)),
        # with actual_end: C1 10-04 09:00 → 10-05 10:00 = 90000, C2 3600 → 46800
        ("change_lead_time_seconds", {}, (46800.0, 2)),
        # CI1 at 11:00 (no change) and 12:00 (C4 not approved); not 10:00 (C1), not new CI2
        ("change_unauthorized_count", {}, (2.0, 2)),
        ("change_unauthorized_count", {"ci": "CI1"}, (2.0, 2)),
        # 1 − (5 + 15) / (100 + 300) = 0.95
        ("cmdb_accuracy_ratio", {}, (0.95, 2)),
        # 3 of 4 answered; handle (200 + 400 + 300) / 3; logged 2 of 3 answered
        ("call_answer_ratio", {}, (0.75, 4)),
        ("call_abandon_ratio", {}, (0.25, 4)),
        ("call_handle_time_seconds", {}, (300.0, 3)),
        ("call_logging_ratio", {}, (round(2 / 3, 6), 3)),
        # at the day's end: KB1, KB2 (KB3 retired) → 2; updated today: KB1 → 1 / 2
        ("knowledge_articles_count", {}, (2.0, 2)),
        ("knowledge_update_ratio", {}, (0.5, 2)),
        # (5 + 4 + 2) / 3; email (5 + 4) / 2
        ("csat_score", {}, (round(11 / 3, 6), 3)),
        ("csat_score", {"service": "email"}, (4.5, 2)),
    ],
)
def test_process_indicator(
    day: Engine, indicator: str, dims: dict[str, str], expected: tuple[float, int]
) -> None:
    assert value(day, indicator, **dims) == expected


def test_resolution_time_percentiles_of_the_day(day: Engine) -> None:
    # sorted 1200, 3600, 7200, 10800: p50 = (3600 + 7200) / 2; p90 at position 2.7 = 7200 + 0.7 ×
    # 3600 = 9720
    p = points(day, "incident_resolution_time_seconds", "day", DAY)
    assert (p["p50"], p["p90"]) == (5400.0, 9720.0)


def test_knowledge_articles_count_the_day_before(day: Engine) -> None:
    # at the end of 10-04: KB1, KB2 (KB3 retired on 10-04 09:00)
    p = points(day, "knowledge_articles_count", "day", utc(2026, 10, 4))
    assert (p["value"], p["count"]) == (2.0, 2)


def test_a_change_without_a_type_is_not_an_emergency_but_counts(day: Engine) -> None:
    p = points(day, "change_emergency_ratio", "day", utc(2026, 10, 6))
    assert (p["value"], p["count"]) == (0.0, 1)


def test_backlog_counts_incidents_open_at_each_window_end(engine: Engine) -> None:
    e = ticket_event
    store(
        engine,
        [
            e("B1", t(9, day=4), "new", service="email"),  # open since 10-04
            e("B2", t(9, day=4), "new", service="email"),
            e("B2", t(10), "resolved"),  # resolved 10-05 10:00
            e("B3", t(9, day=5), "new", service="erp"),  # opened 10-05, still open
            e("B4", t(9, day=4), "new", service="erp"),
            e("B4", t(8, day=5), "cancelled"),  # cancelled 10-05 08:00
            e("B5", t(9, day=4), "new", kind="service_request"),  # not an incident
        ],
    )
    aggregate(engine)
    # end of 10-04: B1, B2, B4 open → 3; end of 10-05: B1, B3 → 2
    assert points(engine, "incident_backlog_count", "day", utc(2026, 10, 4))["value"] == 3
    assert points(engine, "incident_backlog_count", "day", DAY)["value"] == 2
    assert points(engine, "incident_backlog_count", "day", DAY, service="erp")["value"] == 1
    # at 09:00 on 10-05 (end of hour 08:00): B1, B2 open; B3 not yet; B4 cancelled → 2
    assert points(engine, "incident_backlog_count", "hour", t(8))["value"] == 2


def test_clock_refresh_recomputes_windows_without_events(engine: Engine) -> None:
    from datetime import UTC, datetime, timedelta

    from prometheus_client import CollectorRegistry

    from services.aggregator.jobs import Aggregator
    from services.aggregator.metrics import AggregatorMetrics
    from shared.settings import Settings

    now = datetime.now(UTC)
    store(engine, [ticket_event("R1", now - timedelta(days=3), "new")])
    aggregate(engine, clock=real_clock)
    with engine.begin() as conn:  # as if the backlog points had gone stale
        conn.exec_driver_sql("TRUNCATE indicator_values, indicator_pending")
    agg = Aggregator(
        Settings(_env_file=None),
        engine,  # type: ignore[call-arg]
        AggregatorMetrics(CollectorRegistry()),
    )
    assert agg.refresh_current(now - timedelta(minutes=1), now) >= 1
    aggregate(engine, clock=real_clock)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    assert points(engine, "incident_backlog_count", "day", today)["value"] == 1


def test_backlog_follows_reopens(engine: Engine) -> None:
    e = ticket_event
    store(
        engine,
        [
            e("RB", t(9, day=3), "new", service="email"),
            e("RB", t(10, day=3), "resolved"),  # resolved 10-03
            e(
                "RB", t(9, day=5), "in_progress", event_type="itsm.ticket.reopened"
            ),  # reopened 10-05
            e("RB", t(12, day=6), "resolved"),
        ],
    )
    aggregate(engine)
    # end of 10-03 and 10-04: resolved, not in the backlog; end of 10-05: reopened, in it
    assert points(engine, "incident_backlog_count", "day", utc(2026, 10, 3)) is None
    assert points(engine, "incident_backlog_count", "day", utc(2026, 10, 4)) is None
    assert points(engine, "incident_backlog_count", "day", DAY)["value"] == 1
    assert points(engine, "incident_backlog_count", "day", utc(2026, 10, 6)) is None
