"""`/v1/improvements` (SPEC §7.4): the register over HTTP, the baseline captured on approval from
stored indicator values, the aggregator's verification job, auth, `/metrics` and OpenAPI."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from services.aggregator.jobs import Aggregator
from services.aggregator.metrics import AggregatorMetrics
from services.api.app import create_app
from services.api.improvements.service import verifier
from services.catalog import apply_catalog
from shared.settings import Settings
from tests.conftest import make_settings
from tests.helpers import Clock, aggregate, publish, store, ticket_event, utc

CATALOG = """
customers: [{id: acme}, {id: globex}]
services: [{id: email, customer: acme}, {id: erp, customer: globex}]
"""
MANAGE = {"Authorization": "Bearer manage-secret"}
ADMIN = {"Authorization": "Bearer admin-secret"}
READ = {"Authorization": "Bearer read-secret"}


def _major(service: str, day: int, n: int) -> list[dict[str, Any]]:
    return [
        ticket_event(
            f"M-{service}-{day}-{i}",
            utc(2026, 10, day, 9 + i),
            "new",
            service=service,
            priority=1,
            major=True,
        )
        for i in range(n)
    ]


def _resolved(service: str, day: int, fcr: list[bool]) -> list[dict[str, Any]]:
    """Incidents opened at 08:00 and resolved at 09:xx on `day`, with the source's flag."""
    events = []
    for i, flag in enumerate(fcr):
        tid = f"F-{service}-{day}-{i}"
        events.append(ticket_event(tid, utc(2026, 10, day, 8), "new", service=service))
        events.append(
            ticket_event(tid, utc(2026, 10, day, 9, i), "resolved", first_contact_resolution=flag)
        )
    return events


# Major incidents per day (opened), email: baseline days 1–4 = 2, 1, 3, 2 (mean 2.0), after the
# change (days 6, 7) = 1, 0 (mean 0.5). erp: 1, 1, 0, 2 (mean 1.0), then 1, 2 (mean 1.5).
# First-contact resolution, email (customer acme): day 1 1 of 2, day 2 0 of 1, day 3 none,
# day 4 3 of 3; after: day 6 2 of 2, day 7 1 of 2. erp (globex): day 2 2 of 2; after: day 6 0 of 1.
EVENTS = [
    *_major("email", 1, 2), *_major("email", 2, 1), *_major("email", 3, 3), *_major("email", 4, 2),
    *_major("email", 6, 1),
    *_major("erp", 1, 1), *_major("erp", 2, 1), *_major("erp", 4, 2),
    *_major("erp", 6, 1), *_major("erp", 7, 2),
    # not major: counts for no one
    ticket_event("N1", utc(2026, 10, 3, 12), "new", service="email", priority=3),
    *_resolved("email", 1, [True, False]), *_resolved("email", 2, [False]),
    *_resolved("email", 4, [True, True, True]),
    *_resolved("email", 6, [True, True]), *_resolved("email", 7, [True, False]),
    *_resolved("erp", 2, [True, True]), *_resolved("erp", 6, [False]),
]  # fmt: skip


@pytest.fixture(scope="module")
def stored(postgres: Any) -> Iterator[str]:
    """One database with the catalog and the events aggregated, cloned per test would cost
    more than it saves: tests create their own improvements and only read the values."""
    url = postgres.fresh()
    from shared.db import make_engine

    eng = make_engine(url)
    with eng.begin() as conn:
        apply_catalog(conn, CATALOG, "test")
    store(eng, EVENTS)
    aggregate(eng)
    eng.dispose()
    yield url


@pytest.fixture
def settings(stored: str) -> Settings:
    # No broker: nothing here publishes (the publisher connects lazily).
    return make_settings(
        stored, "127.0.0.1:9", manage_token="manage-secret", read_token="read-secret"
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    from shared.db import make_engine

    eng = make_engine(settings.require_database_url())
    yield eng
    eng.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock(utc(2026, 10, 5, 8))


@pytest.fixture
def client(settings: Settings, engine: Engine, clock: Clock) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine, clock=clock)) as c:
        yield c


def proposal(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Fewer major e-mail incidents",
        "service": "email",
        "indicator": "major_incident_count",
        "window": "day",
        "target": 1,
        "elements": ["technology", "process"],
        "source": "kpi_drift",
        "links": {"objective": "email/major_incident_count/day"},
        "actions": [{"description": "quota alerts", "owner": "messaging"}],
        "owner": "Head of messaging",
        "due_date": "2026-10-31",
        "verification_windows": 2,
        "by": "service manager",
    }
    return {**body, **overrides}


