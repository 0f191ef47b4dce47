"""The customer review tests' data set (test_customer_review_api.py and _history.py): a catalog
of three customers, events from June to October 2026 — October the reviewed month,
September the previous one, June to August for the history (May has nothing) — and the app
serving them, aggregated."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from services.api.app import create_app
from services.catalog import apply_catalog
from shared.db import make_engine
from tests.conftest import make_settings
from tests.helpers import Clock, aggregate, cloud_event, store, ticket_event, utc

HOSTILE = "<script>alert(1)</script>'; DROP TABLE tickets; --"
# A service whose id is markup, of a customer of its own (no event names it).
HOSTILE_SERVICE = '<script>alert("svc")</script>'
CATALOG = f"""
customers: [{{id: acme}}, {{id: globex}}, {{id: hostile}}]
services: [{{id: email, customer: acme}}, {{id: web, customer: acme}},
           {{id: erp, customer: globex}}, {{id: '{HOSTILE_SERVICE}', customer: hostile}}]
objectives:
  - {{service: "*", indicator: major_incident_count, window: month, comparator: "<=",
     target: 0, warning: 1}}
  - {{service: email, indicator: csat_score, window: month, comparator: ">=", target: 4}}
  - {{customer: acme, indicator: ci_outage_count, window: month, comparator: "<=", target: 0,
     warning: 1}}
"""
MANAGE = {"Authorization": "Bearer manage-secret"}
READ = {"Authorization": "Bearer read-secret"}
OCTOBER = 31 * 86400  # 2 678 400 s; August too


def t(day: int, h: int, m: int = 0, month: int = 10) -> datetime:
    return utc(2026, month, day, h, m)


def incident(tid: str, opened: datetime, **data: Any) -> dict[str, Any]:
    return ticket_event(tid, opened, "new", **data)


def resolved(tid: str, at: datetime) -> dict[str, Any]:
    return ticket_event(tid, at, "resolved")


def survey(sid: str, at: datetime, service: str, score: int) -> dict[str, Any]:
    return cloud_event(
        "itsm.feedback.survey.completed", at, sid, survey_id=sid, service=service, score=score
    )


def change(cid: str, service: str, kind: str, at: datetime, outcome: str) -> list[dict[str, Any]]:
    return [
        cloud_event(
            "itsm.change.requested", t(1, 8), f"{cid}-r", change_id=cid, change_type=kind,
            service=service,
        ),
        cloud_event("itsm.change.implemented", at, f"{cid}-i", change_id=cid, outcome=outcome),
    ]  # fmt: skip


# acme = email + web; globex = erp (never in acme's numbers).
EVENTS = [
    # email, October
    incident("M1", t(14, 9), service="email", priority=1, major=True, channel="monitoring",
             title=HOSTILE, problem_id="PB1"),
    ticket_event("M1", t(14, 9, 15), "in_progress"),
    resolved("M1", t(14, 11)),  # 7200 s
    incident("I1", t(2, 10), service="email", priority=3, channel="phone",
             caused_by_change_id="C1", problem_id="PB1"),
    resolved("I1", t(2, 14)),  # 14400 s
    incident("I2", t(20, 8), service="email", priority=2, channel="email"),  # still open
    incident("R1", t(5, 9), service="email", priority=4, channel="portal", kind="service_request"),
    resolved("R1", t(5, 10)),
    incident("PB1", t(15, 9), service="email", priority=3, channel="other", kind="problem",
             title="mailbox quota"),
    # web, October
    incident("W1", t(8, 12), service="web", priority=3, channel="chat"),
    resolved("W1", t(8, 13)),  # 3600 s
    # erp (globex), October: a major incident, a survey and a change nobody at acme sees
    incident("E1", t(10, 9), service="erp", priority=1, major=True, channel="phone"),
    resolved("E1", t(10, 10)),
    survey("SV-E", t(10, 12), "erp", 1),
    *change("C3", "erp", "emergency", t(10, 9), "failed"),
    # September (the previous period)
    incident("S1", t(10, 9, month=9), service="email", priority=3, channel="phone"),
    resolved("S1", t(10, 11, month=9)),  # 7200 s
    survey("SV0", t(11, 9, month=9), "email", 3),
    # August: a 4-hour major (priority 1) e-mail incident and a service request; no survey
    incident("M0", t(12, 8, month=8), service="email", priority=1, major=True,
             channel="monitoring"),
    resolved("M0", t(12, 12, month=8)),  # 14400 s
    incident("R0", t(3, 9, month=8), service="email", priority=4, channel="portal",
             kind="service_request"),
    resolved("R0", t(4, 9, month=8)),
    # July: an incident of each service, a survey
    incident("J1", t(6, 10, month=7), service="email", priority=2, channel="phone"),
    resolved("J1", t(6, 13, month=7)),  # 10800 s
    incident("J2", t(20, 9, month=7), service="web", priority=3, channel="chat"),
    resolved("J2", t(20, 10, month=7)),  # 3600 s
    survey("SVJ", t(7, 12, month=7), "email", 4),
    # June: one survey, nothing else
    survey("SVN", t(10, 12, month=6), "email", 5),
    # surveys, October
    survey("SV1", t(15, 12), "email", 5),
    survey("SV2", t(16, 12), "email", 4),
    survey("SV3", t(20, 12), "web", 2),
    # changes, October: C1 caused I1
    *change("C1", "email", "normal", t(2, 9), "successful"),
    *change("C2", "web", "standard", t(6, 10), "successful"),
    # a (not critical) CI of email with one 2-hour outage, gone at the month's end
    cloud_event("itsm.config.ci.upserted", t(1, 0), "ci-u", ci_id="CI-MAIL", services=["email"],
                name=HOSTILE),
    cloud_event("itsm.monitor.alert.firing", t(14, 8, 50), "a1-f", alert_id="A1",
                ci_id="CI-MAIL", severity="critical", started_at=t(14, 8, 50).isoformat()),
    cloud_event("itsm.monitor.alert.resolved", t(14, 10, 50), "a1-r", alert_id="A1",
                ended_at=t(14, 10, 50).isoformat()),
    cloud_event("itsm.config.ci.deleted", t(31, 0), "ci-d", ci_id="CI-MAIL"),
]  # fmt: skip


@contextmanager
def served(postgres: Any) -> Iterator[tuple[TestClient, Engine]]:
    """A fresh database with the catalog and the events, aggregated, and the app over it."""
    url = postgres.fresh()
    eng = make_engine(url)
    with eng.begin() as conn:
        apply_catalog(conn, CATALOG, "test")
    store(eng, EVENTS)
    aggregate(eng)
    settings = make_settings(
        url, "127.0.0.1:9", manage_token="manage-secret", read_token="read-secret"
    )
    try:
        with TestClient(create_app(settings, eng, clock=Clock(utc(2026, 11, 5, 10)))) as c:
            yield c, eng
    finally:
        eng.dispose()
