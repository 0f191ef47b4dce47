"""Query parameters (SPEC §5, §7): a filter the route or the indicator does not know is a 422
naming the parameters it takes, never silently ignored; the indicator's dimension filters come
from the registry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from services.aggregator.indicators import all_indicators, get
from services.api.app import create_app
from shared.db import make_engine
from shared.settings import Settings
from tests.conftest import Postgres, make_settings
from tests.helpers import aggregate, store, ticket_event, utc

ADMIN = {"Authorization": "Bearer admin-secret"}
DAY = {"window": "day", "start": "2026-10-05T00:00:00Z", "end": "2026-10-06T00:00:00Z"}


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine)) as c:
        yield c


def refused(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 422, resp.text
    error: dict[str, Any] = resp.json()["error"]
    assert error["code"] == "invalid_request"
    return error


# --- GET /v1/indicators/{id}: the indicator's dimensions, from the registry ---------------------
@pytest.mark.parametrize(
    "params",
    [
        {"severity": "critical"},  # a dimension, but not this indicator's: it used to be ignored
        {"servcie": "email"},  # misspelt
        {"foo": "1"},
    ],
)
def test_a_filter_the_indicator_lacks_is_refused_naming_its_parameters(
    client: TestClient, params: dict[str, str]
) -> None:
    error = refused(client.get("/v1/indicators/ticket_opened_count", params={**DAY, **params}))
    (name,) = params
    ind = get("ticket_opened_count")
    assert ind is not None and name not in ind.all_dimensions
    assert f"has no dimension {name}" in error["message"]
    assert "window, start, end, group_by" in error["message"]
    assert error["details"] == {
        "unknown": [name],
        "allowed": ["window", "start", "end", "group_by", *ind.all_dimensions],
    }


def test_every_dimension_of_the_registry_is_a_documented_and_accepted_filter(
    client: TestClient, engine: Engine
) -> None:
    store(engine, [ticket_event("A1", utc(2026, 10, 5, 9), "new", channel="phone")])
    aggregate(engine)
    doc = client.get("/openapi.json").json()
    operation = doc["paths"]["/v1/indicators/{indicator_id}"]["get"]
    documented = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
    every = {d for ind in all_indicators() for d in ind.all_dimensions}
    assert documented == {"window", "start", "end", "group_by", *every}
    for dimension in sorted(every):
        ind = next(i for i in all_indicators() if dimension in i.all_dimensions)
        resp = client.get(f"/v1/indicators/{ind.id}", params={**DAY, dimension: "x"})
        assert resp.status_code == 200, (dimension, ind.id, resp.text)
    body = client.get(
        "/v1/indicators/ticket_opened_count", params={**DAY, "channel": "phone"}
    ).json()
    assert [p["value"] for p in body["points"]] == [1.0]


# --- every other read route: its signature is the list -----------------------------------------
def test_every_read_route_refuses_an_unknown_query_parameter(client: TestClient) -> None:
    # the OpenAPI document lists the routes (the app's routes are nested per included router)
    paths = client.get("/openapi.json").json()["paths"]
    # not the probes (/healthz, /readyz: what probes them is configured elsewhere), nor the
    # indicator's series (plan checks its filters: tests above)
    reads = [
        p
        for p, ops in paths.items()
        if "get" in ops and p.startswith("/v1/") and p != "/v1/indicators/{indicator_id}"
    ]
    assert {"/v1/tickets", "/v1/reviews/customer", "/v1/improvements"} <= set(reads)
    for path in reads:
        # path parameters: 1 (the int ids) or their own name
        url = path.replace("{review_id}", "1").replace("{improvement_id}", "1")
        url = url.replace("{", "").replace("}", "")
        error = refused(client.get(url, params={"no_such_parameter": "1"}, headers=ADMIN))
        assert error["message"].startswith("unknown query parameter no_such_parameter"), path
        assert error["details"]["unknown"] == ["no_such_parameter"]


def test_the_refusal_names_the_route_parameters_html_format_included(client: TestClient) -> None:
    error = refused(
        client.get("/v1/reviews/customer", params={"period": "2026-10", "servcie": "email"})
    )
    assert error["details"]["allowed"] == ["customer", "format", "history", "period", "service"]
    assert "takes customer, format, history, period, service" in error["message"]
    error = refused(client.get("/v1/tickets", params={"severity": "critical"}))
    assert "severity" not in error["details"]["allowed"]
    assert "state" in error["details"]["allowed"]


def test_declared_parameters_are_still_accepted(client: TestClient) -> None:
    assert client.get("/v1/tickets", params={"state": "open", "limit": "5"}).status_code == 200
    assert client.get("/v1/objectives", params={"window": "day"}).status_code == 200
    assert client.get("/v1/indicators").status_code == 200
    refused(client.get("/v1/indicators", params={"family": "process"}))


def test_authentication_comes_before_the_parameters(
    postgres: Postgres, kafka_bootstrap: str
) -> None:
    s = make_settings(postgres.fresh(), kafka_bootstrap, read_token="reader")
    eng = make_engine(s.require_database_url())
    with TestClient(create_app(s, eng)) as c:
        assert c.get("/v1/tickets", params={"foo": "1"}).status_code == 401
        resp = c.get("/v1/tickets", params={"foo": "1"}, headers={"Authorization": "Bearer reader"})
        refused(resp)
    eng.dispose()