def create(client: TestClient, **overrides: Any) -> dict[str, Any]:
    resp = client.post("/v1/improvements", json=proposal(**overrides), headers=MANAGE)
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def move(client: TestClient, improvement_id: int, to: str, note: str = "", by: str = "cab") -> Any:
    return client.post(
        f"/v1/improvements/{improvement_id}/transitions",
        json={"to": to, "by": by, "note": note},
        headers=MANAGE,
    )


def to_implemented(client: TestClient, clock: Clock, improvement_id: int) -> dict[str, Any]:
    """Approved at 2026-10-05 08:00, in progress, implemented at 10:00."""
    clock.now = utc(2026, 10, 5, 8)
    assert move(client, improvement_id, "approved", "budget agreed").status_code == 200
    assert move(client, improvement_id, "in_progress").status_code == 200
    clock.now = utc(2026, 10, 5, 10)
    resp = move(client, improvement_id, "implemented")
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def verify(settings: Settings, engine: Engine, now: datetime) -> int:
    """The aggregator's scheduled job, with its clock at `now`."""
    agg = Aggregator(
        settings,
        engine,
        AggregatorMetrics(CollectorRegistry()),
        clock=lambda: now,
        verify_improvements=verifier(settings),
    )
    return agg.verify_improvements()


# --- the register ---------------------------------------------------------------------------------


def test_create_get_list_and_hostile_strings_are_data(client: TestClient) -> None:
    hostile = "<script>alert(1)</script>'; DROP TABLE improvements; --"
    made = create(client, title=hostile, owner=hostile, elements=["process", "people", "process"])
    assert made["state"] == "proposed"
    assert made["allowed_transitions"] == ["approved", "cancelled"]
    assert (made["title"], made["owner"]) == (hostile, hostile)
    assert made["elements"] == ["people", "process"]  # each once, in the elements' order
    assert made["baseline"] is None and made["evidence"] is None
    got = client.get(f"/v1/improvements/{made['id']}", headers=READ).json()
    assert got["title"] == hostile
    assert [(t["from_state"], t["to_state"], t["by"]) for t in got["transitions"]] == [
        (None, "proposed", "service manager")
    ]
    other = create(client, service="erp")
    listed = client.get("/v1/improvements", params={"service": "erp"}, headers=READ).json()
    assert [i["id"] for i in listed["improvements"]] == [other["id"]]
    assert listed["improvements"][0]["transitions"] is None
    by_state = client.get("/v1/improvements", params={"state": "proposed"}, headers=READ).json()
    assert {made["id"], other["id"]} <= {i["id"] for i in by_state["improvements"]}
    assert client.get("/v1/improvements", params={"state": "x"}, headers=READ).status_code == 422


def test_unknown_improvement_is_404(client: TestClient) -> None:
    resp = client.get("/v1/improvements/999999", headers=READ)
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"
    assert move(client, 999999, "approved").status_code == 404


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"indicator": "no_such_indicator"}, "unknown indicator 'no_such_indicator'"),
        ({"indicator": "ticket_opened_count"}, "has no better direction"),
        ({"window": "fortnight"}, None),
        ({"elements": ["money"]}, None),
        ({"elements": []}, None),
        ({"source": "rumour"}, None),
        ({"target": "high"}, None),
        ({"service": "payroll"}, "unknown service 'payroll'"),
        ({"service": None, "customer": "initech"}, "unknown customer 'initech'"),
        ({"customer": "acme"}, "not both"),
        ({"indicator": "call_answer_ratio"}, "has no service dimension"),
        ({"verification_windows": 0}, None),
    ],
)
def test_invalid_proposals_are_422(
    client: TestClient, overrides: dict[str, Any], says: str | None
) -> None:
    resp = client.post("/v1/improvements", json=proposal(**overrides), headers=MANAGE)
    assert resp.status_code == 422, resp.text
    if says is not None:
        assert says in resp.json()["error"]["message"]


def test_invalid_transition_is_409_with_the_allowed_states(client: TestClient) -> None:
    made = create(client)
    resp = move(client, made["id"], "implemented")
    assert resp.status_code == 409
    error = resp.json()["error"]
    assert error["code"] == "conflict"
    assert error["details"] == {"state": "proposed", "allowed": ["approved", "cancelled"]}
    assert move(client, made["id"], "cancelled", "duplicate of another").status_code == 200
    final = move(client, made["id"], "approved")
    assert final.status_code == 409
    assert final.json()["error"]["details"]["allowed"] == []


