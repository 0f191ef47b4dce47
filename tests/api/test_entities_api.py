"""`GET /v1/tickets`, `/v1/services`, `/v1/changes/{id}`, `/v1/cis/{id}` (SPEC §7.2), hand-computed.

The office calendar is Mon–Fri 09:00–17:00 Europe/Berlin, Wednesday 2026-10-07 a holiday. All of
October 2026 before the 25th is CEST (UTC+2), so the office is open 07:00–15:00 UTC. 2026-10-02 is
a Friday, 10-05 a Monday. "Now" is frozen at Thursday 2026-10-08 10:00 UTC (12:00 in Berlin)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Engine

from services.aggregator.sla import evaluate_pending
from services.api.app import create_app
from services.api.routes.entities import request_time
from services.catalog import apply_catalog, parse_catalog
from shared.db import make_engine, ticket_sla
from shared.settings import Settings
from shared.windows import window_start
from tests.conftest import Postgres, make_settings
from tests.helpers import UTC_TZ, aggregate, cloud_event, real_clock, store, ticket_event, utc

CATALOG = """
customers: [{id: acme, name: Acme}]
services:
  - {id: email, name: Email, customer: acme}
  - {id: erp, name: ERP, customer: acme}
calendars:
  - id: office
    timezone: Europe/Berlin
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


NOW = t(8, 10)
HOSTILE = "x'; DROP TABLE tickets;--"


def error(resp: Any, status: int) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return str(body["error"]["code"])


