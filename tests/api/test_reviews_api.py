"""`/v1/reviews` (SPEC §7.3): held reviews as records with action items, the next review of the
same scope showing their progress, the catalog's schedule with a fixed clock, auth and OpenAPI."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from services.api.app import create_app
from services.catalog import apply_catalog
from shared.db import make_engine
from shared.settings import Settings
from tests.conftest import make_settings
from tests.helpers import Clock, utc

CATALOG = """
customers: [{id: acme}, {id: globex}]
services: [{id: email, customer: acme}, {id: erp, customer: globex}]
reviews:
  - kind: customer
    level: 2
    customer: acme
    every: month
    participants: [service manager, ACME IT lead]
    grace_days: 5
  - {kind: team, level: 1, assignment_group: desk, every: week, grace_days: 2}
  - {kind: customer, level: 3, service: erp, every: quarter, grace_days: 10}
"""
MANAGE = {"Authorization": "Bearer manage-secret"}
ADMIN = {"Authorization": "Bearer admin-secret"}
READ = {"Authorization": "Bearer read-secret"}


@pytest.fixture
def settings(db_url: str) -> Settings:
    # A fresh database per test (no events: reviews are records), no broker.
    return make_settings(
        db_url, "127.0.0.1:9", manage_token="manage-secret", read_token="read-secret"
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    eng = make_engine(settings.require_database_url())
    with eng.begin() as conn:
        apply_catalog(conn, CATALOG, "test")
    yield eng
    eng.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock(utc(2026, 11, 3, 10))  # a Tuesday, in 2026-W45


@pytest.fixture
def client(settings: Settings, engine: Engine, clock: Clock) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine, clock=clock)) as c:
        yield c


def review(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "customer",
        "level": 2,
        "customer": "acme",
        "period": "2026-10",
        "held_at": "2026-11-02T10:00:00Z",
        "participants": ["service manager", "ACME IT lead"],
        "notes": "SLA met",
        "decisions": ["quota alerts"],
        "action_items": [],
        "recorded_by": "service manager",
    }
    return {**body, **overrides}


def record(client: TestClient, **overrides: Any) -> dict[str, Any]:
    resp = client.post("/v1/reviews", json=review(**overrides), headers=MANAGE)
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def patch(client: TestClient, review_id: int, item_id: int, **body: Any) -> Any:
    return client.patch(
        f"/v1/reviews/{review_id}/action-items/{item_id}",
        json={"by": "service manager", **body},
        headers=MANAGE,
    )


def get(client: TestClient, review_id: int) -> dict[str, Any]:
    resp = client.get(f"/v1/reviews/{review_id}", headers=READ)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def titles(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(i["title"], i["state"]) for i in items]


# --- records ------------------------------------------------------------------------------------


def test_record_a_review_with_action_items_and_hostile_strings_as_data(
    client: TestClient,
) -> None:
    hostile = "<script>alert(1)</script>'; DROP TABLE reviews; --"
    made = record(
        client,
        participants=[hostile, "ACME IT lead"],
        notes=hostile,
        decisions=[hostile],
        recorded_by="Jane Roe",
        action_items=[
            {"title": hostile, "owner": hostile, "due": "2026-11-30"},
            {"title": "share the report", "owner": "service manager", "state": "in_progress"},
        ],
    )
    assert (made["kind"], made["level"], made["customer"], made["service"]) == (
        "customer",
        2,
        "acme",
        None,
    )
    # 2026-10 in UTC (the settings' reporting time zone): 1 October to 1 November.
    assert (made["period"], made["period_kind"]) == ("2026-10", "month")
    assert datetime.fromisoformat(made["period_start"]) == utc(2026, 10, 1)
    assert datetime.fromisoformat(made["period_end"]) == utc(2026, 11, 1)
    assert datetime.fromisoformat(made["held_at"]) == utc(2026, 11, 2, 10)
    assert made["participants"] == [hostile, "ACME IT lead"]
    assert (made["notes"], made["decisions"]) == (hostile, [hostile])
    first, second = made["action_items"]
    assert (first["title"], first["owner"], first["due"], first["state"]) == (
        hostile,
        hostile,
        "2026-11-30",
        "open",
    )
    assert first["allowed_states"] == ["in_progress", "done", "dropped"]
    assert (second["state"], second["due"]) == ("in_progress", None)
    assert [(h["from_state"], h["to_state"], h["by"]) for h in first["history"]] == [
        (None, "open", "Jane Roe")
    ]
    got = get(client, made["id"])
    assert got["notes"] == hostile and got["action_items"][0]["title"] == hostile
    assert (got["previous"], got["carried_items"]) == (None, [])
    # the table is still there, and the string came back as it went in
    listed = client.get("/v1/reviews", headers=READ).json()["reviews"]
    assert [r["id"] for r in listed] == [made["id"]]


def test_the_next_review_shows_the_previous_items_with_their_progress(
    client: TestClient, clock: Clock
) -> None:
    clock.now = utc(2026, 10, 6, 9)
    september = record(
        client,
        period="2026-09",
        held_at="2026-10-05T10:00:00Z",
        action_items=[
            {"title": "quota alerts", "owner": "messaging"},
            {"title": "report", "owner": "service manager"},
            {"title": "train the desk", "owner": "desk lead", "due": "2026-10-31"},
        ],
    )
    alerts, report, training = (i["id"] for i in september["action_items"])
    # Other scopes, with items of their own that the acme reviews never show.
    held = "2026-10-05T12:00:00Z"
    record(
        client,
        customer="globex",
        held_at=held,
        action_items=[{"title": "globex item", "owner": "x"}],
    )
    record(
        client,
        customer=None,
        service="email",  # email is acme's, but a review of the service is another scope
        held_at=held,
        action_items=[{"title": "email item", "owner": "x"}],
    )
    record(
        client,
        kind="team",
        level=1,
        customer=None,
        assignment_group="desk",
        period="2026-W40",
        held_at=held,
        action_items=[{"title": "desk item", "owner": "x"}],
    )

    clock.now = utc(2026, 10, 20, 9)
    moved = patch(client, september["id"], alerts, state="in_progress", note="rule drafted")
    assert moved.status_code == 200, moved.text
    assert patch(client, september["id"], report, state="done").status_code == 200

    clock.now = utc(2026, 11, 4, 12)
    october = record(
        client, held_at="2026-11-04T10:00:00Z", action_items=[{"title": "renew", "owner": "sm"}]
    )
    got = get(client, october["id"])
    assert got["previous"]["id"] == september["id"]
    assert got["previous"]["period"] == "2026-09"
    assert titles(got["previous"]["action_items"]) == [
        ("quota alerts", "in_progress"),
        ("report", "done"),
        ("train the desk", "open"),
    ]
    progressed = got["previous"]["action_items"][0]
    assert (progressed["note"], progressed["updated_by"]) == ("rule drafted", "service manager")
    assert datetime.fromisoformat(progressed["updated_at"]) == utc(2026, 10, 20, 9)
    assert [(h["from_state"], h["to_state"], h["note"]) for h in progressed["history"]] == [
        (None, "open", ""),
        ("open", "in_progress", "rule drafted"),
    ]
    # carried: the items still open of the earlier acme customer reviews, not the done one, not
    # this review's own, nor any of another scope
    assert titles(got["carried_items"]) == [
        ("quota alerts", "in_progress"),
        ("train the desk", "open"),
    ]
    assert {i["review_id"] for i in got["carried_items"]} == {september["id"]}
    assert {i["period"] for i in got["carried_items"]} == {"2026-09"}
    assert titles(got["action_items"]) == [("renew", "open")]

    # dropped later: no longer carried, and shown as dropped in the previous review's items
    assert patch(client, september["id"], training, state="dropped").status_code == 200
    again = get(client, october["id"])
    assert titles(again["carried_items"]) == [("quota alerts", "in_progress")]
    assert titles(again["previous"]["action_items"])[2] == ("train the desk", "dropped")

    # the review after: previous is October; still-open items of both earlier reviews carried
    clock.now = utc(2026, 12, 3, 12)
    november = record(client, period="2026-11", held_at="2026-12-03T10:00:00Z")
    latest = get(client, november["id"])
    assert latest["previous"]["id"] == october["id"]
    assert titles(latest["carried_items"]) == [("quota alerts", "in_progress"), ("renew", "open")]
    # and the first review has nothing before it
    first = get(client, september["id"])
    assert (first["previous"], first["carried_items"]) == (None, [])


def test_list_filters_newest_first_with_a_limit(client: TestClient) -> None:
    a = record(client, period="2026-09", held_at="2026-10-02T10:00:00Z")
    b = record(client, period="2026-10", held_at="2026-11-02T10:00:00Z")
    c = record(client, customer="globex", held_at="2026-11-01T10:00:00Z")
    t = record(
        client,
        kind="team",
        level=1,
        customer=None,
        assignment_group="desk",
        period="2026-w44",
        held_at="2026-11-02T09:00:00Z",
    )
    assert t["period"] == "2026-W44"  # canonical

    def ids(**params: Any) -> list[int]:
        resp = client.get("/v1/reviews", params=params, headers=READ)
        assert resp.status_code == 200, resp.text
        return [r["id"] for r in resp.json()["reviews"]]

    assert ids() == [b["id"], t["id"], c["id"], a["id"]]
    assert ids(limit=2) == [b["id"], t["id"]]
    assert ids(kind="team") == [t["id"]]
    assert ids(customer="acme") == [b["id"], a["id"]]
    assert ids(assignment_group="desk") == [t["id"]]
    assert ids(period="2026-10") == [b["id"], c["id"]]
    assert ids(period="2026-W44") == [t["id"]]
    assert ids(service="email") == []
    for params in (
        {"kind": "meeting"},
        {"period": "October"},
        {"limit": 0},
        {"customer": "acme", "assignment_group": "desk"},
    ):
        assert client.get("/v1/reviews", params=params, headers=READ).status_code == 422, params
    assert client.get("/v1/reviews", headers=READ).json()["reviews"][0]["action_items"] == []


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"kind": "meeting"}, None),
        ({"level": 0}, None),
        ({"level": 5}, None),
        ({"level": "2"}, None),
        ({"period": "2026-13"}, "bad period '2026-13'"),
        ({"period": "Q4 2026"}, "use a month (2026-10)"),
        ({"period": "2025-W53"}, "Invalid week: 53"),
        ({"customer": "initech"}, "unknown customer 'initech'"),
        ({"customer": None, "service": "payroll"}, "unknown service 'payroll'"),
        ({"customer": None}, "needs a service or a customer"),
        ({"service": "email"}, "needs a service or a customer"),
        ({"assignment_group": "desk"}, "not an assignment_group"),
        ({"kind": "team", "level": 1}, "a team review is of an assignment_group"),
        ({"kind": "team", "customer": None}, "a team review needs an assignment_group"),
        ({"action_items": [{"title": "x", "owner": "y", "due": "next week"}]}, None),
        ({"action_items": [{"title": "x", "owner": "y", "due": "2026-11-31"}]}, None),
        ({"action_items": [{"title": "x", "owner": "y", "state": "started"}]}, None),
        ({"action_items": [{"title": "x"}]}, None),
        ({"participants": []}, None),
        ({"held_at": "2026-11-04T10:00:00Z"}, "held_at is in the future"),
        ({"held_at": "2026-11-02T10:00:00"}, "held_at needs a UTC offset"),
        ({"recorded_by": ""}, None),
        ({"minutes": "x"}, None),
    ],
)
def test_invalid_reviews_are_422(
    client: TestClient, overrides: dict[str, Any], says: str | None
) -> None:
    resp = client.post("/v1/reviews", json=review(**overrides), headers=MANAGE)
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] in ("invalid_request", "validation_error")
    if says is not None:
        assert says in error["message"]


def test_quarter_periods_are_accepted_as_records(client: TestClient) -> None:
    made = record(client, customer=None, service="erp", level=3, period="2026-q3")
    assert (made["period"], made["period_kind"]) == ("2026-Q3", "quarter")
    assert datetime.fromisoformat(made["period_end"]) == utc(2026, 10, 1)


# --- action items ---------------------------------------------------------------------------------


def test_action_item_patches_and_final_states(client: TestClient, clock: Clock) -> None:
    made = record(
        client,
        action_items=[{"title": "a", "owner": "x"}, {"title": "b", "owner": "y"}],
    )
    rid = made["id"]
    a, b = (i["id"] for i in made["action_items"])
    changed = patch(client, rid, a, owner="messaging lead", due="2026-12-15", note="moved")
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["owner"], body["due"], body["note"], body["state"]) == (
        "messaging lead",
        "2026-12-15",
        "moved",
        "open",
    )
    assert len(body["history"]) == 1  # no change of state, no history entry
    assert patch(client, rid, a, due=None).json()["due"] is None
    assert patch(client, rid, a, state="in_progress").json()["state"] == "in_progress"
    assert patch(client, rid, a, state="open").json()["state"] == "open"  # back is fine
    assert patch(client, rid, a, state="open").status_code == 200  # the same state: no change
    done = patch(client, rid, a, state="done", note="alerts live")
    assert done.json()["allowed_states"] == []
    assert [h["to_state"] for h in done.json()["history"]] == [
        "open",
        "in_progress",
        "open",
        "done",
    ]

    for body_ in ({"state": "open"}, {"note": "reopened"}, {"owner": "z"}):
        refused = patch(client, rid, a, **body_)
        assert refused.status_code == 409, body_
        error = refused.json()["error"]
        assert error["code"] == "conflict"
        assert error["details"] == {"state": "done", "allowed": []}
    assert patch(client, rid, b, state="dropped").status_code == 200
    assert patch(client, rid, b, state="in_progress").status_code == 409

    assert patch(client, rid, a, due="soon").status_code == 422
    assert patch(client, rid, a, state="closed").status_code == 422
    assert patch(client, rid, a, owner=None).status_code == 422
    missing_by = client.patch(
        f"/v1/reviews/{rid}/action-items/{a}", json={"state": "open"}, headers=MANAGE
    )
    assert missing_by.status_code == 422

    other = record(client, customer="globex", action_items=[{"title": "c", "owner": "z"}])
    assert patch(client, rid, other["action_items"][0]["id"], state="done").status_code == 404
    assert patch(client, 999999, a, state="done").status_code == 404
    assert patch(client, rid, 999999, state="done").status_code == 404


def test_unknown_review_is_404(client: TestClient) -> None:
    resp = client.get("/v1/reviews/999999", headers=READ)
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"


# --- schedule -------------------------------------------------------------------------------------


def test_schedule_shows_held_due_overdue_and_upcoming(client: TestClient, clock: Clock) -> None:
    clock.now = utc(2026, 11, 3, 10)
    september = record(client, period="2026-09", held_at="2026-10-02T10:00:00Z")
    desk = record(
        client,
        kind="team",
        level=1,
        customer=None,
        assignment_group="desk",
        period="2026-W44",
        held_at="2026-11-02T09:00:00Z",
    )
    record(client, customer="globex", period="2026-08")  # not scheduled: no effect
    resp = client.get("/v1/reviews/schedule", headers=READ)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert datetime.fromisoformat(body["at"]) == utc(2026, 11, 3, 10)
    acme, team, erp = body["entries"]

    # Monthly, 5 days' grace, at Tuesday 3 November 10:00: November runs; October ended on the
    # 1st, due until the 6th; September was held; August (due until 6 September) is overdue.
    assert (acme["customer"], acme["every"], acme["level"]) == ("acme", "month", 2)
    assert acme["participants"] == ["service manager", "ACME IT lead"]
    assert [(p["period"], p["state"], p["review_id"]) for p in acme["periods"]] == [
        ("2026-11", "upcoming", None),
        ("2026-10", "due", None),
        ("2026-09", "held", september["id"]),
        ("2026-08", "overdue", None),
    ]
    assert datetime.fromisoformat(acme["periods"][1]["due_until"]) == utc(2026, 11, 6)

    # Weekly, 2 days' grace: W45 (2–8 Nov) runs; W44 (26 Oct – 1 Nov) was held; W43 ended on
    # 26 October, due until the 28th: overdue, as is W42.
    assert [(p["period"], p["state"]) for p in team["periods"]] == [
        ("2026-W45", "upcoming"),
        ("2026-W44", "held"),
        ("2026-W43", "overdue"),
        ("2026-W42", "overdue"),
    ]
    assert team["periods"][1]["review_id"] == desk["id"]

    # Quarterly, 10 days' grace: Q4 runs; Q3 ended 1 October, due until the 11th: overdue.
    assert [(p["period"], p["state"]) for p in erp["periods"]][:2] == [
        ("2026-Q4", "upcoming"),
        ("2026-Q3", "overdue"),
    ]
    assert body["counts"] == {"held": 2, "upcoming": 3, "due": 1, "overdue": 6}

    # Asked at another instant: the 7th of November, October's grace is over.
    later = client.get(
        "/v1/reviews/schedule",
        params={"at": "2026-11-07T00:00:00Z", "periods": 2},
        headers=READ,
    ).json()
    assert [(p["period"], p["state"]) for p in later["entries"][0]["periods"]] == [
        ("2026-11", "upcoming"),
        ("2026-10", "overdue"),
    ]
    # A review recorded for October turns it held.
    clock.now = utc(2026, 11, 7, 12)
    october = record(client, held_at="2026-11-07T09:00:00Z")
    again = client.get(
        "/v1/reviews/schedule", params={"at": "2026-11-07T00:00:00Z"}, headers=READ
    ).json()
    assert again["entries"][0]["periods"][1]["review_id"] == october["id"]
    for params in ({"at": "2026-11-07T00:00:00"}, {"at": "soon"}, {"periods": 0}):
        assert client.get("/v1/reviews/schedule", params=params, headers=READ).status_code == 422


def test_schedule_of_a_catalog_without_reviews_is_empty(settings: Settings, clock: Clock) -> None:
    eng = make_engine(settings.require_database_url())  # no catalog applied: the default one
    with TestClient(create_app(settings, eng, clock=clock)) as c:
        body = c.get("/v1/reviews/schedule", headers=READ).json()
    eng.dispose()
    assert body["entries"] == []
    assert body["counts"] == {"held": 0, "upcoming": 0, "due": 0, "overdue": 0}


# --- auth and OpenAPI -----------------------------------------------------------------------------


def test_writes_need_the_manage_or_admin_token_and_reads_the_read_token(
    client: TestClient,
) -> None:
    body = review(action_items=[{"title": "a", "owner": "x"}])
    assert client.post("/v1/reviews", json=body).status_code == 401
    assert client.post("/v1/reviews", json=body, headers=READ).status_code == 403
    ingest = {"Authorization": "Bearer ingest-secret"}
    assert client.post("/v1/reviews", json=body, headers=ingest).status_code == 403
    assert client.post("/v1/reviews", json=body, headers=ADMIN).status_code == 201
    made = record(client, action_items=[{"title": "a", "owner": "x"}])
    path = f"/v1/reviews/{made['id']}/action-items/{made['action_items'][0]['id']}"
    patch_body = {"state": "done", "by": "x"}
    assert client.patch(path, json=patch_body).status_code == 401
    assert client.patch(path, json=patch_body, headers=READ).status_code == 403
    assert client.patch(path, json=patch_body, headers=ADMIN).status_code == 200
    for url in ("/v1/reviews", f"/v1/reviews/{made['id']}", "/v1/reviews/schedule"):
        assert client.get(url).status_code == 401, url
        assert client.get(url, headers=READ).status_code == 200, url


def test_openapi_has_the_paths_and_examples(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    assert {"post", "get"} <= set(paths["/v1/reviews"])
    assert "get" in paths["/v1/reviews/{review_id}"]
    assert "get" in paths["/v1/reviews/schedule"]
    item = paths["/v1/reviews/{review_id}/action-items/{item_id}"]
    assert "409" in item["patch"]["responses"]
    schemas = doc["components"]["schemas"]
    for name in ("ReviewCreate", "ActionItemPatch", "Schedule"):
        assert schemas[name]["examples"], name
    assert schemas["ReviewCreate"]["examples"][0]["period"] == "2026-10"