def test_transitions_are_kept_with_who_when_and_note(client: TestClient, clock: Clock) -> None:
    made = create(client)
    to_implemented(client, clock, made["id"])
    history = client.get(f"/v1/improvements/{made['id']}", headers=READ).json()["transitions"]
    assert [(t["from_state"], t["to_state"], t["by"], t["note"]) for t in history] == [
        (None, "proposed", "service manager", ""),
        ("proposed", "approved", "cab", "budget agreed"),
        ("approved", "in_progress", "cab", ""),
        ("in_progress", "implemented", "cab", ""),
    ]
    assert [datetime.fromisoformat(t["at"]) for t in history[1:]] == [
        utc(2026, 10, 5, 8),
        utc(2026, 10, 5, 8),
        utc(2026, 10, 5, 10),
    ]


def test_patch_edits_open_fields_only(client: TestClient, clock: Clock) -> None:
    made = create(client)
    patched = client.patch(
        f"/v1/improvements/{made['id']}", json={"target": 0.5, "owner": "Lead"}, headers=MANAGE
    )
    assert patched.status_code == 200
    assert (patched.json()["target"], patched.json()["owner"]) == (0.5, "Lead")
    assert move(client, made["id"], "approved").status_code == 200
    scope = client.patch(f"/v1/improvements/{made['id']}", json={"service": "erp"}, headers=MANAGE)
    assert scope.status_code == 409  # the baseline was captured for email
    assert scope.json()["error"]["details"]["fields"] == ["service"]
    state = client.patch(
        f"/v1/improvements/{made['id']}", json={"state": "verified"}, headers=MANAGE
    )
    assert state.status_code == 422  # states change through transitions
    assert move(client, made["id"], "cancelled", "no budget").status_code == 200
    closed = client.patch(f"/v1/improvements/{made['id']}", json={"title": "x"}, headers=MANAGE)
    assert closed.status_code == 409


# --- baseline -------------------------------------------------------------------------------------


def test_baseline_of_a_count_is_the_mean_of_the_last_4_complete_days(client: TestClient) -> None:
    made = create(client)
    approved = move(client, made["id"], "approved", "go").json()
    base = approved["baseline"]
    # approved 2026-10-05 08:00: days 1–4 are the last complete ones; (2 + 1 + 3 + 2) / 4
    assert base["value"] == 2.0
    assert [(w["window_start"][:10], w["value"]) for w in base["windows"]] == [
        ("2026-10-01", 2.0),
        ("2026-10-02", 1.0),
        ("2026-10-03", 3.0),
        ("2026-10-04", 2.0),
    ]
    assert base["query"] == {
        "indicator": "major_incident_count",
        "window": "day",
        "filters": {"service": "email"},
        "start": "2026-10-01T00:00:00+00:00",
        "end": "2026-10-05T00:00:00+00:00",
    }
    # the same windows as the indicator API answers them
    api = client.get(
        "/v1/indicators/major_incident_count",
        params={
            "window": "day",
            "service": "email",
            "start": "2026-10-01T00:00:00Z",
            "end": "2026-10-05T00:00:00Z",
        },
        headers=READ,
    ).json()
    assert [(p["window_start"], p["value"], p["count"]) for p in api["points"]] == [
        (w["window_start"], w["value"], w["count"]) for w in base["windows"]
    ]


def test_baseline_of_a_ratio_per_customer_is_count_weighted(client: TestClient) -> None:
    made = create(
        client,
        service=None,
        customer="acme",
        indicator="incident_first_contact_resolution_ratio",
        target=0.75,
    )
    base = move(client, made["id"], "approved", "go").json()["baseline"]
    # acme = email: day 1 1/2, day 2 0/1, day 3 no resolution (no point), day 4 3/3
    # (0.5·2 + 0·1 + 1·3) / (2 + 1 + 3) = 4/6 (the plain mean of the days would be 0.5)
    assert base["value"] == pytest.approx(4 / 6)
    assert [(w["window_start"][:10], w["value"], w["count"]) for w in base["windows"]] == [
        ("2026-10-01", 0.5, 2),
        ("2026-10-02", 0.0, 1),
        ("2026-10-04", 1.0, 3),
    ]
    assert base["query"]["filters"] == {"customer": "acme"}


