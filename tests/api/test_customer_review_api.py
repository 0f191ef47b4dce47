"""`GET /v1/reviews/customer` (SPEC §7.3, issue 11): the customer review of a service or customer
for a period, each section hand-computed over a small October 2026 data set (September for the
previous period; customer_review_data.py), every indicator number equal to
`GET /v1/indicators/{id}`, its 422s and the printable page. The histories:
test_customer_review_history.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api.reviews.figures import trend
from shared.windows import WINDOW_KINDS
from tests.api.customer_review_data import HOSTILE, MANAGE, OCTOBER, READ, served

REVIEWS: dict[str, Any] = {}


@pytest.fixture(scope="module")
def client(postgres: Any) -> Iterator[TestClient]:
    """One aggregated database for the module; the reviews and the improvement are recorded
    once, through the API, before any test reads."""
    with served(postgres) as (c, _):
        _record(c)
        yield c


def _post_review(c: TestClient, **body: Any) -> dict[str, Any]:
    base = {"kind": "customer", "level": 2, "participants": [HOSTILE, "ACME IT lead"]}
    resp = c.post("/v1/reviews", json={**base, "recorded_by": "sm", **body}, headers=MANAGE)
    assert resp.status_code == 201, resp.text
    made: dict[str, Any] = resp.json()
    return made


def _record(c: TestClient) -> None:
    """August: one item, still open. September: two items, one done since. A September review
    of the service `email` alone (not the customer's). An improvement of email."""
    august = _post_review(
        c, customer="acme", period="2026-08", held_at="2026-09-03T10:00:00Z",
        action_items=[{"title": "capacity plan", "owner": "ops"}],
    )  # fmt: skip
    september = _post_review(
        c, customer="acme", period="2026-09", held_at="2026-10-05T10:00:00Z",
        action_items=[{"title": HOSTILE, "owner": "messaging"},
                      {"title": "share the outage report", "owner": "sm"}],
    )  # fmt: skip
    done = c.patch(
        f"/v1/reviews/{september['id']}/action-items/{september['action_items'][1]['id']}",
        json={"state": "done", "note": "sent", "by": "sm"},
        headers=MANAGE,
    )
    assert done.status_code == 200, done.text
    email = _post_review(
        c, service="email", period="2026-09", held_at="2026-10-06T10:00:00Z",
        action_items=[{"title": "email only", "owner": "messaging"}],
    )  # fmt: skip
    improvement = c.post(
        "/v1/improvements",
        json={
            "title": "No major e-mail incidents",
            "service": "email",
            "indicator": "major_incident_count",
            "window": "month",
            "target": 0,
            "elements": ["technology"],
            "source": "review_action_item",
            "links": {"review": str(september["id"])},
            "actions": [{"description": "quota alerts", "owner": "messaging"}],
            "owner": "messaging lead",
            "due_date": "2026-12-31",
            "verification_windows": 1,
            "by": "sm",
        },
        headers=MANAGE,
    )
    assert improvement.status_code == 201, improvement.text
    REVIEWS.update(august=august, september=september, email=email, improvement=improvement.json())


def get_review(client: TestClient, **params: str) -> dict[str, Any]:
    resp = client.get("/v1/reviews/customer", params=params, headers=READ)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


@pytest.fixture(scope="module")
def acme(client: TestClient) -> dict[str, Any]:
    return get_review(client, customer="acme", period="2026-10")


def values(figure: dict[str, Any]) -> tuple[Any, ...]:
    return figure["value"], figure["count"], figure["previous"], figure["previous_count"]


def approx(x: float) -> Any:
    return pytest.approx(x, rel=1e-9)


# --- the sections, hand-computed ---------------------------------------------------------------


def test_sections_in_the_order_of_the_domain_notes(acme: dict[str, Any]) -> None:
    keys = list(acme)
    sections = ["sla", "objectives_met", "service_performance", "satisfaction", "workload"]
    sections += ["changes", "problems", "action_items", "improvements"]
    assert [k for k in keys if k in sections] == sections
    assert (acme["customer"], acme["service"], acme["services"]) == ("acme", None, ["email", "web"])
    assert (acme["period"], acme["previous_period"]) == ("2026-10", "2026-09")
    assert acme["window"] == "month"
    assert (acme["period_start"], acme["period_end"]) == (
        "2026-10-01T00:00:00Z",
        "2026-11-01T00:00:00Z",
    )


def test_sla_per_objective_with_previous_period_status_and_trend(acme: dict[str, Any]) -> None:
    got = {(i["service"] or i["customer"], i["indicator"]): i for i in acme["sla"]}
    # erp's objective is globex's: not here; acme's own is
    assert sorted(got) == [
        ("acme", "ci_outage_count"),
        ("email", "csat_score"),
        ("email", "major_incident_count"),
        ("web", "major_incident_count"),
    ]
    csat = got[("email", "csat_score")]
    # October (5 + 4) / 2 = 4.5 >= 4: met; September 3: breached; higher is better
    assert (csat["value"], csat["status"], csat["previous"], csat["previous_status"]) == (
        4.5,
        "met",
        3.0,
        "breached",
    )
    assert csat["trend"] == "better"
    major = got[("email", "major_incident_count")]
    # October M1: 1 <= warning 1 → warning; September 0 → met; more majors is worse
    assert (major["value"], major["status"], major["previous"], major["previous_status"]) == (
        1.0,
        "warning",
        0.0,
        "met",
    )
    assert (major["trend"], major["target"], major["warning"]) == ("worse", 0.0, 1.0)
    web = got[("web", "major_incident_count")]
    assert (web["value"], web["status"], web["trend"]) == (0.0, "met", "same")
    # acme's CI outages (its CI-MAIL, of email): October A1 → 1, within the warning 1;
    # September none → 0, met
    outages = got[("acme", "ci_outage_count")]
    assert (outages["service"], outages["customer"]) == ("", "acme")
    assert (outages["value"], outages["status"], outages["previous"]) == (1.0, "warning", 0.0)
    assert (outages["previous_status"], outages["trend"]) == ("met", "worse")


def test_objectives_met_counts_and_the_met_ratio_indicator(acme: dict[str, Any]) -> None:
    met = acme["objectives_met"]
    # email csat and web majors met; email majors and acme's outages at warning
    assert (met["met"], met["warning"], met["breached"], met["no_data"], met["total"]) == (
        2,
        2,
        0,
        0,
        4,
    )
    # service_objectives_met_ratio: met / the services' objectives with data = 2 / 3 (a
    # customer's own objective is no service's: it is not in the indicator)
    assert met["ratio"]["indicator"] == "service_objectives_met_ratio"
    assert met["ratio"]["value"] == approx(2 / 3)


def test_service_performance(acme: dict[str, Any]) -> None:
    perf = acme["service_performance"]
    # email down while its P1 incident M1 was open (2 h); web up: (2 × OCTOBER − 7200) / 2 × OCTOBER
    assert perf["availability"]["value"] == approx(1 - 7200 / (2 * OCTOBER))
    assert perf["availability"]["trend"] == "worse"
    assert values(perf["major_incident_count"]) == (1.0, 1, 0.0, 0)
    # resolved in October: M1 7200, I1 14400, W1 3600 → 8400; September S1 7200
    assert values(perf["incident_resolution_time"]) == (8400.0, 3, 7200.0, 1)
    assert perf["incident_resolution_time"]["trend"] == "worse"
    # no SLA policy in the catalog: no ratio
    assert perf["incident_sla_resolution_met"]["value"] is None
    (ci,) = perf["cis"]
    assert (ci["ci"], ci["name"]) == ("CI-MAIL", HOSTILE)
    assert ci["outages"]["value"] == 1.0
    assert ci["mttr_seconds"]["value"] == 7200.0
    (m1,) = perf["major_incidents"]  # E1 is erp's
    assert (m1["ticket_id"], m1["title"], m1["priority"], m1["state"]) == (
        "M1",
        HOSTILE,
        1,
        "resolved",
    )
    assert (m1["opened_at"], m1["resolved_at"], m1["duration_seconds"]) == (
        "2026-10-14T09:00:00Z",
        "2026-10-14T11:00:00Z",
        7200.0,
    )
    assert [s["state"] for s in m1["timeline"]] == ["new", "in_progress", "resolved"]
    assert m1["responded_at"] == "2026-10-14T09:15:00Z"


def test_satisfaction(acme: dict[str, Any]) -> None:
    csat = acme["satisfaction"]["csat"]
    # October: email 5, 4 and web 2 → 11 / 3 from 3 responses; September: 3 from 1
    assert values(csat) == (approx(11 / 3), 3, 3.0, 1)
    assert csat["trend"] == "better"


def test_workload_by_kind_and_priority(acme: dict[str, Any]) -> None:
    w = acme["workload"]
    # opened in October: M1 I1 I2 R1 PB1 (email) W1 (web) = 6; September S1
    assert values(w["opened"]) == (6.0, 6, 1.0, 1)
    assert w["opened"]["trend"] == "up"  # a volume: neither better nor worse
    assert values(w["resolved"]) == (4.0, 4, 1.0, 1)  # M1 I1 R1 W1; S1
    assert w["backlog"]["value"] == 1.0  # I2 open at the month's end
    by = {b["dimension"]: {g["key"]: (g["value"], g["previous"]) for g in b["groups"]} for b in
          w["opened_by"]}  # fmt: skip
    # a group with no ticket in a period counts 0 there
    assert by["kind"] == {
        "incident": (4.0, 1.0),
        "problem": (1.0, 0.0),
        "service_request": (1.0, 0.0),
    }
    assert by["priority"] == {"1": (1.0, 0.0), "2": (1.0, 0.0), "3": (3.0, 1.0), "4": (1.0, 0.0)}


def test_changes_outcomes_and_caused_incidents(acme: dict[str, Any]) -> None:
    ch = acme["changes"]
    assert values(ch["count"]) == (2.0, 2, 0.0, 0)  # C1, C2 (C3 is erp's)
    by_type = {g["key"]: g["value"] for g in ch["by_type"]["groups"]}
    assert by_type == {"normal": 1.0, "standard": 1.0}
    assert ch["success"]["value"] == 1.0
    assert ch["failure"]["value"] == 0.5  # C1 caused I1: 1 of 2
    assert ch["by_outcome"] == {"successful": 2}
    assert ch["caused_incidents"] == 1
    assert [(c["change_id"], c["caused_incidents"]) for c in ch["changes"]] == [
        ("C1", ["I1"]),
        ("C2", []),
    ]


def test_problems(acme: dict[str, Any]) -> None:
    p = acme["problems"]
    (pb1,) = p["problems"]
    assert (pb1["ticket_id"], pb1["title"], pb1["state"], pb1["linked_incidents"]) == (
        "PB1",
        "mailbox quota",
        "new",
        2,
    )
    assert p["note"] is None
    assert p["resolution_time"]["value"] is None  # nothing resolved
    # incidents resolved in October linked to a problem: M1, I1 of M1, I1, W1; September 0 of 1
    assert values(p["incident_problem_linked"]) == (approx(2 / 3), 3, 0.0, 1)


def test_action_items_open_and_the_previous_reviews_progress(acme: dict[str, Any]) -> None:
    items = acme["action_items"]
    # still open: August's and September's first, oldest first; not the email review's
    assert [(i["title"], i["period"], i["state"]) for i in items["open"]] == [
        ("capacity plan", "2026-08", "open"),
        (HOSTILE, "2026-09", "open"),
    ]
    prev = items["previous_review"]
    assert (prev["id"], prev["period"]) == (REVIEWS["september"]["id"], "2026-09")
    assert [(i["title"], i["state"]) for i in prev["action_items"]] == [
        (HOSTILE, "open"),
        ("share the outage report", "done"),
    ]
    assert [h["to_state"] for h in prev["action_items"][1]["history"]] == ["open", "done"]


def test_improvements_of_the_customer_and_its_services(acme: dict[str, Any]) -> None:
    (imp,) = acme["improvements"]
    assert (imp["id"], imp["service"], imp["state"], imp["target"]) == (
        REVIEWS["improvement"]["id"],
        "email",
        "proposed",
        0.0,
    )


# --- one source of truth -----------------------------------------------------------------------


def figures(body: Any) -> Iterator[dict[str, Any]]:
    """Every indicator figure anywhere in a review."""
    if isinstance(body, dict):
        if "indicator" in body and "filters" in body and "previous_count" in body:
            yield body
        for v in body.values():
            yield from figures(v)
    elif isinstance(body, list):
        for v in body:
            yield from figures(v)


def indicator_api(
    client: TestClient, indicator: str, filters: dict[str, str], start: str, **extra: str
) -> list[dict[str, Any]]:
    resp = client.get(
        f"/v1/indicators/{indicator}",
        params={"window": "month", "start": start, "end": "2026-11-01T00:00:00Z", **filters,
                **extra},
        headers=READ,
    )  # fmt: skip
    assert resp.status_code == 200, resp.text
    points: list[dict[str, Any]] = resp.json()["points"]
    return points


@pytest.mark.parametrize("scope", [{"customer": "acme"}, {"service": "email"}])
def test_every_number_is_the_indicator_apis(client: TestClient, scope: dict[str, str]) -> None:
    review = get_review(client, **scope, period="2026-10")
    seen = 0
    for f in figures(review):
        points = indicator_api(client, f["indicator"], f["filters"], "2026-09-01T00:00:00Z")
        by_start = {p["window_start"]: p for p in points if p["dimensions"] == f["filters"]}
        for start, value, count in (
            ("2026-10-01T00:00:00Z", f["value"], f["count"]),
            ("2026-09-01T00:00:00Z", f["previous"], f["previous_count"]),
        ):
            p = by_start.get(start)
            assert (value, count) == ((p["value"], p["count"]) if p else (None, 0)), (f, start)
        seen += 1
    for b in (*review["workload"]["opened_by"], review["changes"]["by_type"]):
        points = indicator_api(
            client, b["indicator"], scope, "2026-10-01T00:00:00Z", group_by=b["dimension"]
        )
        api = {p["dimensions"][b["dimension"]]: (p["value"], p["count"]) for p in points}
        assert {g["key"]: (g["value"], g["count"]) for g in b["groups"] if g["count"]} == api
        seen += 1
    for item in review["sla"]:
        of = {"service": item["service"]} if item["service"] else {"customer": item["customer"]}
        (p,) = indicator_api(client, item["indicator"], of, "2026-10-01T00:00:00Z")
        assert item["value"] == p["value"]
        seen += 1
    assert seen >= 20


def test_a_service_review_covers_that_service_only(client: TestClient) -> None:
    web = get_review(client, service="web", period="2026-10")
    assert (web["customer"], web["service"], web["services"]) == (None, "web", ["web"])
    assert [(i["service"], i["indicator"]) for i in web["sla"]] == [("web", "major_incident_count")]
    assert web["satisfaction"]["csat"]["value"] == 2.0
    assert web["service_performance"]["availability"]["value"] == 1.0
    assert web["service_performance"]["major_incidents"] == []
    assert web["service_performance"]["cis"] == []
    assert [c["change_id"] for c in web["changes"]["changes"]] == ["C2"]
    assert web["problems"]["problems"] == []
    assert web["problems"]["note"] == "no problem records of these services open in the period"
    # the customer's reviews are not the service's; no review of web was held
    assert web["action_items"] == {"open": [], "previous_review": None}
    assert web["improvements"] == []
    email = get_review(client, service="email", period="2026-10")
    assert [i["title"] for i in email["action_items"]["open"]] == ["email only"]
    assert email["action_items"]["previous_review"]["id"] == REVIEWS["email"]["id"]


def test_a_week_review_reads_the_week_window(client: TestClient) -> None:
    # 2026-W42 = 12–18 October: M1 (14th), PB1 (15th); surveys 5 (15th), 4 (16th)
    week = get_review(client, customer="acme", period="2026-W42")
    assert (week["window"], week["previous_period"]) == ("week", "2026-W41")
    assert week["period_start"] == "2026-10-12T00:00:00Z"
    assert week["workload"]["opened"]["value"] == 2.0
    assert week["satisfaction"]["csat"]["value"] == 4.5
    assert week["sla"] == []  # the objectives are monthly
    assert [m["ticket_id"] for m in week["service_performance"]["major_incidents"]] == ["M1"]


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"period": "2026-10"}, "exactly one of customer and service"),
        ({"customer": "acme", "service": "email", "period": "2026-10"}, "exactly one"),
        ({"customer": "initech", "period": "2026-10"}, "unknown customer 'initech'"),
        ({"service": HOSTILE, "period": "2026-10"}, "unknown service"),
        ({"customer": "acme", "period": "2026-13"}, "bad period"),
        ({"customer": "acme", "period": "October"}, "bad period"),
    ],
)
def test_bad_requests_are_422(client: TestClient, params: dict[str, str], says: str) -> None:
    resp = client.get("/v1/reviews/customer", params=params, headers=READ)
    assert resp.status_code == 422, resp.text
    assert says in resp.json()["error"]["message"]