def ts(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


# --- tickets ------------------------------------------------------------------------------------
@pytest.fixture
def tickets_client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    """The projections only: the aggregator has not run, so `ticket_sla` is empty."""
    with engine.begin() as conn:
        apply_catalog(conn, CATALOG, "test")
    e = ticket_event
    store(
        engine,
        [
            # OPEN: email P2 opened Tue 13:00 (15:00 Berlin), responded 13:20, still open
            e("OPEN", t(6, 13), "new", service="email", priority=2),
            e("OPEN", t(6, 13, 20), "assigned", assignment_group="mail-team"),
            # PAUSED: email P3 opened Mon 07:00 (09:00 Berlin), responded 07:30, pending since
            # 09:00 UTC
            e("PAUSED", t(5, 7), "new", service="email", priority=3),
            e("PAUSED", t(5, 7, 30), "in_progress", assignment_group="mail-team"),
            e("PAUSED", t(5, 9), "pending"),
            # LATE: erp P1 (24×7: 15 min, 4 h) opened Thu 04:00, responded 04:10, still open
            e("LATE", t(8, 4), "new", service="erp", priority=1),
            e("LATE", t(8, 4, 10), "assigned", assignment_group="erp-team"),
            # DONE: email P2 opened Fri 14:00 (16:00 Berlin), responded 14:30, resolved Mon 12:00
            e("DONE", t(2, 14), "new", service="email", priority=2),
            e("DONE", t(2, 14, 30), "assigned"),
            e("DONE", t(5, 12), "resolved"),
            # P4: no policy covers priority 4
            e("P4", t(8, 8), "new", service="email", priority=4),
            # REQ: a service request: no SLA is evaluated for it
            e("REQ", t(8, 9), "new", service="email", priority=2, kind="service_request"),
            # CANCEL: cancelled, so not open
            e("CANCEL", t(5, 8), "new", service="email", priority=3),
            e("CANCEL", t(5, 8, 5), "cancelled"),
        ],
    )
    app = create_app(settings, engine)
    app.dependency_overrides[request_time] = lambda: NOW
    with TestClient(app) as c:
        yield c


def sla_of(client: TestClient, ticket_id: str) -> dict[str, Any]:
    resp = client.get(f"/v1/tickets/{ticket_id}")
    assert resp.status_code == 200, resp.text
    sla: dict[str, Any] = resp.json()["sla"]
    return sla


def test_open_incident_shows_business_seconds_left(tickets_client: TestClient) -> None:
    resp = tickets_client.get("/v1/tickets/OPEN")
    assert resp.status_code == 200
    body = resp.json()
    assert (body["ticket_id"], body["kind"], body["state"]) == ("OPEN", "incident", "assigned")
    assert (body["service"], body["priority"]) == ("email", 2)
    assert body["assignment_group"] == "mail-team"
    assert ts(body["opened_at"]) == t(6, 13)
    assert ts(body["responded_at"]) == t(6, 13, 20)
    assert (body["resolved_at"], body["closed_at"]) == (None, None)
    assert (body["reassignments"], body["reopens"], body["paused_seconds"]) == (0, 0, 0.0)
    sla = body["sla"]
    assert (sla["policy_id"], sla["calendar"]) == ("email-office", "office")
    # Thu 12:00 in Berlin is inside the office hours, and the ticket is not pending
    assert (sla["paused"], sla["clock_running"]) == (False, True)
    # response: 20 min ≤ 1 h, met when it responded; due one office hour after 13:00 UTC
    response = sla["response"]
    assert response["target_seconds"] == 3600.0
    assert ts(response["due"]) == t(6, 14)
    assert (response["met"], ts(response["decided_at"])) == (True, t(6, 13, 20))
    assert response["seconds_left"] is None  # done
    # resolution: elapsed Tue 13–15 UTC (2 h) + Wed holiday + Thu 07–10 UTC (3 h) = 5 h
    # → 8 h − 5 h = 3 h = 10 800 s left; due 3 office hours after now: Thu 13:00 UTC
    resolution = sla["resolution"]
    assert resolution["target_seconds"] == 28800.0
    assert resolution["seconds_left"] == 10800.0
    assert ts(resolution["due"]) == t(8, 13)
    assert (resolution["met"], resolution["decided_at"]) == (None, None)


def test_paused_incident_keeps_its_time_left_and_has_no_due(tickets_client: TestClient) -> None:
    sla = sla_of(tickets_client, "PAUSED")
    assert (sla["paused"], sla["clock_running"]) == (True, False)
    assert sla["response"]["met"] is True  # 30 min ≤ 1 h
    # resolution: Mon 07:00–09:00 UTC = 2 h counted, then pending ever since (clock stopped)
    # → 8 h − 2 h = 21 600 s left; no due instant while the pause is open
    resolution = sla["resolution"]
    assert resolution["seconds_left"] == 21600.0
    assert (resolution["due"], resolution["met"], resolution["decided_at"]) == (None, None, None)


def test_breached_open_incident_shows_negative_time_left(tickets_client: TestClient) -> None:
    sla = sla_of(tickets_client, "LATE")
    assert (sla["policy_id"], sla["calendar"]) == ("p1", "24x7")
    assert sla["clock_running"] is True
    # response: 10 min ≤ 15 min
    assert (sla["response"]["met"], ts(sla["response"]["decided_at"])) == (True, t(8, 4, 10))
    # resolution (24×7, 4 h): 04:00 → 10:00 = 6 h elapsed → 4 h − 6 h = −7 200 s; breached at
    # its due instant 08:00
    resolution = sla["resolution"]
    assert resolution["seconds_left"] == -7200.0
    assert ts(resolution["due"]) == t(8, 8)
    assert (resolution["met"], ts(resolution["decided_at"])) == (False, t(8, 8))


def test_resolved_incident_is_met_with_no_time_left(tickets_client: TestClient) -> None:
    body = tickets_client.get("/v1/tickets/DONE").json()
    assert (body["state"], ts(body["resolved_at"])) == ("resolved", t(5, 12))
    sla = body["sla"]
    assert (sla["paused"], sla["clock_running"]) == (False, False)
    # Fri 14–15 UTC (1 h) + Mon 07–12 UTC (5 h) = 6 h ≤ 8 h: met at the resolution
    resolution = sla["resolution"]
    assert (resolution["met"], ts(resolution["decided_at"])) == (True, t(5, 12))
    # the 8 h deadline: Fri 1 h + Mon 07–14 UTC 7 h → Mon 14:00 UTC
    assert ts(resolution["due"]) == t(5, 14)
    assert resolution["seconds_left"] is None
    assert ts(sla["response"]["due"]) == t(2, 15)  # 1 office hour after Fri 14:00 UTC


def test_incident_without_policy_and_non_incident(tickets_client: TestClient) -> None:
    assert sla_of(tickets_client, "P4") == {
        "policy_id": None,
        "calendar": None,
        "paused": None,
        "clock_running": None,
        "response": None,
        "resolution": None,
    }
    req = tickets_client.get("/v1/tickets/REQ").json()
    assert (req["kind"], req["sla"]) == ("service_request", None)


def test_sla_agrees_with_what_the_aggregator_stores(
    tickets_client: TestClient, engine: Engine
) -> None:
    # the aggregator's job at the same instant: the API showed the same decisions before it ran
    shown = {
        tk["ticket_id"]: tk["sla"]
        for tk in tickets_client.get("/v1/tickets", params={"kind": "incident"}).json()["tickets"]
    }
    with engine.begin() as conn:
        evaluate_pending(conn, parse_catalog(CATALOG), "sha", NOW)
        stored = {r.ticket_id: r for r in conn.execute(select(ticket_sla))}
    assert set(stored) == set(shown)
    for ticket_id, row in stored.items():
        sla = shown[ticket_id]
        assert sla["policy_id"] == row.policy_id
        for name in ("response", "resolution"):
            target = sla[name] or {"met": None, "due": None, "decided_at": None}
            assert target["met"] == getattr(row, f"{name}_met"), (ticket_id, name)
            assert ts(target["due"]) == getattr(row, f"{name}_due"), (ticket_id, name)
            assert ts(target["decided_at"]) == getattr(row, f"{name}_decided_at")


def ids(client: TestClient, **params: Any) -> list[str]:
    resp = client.get("/v1/tickets", params=params)
    assert resp.status_code == 200, resp.text
    return [tk["ticket_id"] for tk in resp.json()["tickets"]]


def test_ticket_filters(tickets_client: TestClient) -> None:
    # newest opened first: REQ 10-08 09:00, P4 08:00, LATE 04:00, OPEN 10-06, PAUSED 10-05 07:00
    assert ids(tickets_client, state="open") == ["REQ", "P4", "LATE", "OPEN", "PAUSED"]
    assert ids(tickets_client, state="open", service="email") == ["REQ", "P4", "OPEN", "PAUSED"]
    assert ids(tickets_client, state="resolved") == ["DONE"]
    assert ids(tickets_client, state="cancelled") == ["CANCEL"]
    assert ids(tickets_client, state="pending") == ["PAUSED"]
    assert ids(tickets_client, kind="service_request") == ["REQ"]
    assert ids(tickets_client, priority=1) == ["LATE"]
    assert ids(tickets_client, assignment_group="mail-team") == ["OPEN", "PAUSED"]
    assert ids(tickets_client, service="erp", state="closed") == []
    assert len(ids(tickets_client)) == 7


def test_ticket_pages_follow_the_cursor(tickets_client: TestClient) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        body = tickets_client.get("/v1/tickets", params=params).json()
        seen += [tk["ticket_id"] for tk in body["tickets"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    # 7 tickets by 3: 3 + 3 + 1, in the same order as one page
    assert pages == 3
    assert seen == ids(tickets_client, limit=1000)


@pytest.mark.parametrize(
    "params",
    [
        {"state": "bogus"},
        {"state": "OPEN"},
        {"kind": "incidents"},
        {"priority": 5},
        {"limit": 0},
        {"limit": 1001},
        {"cursor": "not-a-cursor"},
        {"cursor": "WyJub3QgYSB0aW1lIiwgIngiXQ=="},  # ["not a time", "x"]
    ],
)
def test_bad_ticket_query_is_422(tickets_client: TestClient, params: dict[str, Any]) -> None:
    code = error(tickets_client.get("/v1/tickets", params=params), 422)
    assert code in {"validation_error", "invalid_request"}


def test_unknown_and_hostile_ticket_ids_are_404(tickets_client: TestClient) -> None:
    assert error(tickets_client.get("/v1/tickets/NOPE"), 404) == "not_found"
    resp = tickets_client.get(f"/v1/tickets/{HOSTILE}")
    assert error(resp, 404) == "not_found"
    assert HOSTILE in resp.json()["error"]["message"]
    # the table is still there, every row in it
    assert len(ids(tickets_client)) == 7


# --- services -----------------------------------------------------------------------------------
SERVICES_CATALOG = (
    CATALOG
    + """
objectives:
  - {service: "*", indicator: ticket_opened_count, window: day, comparator: "<=",
     target: 1, warning: 2, weight: 1}
  - {service: "*", indicator: csat_score, window: day, comparator: ">=", target: 4}
  - {service: erp, indicator: ticket_opened_count, window: week, comparator: "<=", target: 10}
"""
)


@pytest.fixture
def today() -> datetime:
    """Start of today's day window, as the API and the aggregator see it."""
    return window_start("day", datetime.now(UTC), UTC_TZ)


@pytest.fixture
def services_client(settings: Settings, engine: Engine, today: datetime) -> Iterator[TestClient]:
    # Today: 1 email ticket, 3 erp tickets, opened at the window's start, so never in the future.
    with engine.begin() as conn:
        apply_catalog(conn, SERVICES_CATALOG, "test")
    store(
        engine,
        [
            ticket_event("E1", today, "new", service="email", priority=3),
            *(ticket_event(f"R{i}", today, "new", service="erp", priority=2) for i in range(3)),
        ],
    )
    aggregate(engine, clock=real_clock)
    with TestClient(create_app(settings, engine)) as c:
        yield c


def health(service: dict[str, Any]) -> dict[str, tuple[float | None, float | None]]:
    return {
        h["window"]: (h["service_health_score"], h["service_objectives_met_ratio"])
        for h in service["health"]
    }


def test_services_list_catalog_policies_and_current_health(
    services_client: TestClient, today: datetime
) -> None:
    resp = services_client.get("/v1/services")
    assert resp.status_code == 200
    services = resp.json()["services"]
    assert [s["id"] for s in services] == ["email", "erp"]
    email, erp = services
    assert (email["name"], email["customer"], email["customer_name"]) == ("Email", "acme", "Acme")
    # email: P1 by the `*` policy, P2–P3 by its own, P4 by none
    assert email["sla_policies"] == [
        {
            "id": "p1",
            "priorities": [1],
            "response_target_seconds": 900.0,
            "resolution_target_seconds": 14400.0,
            "calendar": "24x7",
            "pause_states": ["pending"],
        },
        {
            "id": "email-office",
            "priorities": [2, 3],
            "response_target_seconds": 3600.0,
            "resolution_target_seconds": 28800.0,
            "calendar": "office",
            "pause_states": ["pending"],
        },
    ]
    assert [p["id"] for p in erp["sla_policies"]] == ["p1"]
    # email today: 1 opened ≤ 1 → met; csat has no data and does not count → 100, 1 / 1
    # erp today: 3 opened > warning 2 → breached → 0, 0 / 1; this week: 3 ≤ 10 → 100, 1 / 1
    assert health(email) == {"day": (100.0, 1.0)}
    assert health(erp) == {"day": (0.0, 0.0), "week": (100.0, 1.0)}
    day = email["health"][0]
    assert ts(day["window_start"]) == today
    assert ts(day["window_end"]) == today + timedelta(days=1)
    statuses = {(o["indicator"], o["window"]): o["current"]["status"] for o in erp["objectives"]}
    assert statuses == {
        ("csat_score", "day"): "no_data",
        ("ticket_opened_count", "day"): "breached",
        ("ticket_opened_count", "week"): "met",
    }


def test_service_detail_and_404(services_client: TestClient) -> None:
    listed = services_client.get("/v1/services").json()["services"]
    resp = services_client.get("/v1/services/erp")
    assert resp.status_code == 200
    assert resp.json() == listed[1]
    assert error(services_client.get("/v1/services/nope"), 404) == "not_found"
    assert error(services_client.get(f"/v1/services/{HOSTILE}"), 404) == "not_found"


def test_service_without_computed_values_has_null_health(
    settings: Settings, engine: Engine
) -> None:
    with engine.begin() as conn:
        apply_catalog(conn, SERVICES_CATALOG, "test")
    with TestClient(create_app(settings, engine)) as c:
        email = c.get("/v1/services/email").json()
    assert health(email) == {"day": (None, None)}


# --- changes and configuration items ------------------------------------------------------------
@pytest.fixture
def config_client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    ce = cloud_event
    store(
        engine,
        [
            ce(
                "itsm.change.requested",
                t(5, 8),
                "c1",
                change_id="CHG1",
                change_type="normal",
                service="erp",
                ci_ids=["db1"],
                risk="medium",
                planned_start=t(6, 20).isoformat(),
                planned_end=t(6, 22).isoformat(),
            ),
            ce("itsm.change.approved", t(5, 12), "c2", change_id="CHG1"),
            ce(
                "itsm.change.implemented",
                t(6, 22),
                "c3",
                change_id="CHG1",
                actual_start=t(6, 20, 5).isoformat(),
                actual_end=t(6, 21, 30).isoformat(),
                outcome="successful",
            ),
            ce(
                "itsm.config.ci.upserted",
                t(1, 9),
                "ci1",
                ci_id="db1",
                ci_type="database",
                name="ERP database",
                services=["erp"],
                owner="dba",
                depends_on=["san1"],
                critical=True,
                attributes={"engine": "postgresql", "version": 16},
            ),
            ce("itsm.config.ci.upserted", t(1, 9), "ci2", ci_id="old1", name="Old box"),
            ce("itsm.config.ci.deleted", t(3, 9), "ci3", ci_id="old1"),
        ],
    )
    with TestClient(create_app(settings, engine)) as c:
        yield c


def test_change_projection(config_client: TestClient) -> None:
    resp = config_client.get("/v1/changes/CHG1")
    assert resp.status_code == 200
    body = resp.json()
    assert (body["change_id"], body["change_type"], body["service"]) == ("CHG1", "normal", "erp")
    assert (body["ci_ids"], body["risk"], body["state"]) == (["db1"], "medium", "implemented")
    assert (body["approved"], ts(body["approved_at"])) == (True, t(5, 12))
    assert ts(body["requested_at"]) == t(5, 8)
    assert (ts(body["planned_start"]), ts(body["planned_end"])) == (t(6, 20), t(6, 22))
    # placed in its window by when the work ended
    assert ts(body["implemented_at"]) == t(6, 21, 30)
    assert (body["outcome"], body["rejected_at"], body["release_id"]) == ("successful", None, None)
    assert error(config_client.get("/v1/changes/NOPE"), 404) == "not_found"
    assert error(config_client.get(f"/v1/changes/{HOSTILE}"), 404) == "not_found"


def test_ci_projection(config_client: TestClient) -> None:
    resp = config_client.get("/v1/cis/db1")
    assert resp.status_code == 200
    body = resp.json()
    assert (body["ci_id"], body["ci_type"], body["name"]) == ("db1", "database", "ERP database")
    assert (body["services"], body["depends_on"], body["critical"]) == (["erp"], ["san1"], True)
    assert (body["owner"], body["attributes"]) == ("dba", {"engine": "postgresql", "version": 16})
    assert (ts(body["created_at"]), body["deleted_at"]) == (t(1, 9), None)
    old = config_client.get("/v1/cis/old1").json()
    assert (old["critical"], old["services"], ts(old["deleted_at"])) == (False, [], t(3, 9))
    assert error(config_client.get("/v1/cis/NOPE"), 404) == "not_found"
    assert error(config_client.get(f"/v1/cis/{HOSTILE}"), 404) == "not_found"


# --- contract -----------------------------------------------------------------------------------
def test_read_endpoints_need_the_read_token_when_one_is_configured(
    postgres: Postgres, kafka_bootstrap: str
) -> None:
    s = make_settings(postgres.fresh(), kafka_bootstrap, read_token="reader")
    eng = make_engine(s.require_database_url())
    with TestClient(create_app(s, eng)) as c:
        for path in ("/v1/tickets", "/v1/tickets/A", "/v1/services", "/v1/changes/C", "/v1/cis/X"):
            assert error(c.get(path), 401) == "unauthorized"
        resp = c.get("/v1/tickets", headers={"Authorization": "Bearer reader"})
        assert resp.json() == {"tickets": [], "next_cursor": None}
        resp = c.get("/v1/cis/X", headers={"Authorization": "Bearer reader"})
        assert error(resp, 404) == "not_found"
    eng.dispose()


def test_openapi_shows_the_read_endpoints_and_models(tickets_client: TestClient) -> None:
    spec = tickets_client.get("/openapi.json").json()
    for path in (
        "/v1/tickets",
        "/v1/tickets/{ticket_id}",
        "/v1/services",
        "/v1/services/{service_id}",
        "/v1/changes/{change_id}",
        "/v1/cis/{ci_id}",
    ):
        assert "get" in spec["paths"][path], path
    schemas = spec["components"]["schemas"]
    for model in ("TicketInfo", "TicketSla", "SlaTarget", "ServiceInfo", "ChangeInfo"):
        assert model in schemas
    assert "ConfigItemInfo" in schemas