def test_baseline_catalog_windows_and_no_data(
    client: TestClient, engine: Engine, clock: Clock
) -> None:
    with engine.begin() as conn:
        apply_catalog(conn, CATALOG + "improvements: {baseline_windows: 2}\n", "test")
    try:
        made = create(client)
        base = move(client, made["id"], "approved").json()["baseline"]
        assert base["value"] == 2.5  # days 3 and 4: (3 + 2) / 2
        clock.now = utc(2026, 9, 1)  # before any ticket: a ratio has no point at all
        ratio = create(client, indicator="incident_first_contact_resolution_ratio")
        empty = move(client, ratio["id"], "approved").json()["baseline"]
        assert (empty["value"], empty["reason"], empty["windows"]) == (None, "no data", [])
    finally:
        with engine.begin() as conn:
            apply_catalog(conn, CATALOG, "test")


# --- verification ---------------------------------------------------------------------------------


def test_a_count_that_fell_is_verified_once_the_period_is_complete(
    client: TestClient, settings: Settings, engine: Engine, clock: Clock
) -> None:
    made = create(client)
    implemented = to_implemented(client, clock, made["id"])
    # implemented 10-05 10:00, 2 day windows: 10-06 and 10-07
    assert implemented["verify_from"].startswith("2026-10-06T00:00:00")
    assert implemented["verify_until"].startswith("2026-10-08T00:00:00")
    assert verify(settings, engine, utc(2026, 10, 7, 23, 59)) == 0  # not complete yet
    assert (
        client.get(f"/v1/improvements/{made['id']}", headers=READ).json()["state"] == "implemented"
    )
    assert verify(settings, engine, utc(2026, 10, 8)) >= 1
    got = client.get(f"/v1/improvements/{made['id']}", headers=READ).json()
    assert got["state"] == "verified"
    ev = got["evidence"]
    # days 6 and 7: 1 and 0 major incidents, (1 + 0) / 2 = 0.5 ≤ 1 and < 2.0
    assert [(w["window_start"][:10], w["value"]) for w in ev["windows"]] == [
        ("2026-10-06", 1.0),
        ("2026-10-07", 0.0),
    ]
    assert (ev["value"], ev["baseline"], ev["target"]) == (0.5, 2.0, 1.0)
    assert (ev["direction"], ev["outcome"]) == ("lower_is_better", "verified")
    assert (ev["target_met"], ev["better_than_baseline"]) == (True, True)
    last = got["transitions"][-1]
    assert (last["from_state"], last["to_state"], last["by"]) == (
        "implemented",
        "verified",
        "system",
    )
    assert (
        last["note"]
        == "observed 0.5 meets the target ≤ 1; observed 0.5 is lower than the baseline 2"
    )
    report = client.get(f"/v1/improvements/{made['id']}/report", headers=READ).json()
    assert (report["baseline"], report["observed"], report["change"]) == (2.0, 0.5, -1.5)
    assert report["change_ratio"] == -0.75  # −1.5 / 2
    assert (report["outcome"], report["unit"], report["direction"]) == (
        "verified",
        "count",
        "lower_is_better",
    )
    verify(settings, engine, utc(2026, 10, 9))  # once: the next run leaves it alone
    again = client.get(f"/v1/improvements/{made['id']}", headers=READ).json()
    assert (again["evidence"], len(again["transitions"])) == (ev, len(got["transitions"]))


def test_a_count_that_did_not_fall_is_not_achieved(
    client: TestClient, settings: Settings, engine: Engine, clock: Clock
) -> None:
    made = create(client, service="erp", target=0.5)
    to_implemented(client, clock, made["id"])
    verify(settings, engine, utc(2026, 10, 8))
    got = client.get(f"/v1/improvements/{made['id']}", headers=READ).json()
    # baseline erp days 1–4: (1 + 1 + 0 + 2) / 4 = 1.0; after: (1 + 2) / 2 = 1.5
    assert got["baseline"]["value"] == 1.0
    assert (got["state"], got["evidence"]["value"]) == ("not_achieved", 1.5)
    assert (got["evidence"]["target_met"], got["evidence"]["better_than_baseline"]) == (
        False,
        False,
    )