def test_a_quarter_needs_the_quarter_window(client: TestClient) -> None:
    resp = client.get(
        "/v1/reviews/customer", params={"customer": "acme", "period": "2026-Q4"}, headers=READ
    )
    if "quarter" in WINDOW_KINDS:  # read from the quarter window once there is one
        assert resp.status_code == 200, resp.text
        assert (resp.json()["window"], resp.json()["previous_period"]) == ("quarter", "2026-Q3")
        return
    # no quarter made up from months: a mean, a ratio, an availability do not add up
    assert resp.status_code == 422, resp.text
    assert "quarter reviews need the quarter window" in resp.json()["error"]["message"]


def test_missing_period_is_422_and_reads_need_the_read_token(client: TestClient) -> None:
    resp = client.get("/v1/reviews/customer", params={"customer": "acme"}, headers=READ)
    assert resp.status_code == 422
    resp = client.get("/v1/reviews/customer", params={"customer": "acme", "period": "2026-10"})
    assert resp.status_code == 401


def test_hostile_strings_come_back_as_data_in_json(client: TestClient) -> None:
    resp = client.get(
        "/v1/reviews/customer", params={"customer": "acme", "period": "2026-10"}, headers=READ
    )
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert body["service_performance"]["major_incidents"][0]["title"] == HOSTILE
    assert body["action_items"]["previous_review"]["action_items"][0]["title"] == HOSTILE


