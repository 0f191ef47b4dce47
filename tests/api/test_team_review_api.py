"""`GET /v1/reviews/team` (SPEC §7.3, issue 11): the team review of an assignment group for a
period, each section hand-computed over a small October 2026 data set (September for the
previous period), the brief equal to `GET /v1/indicators/{id}?assignment_group=…`, the plan
carried from the group's held reviews, and the printable page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from shared.db import make_engine
from tests.conftest import make_settings
from tests.helpers import Clock, aggregate, store, ticket_event, utc

MANAGE = {"Authorization": "Bearer manage-secret"}
READ = {"Authorization": "Bearer read-secret"}
HOSTILE = "<script>alert(1)</script>"


def t(day: int, h: int = 9, month: int = 10) -> datetime:
    return utc(2026, month, day, h)


def opened(tid: str, at: datetime, group: str = "desk", **data: Any) -> dict[str, Any]:
    return ticket_event(tid, at, "new", service="email", priority=3, assignment_group=group, **data)


EVENTS = [
    opened("D1", t(2), reassignment_count=3, problem_id="PD1", assignee="alice"),
    ticket_event("D1", t(3), "resolved"),  # open 1 day
    opened("D2", t(1, month=9)),  # September, still open
    opened("D3", t(10), reopen_count=2, assignee="bob"),
    opened("D5", t(20), assignee="alice"),
    ticket_event("D5", t(20, 15), "resolved"),  # 6 hours
    ticket_event("D3", t(12), "resolved"),  # open 2 days
    opened("D4", t(25)),  # still open
    opened("PD1", t(4), kind="problem", title=HOSTILE),  # still open
    opened("N1", t(5), group="net", reassignment_count=5, assignee="alice"),  # another group's
    ticket_event("N1", t(6), "resolved"),
]


@pytest.fixture(scope="module")
def client(postgres: Any) -> Iterator[TestClient]:
    url = postgres.fresh()
    eng = make_engine(url)
    store(eng, EVENTS)
    aggregate(eng)
    settings = make_settings(
        url, "127.0.0.1:9", manage_token="manage-secret", read_token="read-secret"
    )
    with TestClient(create_app(settings, eng, clock=Clock(utc(2026, 11, 3, 10)))) as c:
        _record(c)
        yield c
    eng.dispose()


def _team_review(c: TestClient, period: str, held_at: str, items: list[str]) -> dict[str, Any]:
    resp = c.post(
        "/v1/reviews",
        json={
            "kind": "team",
            "level": 3,
            "assignment_group": "desk",
            "period": period,
            "held_at": held_at,
            "participants": ["team lead", HOSTILE],
            "recorded_by": "team lead",
            "action_items": [{"title": title, "owner": "desk"} for title in items],
        },
        headers=MANAGE,
    )
    assert resp.status_code == 201, resp.text
    made: dict[str, Any] = resp.json()
    return made


def _record(c: TestClient) -> None:
    """September's review: two items, one done since. October's: the next plan."""
    september = _team_review(c, "2026-09", "2026-10-02T15:00:00Z", ["triage rota", HOSTILE])
    done = c.patch(
        f"/v1/reviews/{september['id']}/action-items/{september['action_items'][0]['id']}",
        json={"state": "done", "by": "team lead"},
        headers=MANAGE,
    )
    assert done.status_code == 200, done.text
    _team_review(c, "2026-10", "2026-11-02T15:00:00Z", ["close D2 with the vendor"])


@pytest.fixture(scope="module")
def desk(client: TestClient) -> dict[str, Any]:
    resp = client.get(
        "/v1/reviews/team", params={"assignment_group": "desk", "period": "2026-10"}, headers=READ
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def ids(lines: list[dict[str, Any]]) -> list[str]:
    return [line["ticket_id"] for line in lines]


def test_difficult_tickets_of_the_group_only(desk: dict[str, Any]) -> None:
    d = desk["difficult"]
    assert ids(d["most_reassigned"]) == ["D1"]  # N1 (5) is another group's
    assert d["most_reassigned"][0]["reassignments"] == 3
    # open until resolved, or until November 1 00:00, each opened at 09:00: D2 60 days and 15
    # hours, PD1 27 d 15 h, D4 6 d 15 h, D3 2 d, D1 1 d, D5 6 h
    assert ids(d["longest_open"]) == ["D2", "PD1", "D4", "D3", "D1", "D5"]
    assert [x["age_days"] for x in d["longest_open"]] == [60.625, 27.625, 6.625, 2.0, 1.0, 0.25]
    assert ids(d["reopened"]) == ["D3"] and d["reopened"][0]["reopens"] == 2
    assert d["longest_open"][0]["link"] == "/v1/tickets/D2"


def test_unresolved_and_aged_at_the_periods_end(desk: dict[str, Any]) -> None:
    u = desk["unresolved"]
    assert (u["count"], u["aged"], u["aged_after_days"]) == (3, 1, 30)  # D2 alone over 30 days
    assert ids(u["tickets"]) == ["D2", "PD1", "D4"]  # oldest first


def test_problems_with_their_linked_incidents(desk: dict[str, Any]) -> None:
    assert [(p["ticket_id"], p["linked_incidents"]) for p in desk["problems"]] == [("PD1", 1)]


def test_the_plan_carried_from_the_groups_reviews(desk: dict[str, Any]) -> None:
    plan = desk["plan"]
    previous = plan["previous_review"]
    assert previous["period"] == "2026-09"
    assert [(i["title"], i["state"]) for i in previous["action_items"]] == [
        ("triage rota", "done"),
        (HOSTILE, "open"),
    ]
    assert [i["title"] for i in plan["still_open"]] == [HOSTILE]
    assert [i["title"] for i in plan["next_items"]] == ["close D2 with the vendor"]


def test_the_brief_is_the_indicator_apis(client: TestClient, desk: dict[str, Any]) -> None:
    brief = desk["brief"]
    # opened in October: D1, D3, D4, D5, PD1; in September: D2
    assert (brief["opened"]["value"], brief["opened"]["previous"]) == (5.0, 1.0)
    for figure in brief.values():
        resp = client.get(
            f"/v1/indicators/{figure['indicator']}",
            params={
                "window": "month",
                "start": "2026-09-01T00:00:00Z",
                "end": "2026-11-01T00:00:00Z",
                "assignment_group": "desk",
            },
            headers=READ,
        )
        points = {p["window_start"][:7]: p["value"] for p in resp.json()["points"]}
        assert (points.get("2026-10"), points.get("2026-09")) == (
            figure["value"],
            figure["previous"],
        ), figure["indicator"]


def test_per_engineer_kpis_of_the_group(desk: dict[str, Any]) -> None:
    """alice: D1 (1 day) and D5 (6 h) resolved in October, N1 is another group's; bob: D3
    (2 days, reopened); the open tickets nobody took count nowhere (nothing resolved)."""
    engineers = {e["assignee"]: e for e in desk["engineers"]}
    assert list(engineers) == ["alice", "bob"]
    alice, bob = engineers["alice"], engineers["bob"]
    assert (alice["resolved"]["value"], bob["resolved"]["value"]) == (2.0, 1.0)
    assert alice["resolution_time"] == {"value": (86400 + 21600) / 2, "count": 2}
    assert bob["resolution_time"] == {"value": 172800.0, "count": 1}
    assert (alice["reopen"]["value"], bob["reopen"]["value"]) == (0.0, 1.0)
    assert alice["sla_resolution_met"] == {"value": None, "count": 0}  # no SLA policy here


def test_bad_requests_are_422(client: TestClient) -> None:
    for params in ({"period": "2026-10"}, {"assignment_group": "desk", "period": "October"}):
        resp = client.get("/v1/reviews/team", params=params, headers=READ)
        assert resp.status_code == 422, params
    assert client.get("/v1/reviews/team", params={"assignment_group": "desk"}).status_code == 401


def test_the_printable_team_review_escapes_and_links_only_into_the_api(
    client: TestClient,
) -> None:
    from tests import chromium
    from tests.api.test_html import Links

    params = {"assignment_group": "desk", "period": "2026-10", "format": "html"}
    page = client.get("/v1/reviews/team", params=params, headers=READ)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script" not in page.text.lower() and "&lt;script&gt;" in page.text
    found = Links()
    found.feed(page.text)
    links = [value for tag, name, value in found.fetching if tag == "a"]
    assert links and all(str(v).startswith("/v1/tickets/") for v in links)
    chromium.chromium()  # skips loudly when Chromium is missing
    shown = chromium.render(page.text, "team-review")
    assert shown.png.startswith(b"\x89PNG") and shown.pdf.startswith(b"%PDF")
    assert len(shown.requests) == 2  # the page, for the screenshot and the PDF; nothing else