def test_a_ratio_that_rose_is_verified_and_one_that_fell_is_not(
    client: TestClient, settings: Settings, engine: Engine, clock: Clock
) -> None:
    fcr = "incident_first_contact_resolution_ratio"
    rose = create(client, service=None, customer="acme", indicator=fcr, target=0.75)
    fell = create(client, service=None, customer="globex", indicator=fcr, target=0.9)
    to_implemented(client, clock, rose["id"])
    to_implemented(client, clock, fell["id"])
    verify(settings, engine, utc(2026, 10, 8))
    up = client.get(f"/v1/improvements/{rose['id']}", headers=READ).json()
    # days 6, 7: 2/2 and 1/2 → (1·2 + 0.5·2) / 4 = 0.75 ≥ 0.75 and > 4/6
    assert (up["state"], up["evidence"]["value"]) == ("verified", 0.75)
    assert up["evidence"]["direction"] == "higher_is_better"
    down = client.get(f"/v1/improvements/{fell['id']}", headers=READ).json()
    # globex = erp: baseline day 2 2/2 = 1.0; after: day 6 0/1 = 0.0
    assert (down["baseline"]["value"], down["evidence"]["value"]) == (1.0, 0.0)
    assert down["state"] == "not_achieved"


def test_manual_decision_needs_a_reason_and_keeps_the_evidence(
    client: TestClient, settings: Settings, engine: Engine, clock: Clock
) -> None:
    made = create(client, service="erp", target=0.5)
    to_implemented(client, clock, made["id"])
    verify(settings, engine, utc(2026, 10, 8))
    assert move(client, made["id"], "verified").status_code == 422  # no reason
    assert move(client, made["id"], "verified", "x", by="system").status_code == 422
    clock.now = utc(2026, 10, 9, 12)
    resp = move(client, made["id"], "verified", "two of the three were one outage", by="sm")
    assert resp.status_code == 200
    got = resp.json()
    assert got["state"] == "verified"
    assert got["decision"] == {
        "state": "verified",
        "by": "sm",
        "reason": "two of the three were one outage",
        "at": "2026-10-09T12:00:00Z",
    }
    assert (got["evidence"]["outcome"], got["evidence"]["value"]) == ("not_achieved", 1.5)


def test_a_decision_before_the_job_gets_the_evidence_beside_it(
    client: TestClient, settings: Settings, engine: Engine, clock: Clock
) -> None:
    made = create(client)
    to_implemented(client, clock, made["id"])
    assert move(client, made["id"], "not_achieved", "stopped early").status_code == 200
    verify(settings, engine, utc(2026, 10, 8))
    got = client.get(f"/v1/improvements/{made['id']}", headers=READ).json()
    assert got["state"] == "not_achieved"  # the person's decision stands
    assert got["decision"]["reason"] == "stopped early"
    assert got["evidence"]["outcome"] == "verified"  # what the numbers said
    assert got["transitions"][-1]["by"] == "cab"


# --- auth, metrics, OpenAPI -----------------------------------------------------------------------


def test_writes_need_the_manage_or_admin_token(client: TestClient) -> None:
    body = proposal()
    assert client.post("/v1/improvements", json=body).status_code == 401
    assert client.post("/v1/improvements", json=body, headers=READ).status_code == 403
    ingest = {"Authorization": "Bearer ingest-secret"}
    assert client.post("/v1/improvements", json=body, headers=ingest).status_code == 403
    assert client.post("/v1/improvements", json=body, headers=ADMIN).status_code == 201
    made = create(client)
    assert client.patch(f"/v1/improvements/{made['id']}", json={}).status_code == 401
    assert (
        client.post(
            f"/v1/improvements/{made['id']}/transitions", json={"to": "approved", "by": "x"}
        ).status_code
        == 401
    )
    # reads follow the read token
    assert client.get("/v1/improvements").status_code == 401
    assert client.get("/v1/improvements", headers=READ).status_code == 200


def test_writes_are_refused_when_no_manage_or_admin_token_is_configured(
    stored: str, engine: Engine
) -> None:
    bare = make_settings(stored, "127.0.0.1:9", admin_token=None)
    with TestClient(create_app(bare, engine)) as c:
        resp = c.post("/v1/improvements", json=proposal(), headers=MANAGE)
    assert resp.status_code == 403
    assert "ITSM_MANAGE_TOKEN" in resp.json()["error"]["message"]