def test_route_is_in_openapi_and_does_not_shadow_review_ids(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/reviews/customer"]["get"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "CustomerReview"
    )
    resp = client.get(f"/v1/reviews/{REVIEWS['august']['id']}", headers=READ)
    assert resp.status_code == 200 and resp.json()["period"] == "2026-08"


def test_trend_is_direction_aware() -> None:
    assert trend("higher_is_better", 0.9, 0.8) == "better"
    assert trend("higher_is_better", 0.7, 0.8) == "worse"
    assert trend("lower_is_better", 10.0, 20.0) == "better"
    assert trend("lower_is_better", 30.0, 20.0) == "worse"
    assert trend("neutral", 3.0, 2.0) == "up"
    assert trend("neutral", 1.0, 2.0) == "down"
    assert trend("lower_is_better", 0.1 + 0.2, 0.3) == "same"
    assert trend("higher_is_better", None, 0.3) is None
    assert trend("higher_is_better", 0.3, None) is None


# --- the printable page ---------------------------------------------------------------------------


def test_the_printable_review_escapes_every_value_and_keeps_the_sections(
    client: TestClient,
) -> None:
    params = {"customer": "acme", "period": "2026-10"}
    page = client.get("/v1/reviews/customer", params={**params, "format": "html"}, headers=READ)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    assert "<script" not in text.lower()  # the hostile title and item, escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#x27;; DROP TABLE tickets; --" in text
    headings = [
        "Contract and SLA",
        "Service performance",
        "Satisfaction",
        "Scope and workload",
        "Changes",
        "Problems",
        "Action items",
        "Improvements",
    ]
    positions = [text.index(f"<h2>{h}</h2>") for h in headings]
    assert positions == sorted(positions)  # the domain notes' order, as in the JSON
    browser = client.get(
        "/v1/reviews/customer", params=params, headers={**READ, "Accept": "text/html"}
    )
    assert browser.headers["content-type"].startswith("text/html")


def test_the_printable_review_renders_in_chromium_and_asks_for_nothing(
    client: TestClient,
) -> None:
    from tests import chromium

    chromium.chromium()  # skips loudly when Chromium is missing
    page = client.get(
        "/v1/reviews/customer",
        params={"customer": "acme", "period": "2026-10", "format": "html"},
        headers=READ,
    ).text
    # SLA bars, workload bars, and a trend line per objective (4) and key figure (5)
    assert page.count("<svg") >= 2 + 9 and page.count("<figure>") == 9
    shown = chromium.render(page, "customer-review")
    assert shown.png.startswith(b"\x89PNG") and len(shown.png) > 20_000
    assert shown.pdf.startswith(b"%PDF")
    assert len(shown.requests) == 2  # the page, for the screenshot and for the PDF; nothing else
    assert all(r.startswith("GET ") and r.endswith("/page.html HTTP/1.1") for r in shown.requests)