def test_metrics_count_improvements_per_state_and_service(
    client: TestClient, engine: Engine
) -> None:
    before = _improvement_series(client, engine)
    create(client, title="<b>secret title</b>", owner="Jane Roe")
    create(client, service=None, customer="acme")
    cancelled = create(client, service="erp")
    move(client, cancelled["id"], "cancelled", "no")
    after = _improvement_series(client, engine)
    assert after[("proposed", "email")] == before.get(("proposed", "email"), 0) + 1
    assert after[("proposed", "")] == before.get(("proposed", ""), 0) + 1  # customer-wide
    assert after[("cancelled", "erp")] == before.get(("cancelled", "erp"), 0) + 1
    text = client.get("/metrics").text
    assert "secret title" not in text and "Jane Roe" not in text


def _improvement_series(client: TestClient, engine: Engine) -> dict[tuple[str, str], float]:
    """The counts in the /metrics snapshot the aggregator renders (published now)."""
    from prometheus_client.parser import text_string_to_metric_families

    publish(engine)
    text = client.get("/metrics").text
    return {
        (s.labels["state"], s.labels["service"]): s.value
        for family in text_string_to_metric_families(text)
        if family.name == "itsm_improvements"
        for s in family.samples
    }


def test_openapi_has_the_paths_and_examples(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    assert {"post", "get"} <= set(paths["/v1/improvements"])
    assert {"get", "patch"} <= set(paths["/v1/improvements/{improvement_id}"])
    assert "post" in paths["/v1/improvements/{improvement_id}/transitions"]
    assert "get" in paths["/v1/improvements/{improvement_id}/report"]
    assert "409" in paths["/v1/improvements/{improvement_id}/transitions"]["post"]["responses"]
    schemas = doc["components"]["schemas"]
    for name in ("ImprovementCreate", "ImprovementPatch", "TransitionRequest"):
        assert schemas[name]["examples"], name
    example = schemas["ImprovementCreate"]["examples"][0]
    assert example["indicator"] == "major_incident_count"


def test_improvement_counts_are_not_rendered_when_the_database_is_away() -> None:
    """The snapshot is not stored when a read fails (the api then says stale): never zeros."""
    from sqlalchemy.exc import DBAPIError

    from services.aggregator.exposition import ImprovementCollector
    from shared.db import make_engine

    away = make_engine("postgresql+psycopg://nobody@127.0.0.1:9/none")
    with pytest.raises(DBAPIError):
        list(ImprovementCollector(away).collect())
    away.dispose()


# --- the printable report ---------------------------------------------------------------------


def test_the_report_as_a_printable_page_escapes_every_value(
    client: TestClient, settings: Settings, engine: Engine, clock: Clock
) -> None:
    hostile = "<script>alert(1)</script>"
    made = create(client, title=hostile, owner=f'"{hostile}', description=f"a&b {hostile}")
    to_implemented(client, clock, made["id"])
    move(client, made["id"], "cancelled", note=hostile)
    url = f"/v1/improvements/{made['id']}/report"
    page = client.get(url, params={"format": "html"}, headers=READ)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script" not in page.text.lower()  # escaped everywhere, and no script of ours
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "&quot;&lt;script&gt;" in page.text and "a&amp;b" in page.text
    # a browser asking for HTML gets the page; an API client the JSON
    browser = client.get(url, headers={**READ, "Accept": "text/html,*/*;q=0.8"})
    assert browser.headers["content-type"].startswith("text/html")
    assert client.get(url, headers=READ).json()["improvement"]["title"] == hostile
    assert client.get(url, params={"format": "xml"}, headers=READ).status_code == 422


def test_the_report_page_renders_in_chromium_with_its_chart_and_asks_for_nothing(
    client: TestClient, settings: Settings, engine: Engine, clock: Clock
) -> None:
    from tests import chromium

    chromium.chromium()  # skips loudly when Chromium is missing
    made = create(client, title="Fewer major e-mail incidents <b>now</b>")
    to_implemented(client, clock, made["id"])
    verify(settings, engine, utc(2026, 10, 8))
    page = client.get(
        f"/v1/improvements/{made['id']}/report", params={"format": "html"}, headers=READ
    ).text
    # baseline (4 days) and verification (2 days) on one chart, target and baseline lines
    assert page.count("<circle") == 6 and "<polyline" in page
    assert "target 1" in page and "baseline 2" in page
    shown = chromium.render(page, "improvement-report")
    assert shown.png.startswith(b"\x89PNG") and len(shown.png) > 20_000
    assert shown.pdf.startswith(b"%PDF")
    # the page itself, once for the screenshot and once for the PDF, and nothing it asked for
    assert len(shown.requests) == 2
    assert all(r.startswith("GET ") and r.endswith("/page.html HTTP/1.1") for r in shown.requests)
