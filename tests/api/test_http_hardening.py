"""The api under misuse (SPEC §7, §8): an unexpected exception is a JSON 500 with the error body;
every answer says `nosniff`; request metrics are labelled by known methods and routes only;
bodies of other media types are 415, oversized ones 413; parameters and body fields holding
what PostgreSQL or the calendar cannot take are 422; the OpenAPI document declares the bearer
tokens and the error body of every error answer; tokens never reach a log."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from services.api.app import METHODS, create_app
from shared.db import make_engine
from shared.settings import Settings
from tests.conftest import Postgres, make_settings
from tests.helpers import ticket_event, utc

INGEST = {"Authorization": "Bearer ingest-secret"}
ADMIN = {"Authorization": "Bearer admin-secret"}
CLOUDEVENTS = ["application/cloudevents+json", "application/cloudevents-batch+json"]


@pytest.fixture(scope="module")
def served(postgres: Postgres, kafka_bootstrap: str) -> Iterator[tuple[Settings, Engine]]:
    """One database for the module: its tests read, or write nothing another one reads."""
    settings = make_settings(postgres.fresh(), kafka_bootstrap)
    engine = make_engine(settings.require_database_url())
    yield settings, engine
    engine.dispose()


@pytest.fixture
def app(served: tuple[Settings, Engine]) -> FastAPI:
    return create_app(*served)


@pytest.fixture(scope="module")
def client(served: tuple[Settings, Engine]) -> Iterator[TestClient]:
    with TestClient(create_app(*served), raise_server_exceptions=False) as c:
        yield c


def error(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body: dict[str, Any] = resp.json()["error"]
    assert set(body) == {"code", "message", "details"}
    return body


# --- 500, headers --------------------------------------------------------------------------------
def test_an_unexpected_exception_is_a_json_500_logged_without_the_token(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    @app.get("/v1/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    caplog.set_level(logging.DEBUG)
    with TestClient(app, raise_server_exceptions=False) as c:
        resp = c.get("/v1/boom", headers=ADMIN)
    assert error(resp, 500) == {
        "code": "internal_error",
        "message": "internal server error",
        "details": None,
    }
    assert resp.headers["x-content-type-options"] == "nosniff"
    [line] = [r for r in caplog.records if r.getMessage() == "unexpected error answering a request"]
    assert (line.route, line.error) == ("/v1/boom", "RuntimeError")  # type: ignore[attr-defined]
    assert "admin-secret" not in caplog.text


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/healthz", 200),
        ("GET", "/openapi.json", 200),
        ("GET", "/metrics", 200),
        ("GET", "/v1/nope", 404),
        ("DELETE", "/v1/tickets", 405),
        ("GET", "/v1/tickets?limit=0", 422),
        ("POST", "/v1/events", 401),
    ],
)
def test_every_answer_forbids_content_sniffing(
    client: TestClient, method: str, path: str, status: int
) -> None:
    resp = client.request(method, path)
    assert resp.status_code == status
    assert resp.headers["x-content-type-options"] == "nosniff"


def test_a_405_has_the_error_body_and_names_the_allowed_methods(client: TestClient) -> None:
    resp = client.delete("/v1/tickets")
    assert error(resp, 405)["code"] == "method_not_allowed"
    assert resp.headers["allow"] == "GET"


# --- request metrics ----------------------------------------------------------------------------
def _request_labels(client: TestClient) -> set[tuple[str, str, str]]:
    """(method, route, status) of each itsm_http_requests_total series."""
    families = text_string_to_metric_families(client.get("/metrics").text)
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"])
        for family in families
        if family.name == "itsm_http_requests"
        for s in family.samples
        if s.name == "itsm_http_requests_total"
    }


def test_made_up_methods_and_paths_never_become_metric_labels(client: TestClient) -> None:
    for method in ("FOO", "PROPFIND"):
        client.request(method, "/v1/tickets")
        client.request(method, "/v1/tickets/1/x")
        client.request(method, "/v1/made/up/path")
    before = _request_labels(client)
    for n in range(50):  # fifty more made-up methods and paths: not one more series
        client.request(f"M{n}", f"/v1/tickets/{n}/x")
        client.request(f"M{n}", f"/nope-{n}")
    after = _request_labels(client) - {("GET", "/metrics", "200")}
    assert after == before - {("GET", "/metrics", "200")}
    assert ("other", "/v1/tickets", "405") in after
    assert ("other", "unmatched", "404") in after
    assert {method for method, _, _ in after} <= METHODS | {"other"}


# --- media types and sizes -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "media_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None]
)
def test_an_event_body_not_sent_as_json_is_415(client: TestClient, media_type: str | None) -> None:
    event = json.dumps(ticket_event("A1", utc(2026, 10, 5), "new"))
    headers = {**INGEST, **({"Content-Type": media_type} if media_type else {})}
    resp = client.post("/v1/events", content=event, headers=headers)
    assert error(resp, 415)["details"] == {"accepted": ["application/json", *CLOUDEVENTS]}


@pytest.mark.parametrize(
    "media_type", ["application/json; charset=utf-8", "Application/CloudEvents+JSON", *CLOUDEVENTS]
)
def test_the_json_media_types_of_cloudevents_are_read(client: TestClient, media_type: str) -> None:
    # Not an event: read as JSON and judged by the contract (not refused for its type).
    resp = client.post(
        "/v1/events", content=b'[{"id": 1}]', headers={**INGEST, "Content-Type": media_type}
    )
    assert resp.status_code == 422
    assert "rejected" in resp.json()


def test_the_token_is_checked_before_the_media_type(client: TestClient) -> None:
    resp = client.post("/v1/events", content=b"x", headers={"Content-Type": "text/plain"})
    assert error(resp, 401)["code"] == "unauthorized"


def test_a_register_body_not_sent_as_json_is_415(client: TestClient) -> None:
    resp = client.post(
        "/v1/improvements",
        content=b'{"title": "x"}',
        headers={**ADMIN, "Content-Type": "text/plain"},
    )
    assert error(resp, 415)["details"] == {"accepted": ["application/json"]}


def test_a_register_body_over_a_mebibyte_is_413_unread(client: TestClient) -> None:
    big = json.dumps({"title": "x", "description": "y" * (1024 * 1024)})
    for headers in (ADMIN, {}):  # the body is refused whoever sends it, before it is kept
        resp = client.post(
            "/v1/improvements", content=big, headers={**headers, "Content-Type": "application/json"}
        )
        assert error(resp, 413)["code"] == "payload_too_large"


def test_an_empty_event_body_is_the_documented_422(client: TestClient) -> None:
    resp = client.post(
        "/v1/events", content=b"", headers={**INGEST, "Content-Type": "application/json"}
    )
    assert error(resp, 422)["code"] == "invalid_request"
    documented = client.get("/openapi.json").json()["paths"]["/v1/events"]["post"]["responses"]
    refs = [s["$ref"] for s in documented["422"]["content"]["application/json"]["schema"]["anyOf"]]
    assert refs == ["#/components/schemas/IngestResult", "#/components/schemas/ErrorBody"]


# --- what parameters and bodies may hold ---------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "loc"),
    [
        ("/v1/tickets?service=%00", ["query", "service"]),
        ("/v1/tickets?service=a%0Ab", ["query", "service"]),
        ("/v1/tickets/%00", ["path", "ticket_id"]),
        ("/v1/changes/%00", ["path", "change_id"]),
        ("/v1/cis/%1B", ["path", "ci_id"]),
        ("/v1/indicators/ticket_opened_count?customer=%00", ["query", "customer"]),
        ("/v1/dead-letters?reason=%00", ["query", "reason"]),
        ("/v1/tickets?a%00b=1", ["query", "a?b"]),
    ],
)
def test_a_control_character_in_a_parameter_is_422_naming_it(
    client: TestClient, url: str, loc: list[str]
) -> None:
    body = error(client.get(url, headers=ADMIN), 422)
    assert body["details"] == [{"loc": loc, "msg": "control characters are refused"}]


@pytest.mark.parametrize(
    "url",
    [
        "/v1/dead-letters?before_id=9223372036854775808",
        "/v1/improvements/9223372036854775808",
        "/v1/reviews/99999999999999999999",
        "/v1/indicators/ticket_opened_count?end=0001-01-01T00:00:00Z",
        "/v1/indicators/ticket_opened_count?start=0001-01-01T00:00:00%2B05:00",
        "/v1/indicators/ticket_opened_count?start=9999-12-31T23:00:00-05:00",
        "/v1/indicators/ticket_opened_count?start=0.5",
        "/v1/reviews/schedule?at=0001-01-01T00:00:00%2B05:00",
        "/v1/reviews/customer?service=email&period=9999-12",
        "/v1/reviews/customer?service=email&period=0001-W01",
        "/v1/reviews/team?assignment_group=x&period=9999-Q4",
    ],
)
def test_numbers_and_dates_past_their_range_are_422(client: TestClient, url: str) -> None:
    assert error(client.get(url, headers=ADMIN), 422)["code"] in (
        "validation_error",
        "invalid_request",
    )


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/improvements", {"title": "a\x00b"}),
        ("/v1/improvements", {"due_date": 0}),
        ("/v1/improvements", {"due_date": "9999-12-31"}),
        ("/v1/reviews", {"notes": "\x00"}),
        ("/v1/reviews", {"held_at": "0001-01-01T00:00:00+05:00"}),
        ("/v1/reviews", {"held_at": 1760000000}),
    ],
)
def test_body_fields_postgresql_or_the_calendar_cannot_take_are_422(
    client: TestClient, path: str, body: dict[str, Any]
) -> None:
    example = client.get("/openapi.json").json()["components"]["schemas"]
    model = {"/v1/improvements": "ImprovementCreate", "/v1/reviews": "ReviewCreate"}[path]
    resp = client.post(path, json={**example[model]["examples"][0], **body}, headers=ADMIN)
    [detail] = error(resp, 422)["details"]
    assert detail["loc"] == ["body", *body]


# --- the OpenAPI document -----------------------------------------------------------------------
def test_the_document_declares_the_bearer_tokens_each_operation_takes(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert set(schemes) == {"ingestToken", "adminToken", "manageToken", "readToken"}
    for name, scheme in schemes.items():
        assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
        assert scheme["description"].startswith(f"ITSM_{name.removesuffix('Token').upper()}_TOKEN")
    paths = doc["paths"]
    security = {
        "ingest": [{"ingestToken": []}, {"adminToken": []}],
        "admin": [{"adminToken": []}],
        "manage": [{"manageToken": []}, {"adminToken": []}],
        "read": [
            {"readToken": []},
            {"ingestToken": []},
            {"manageToken": []},
            {"adminToken": []},
            {},
        ],
    }
    assert paths["/v1/events"]["post"]["security"] == security["ingest"]
    assert paths["/v1/ingest/alertmanager"]["post"]["security"] == security["ingest"]
    assert paths["/v1/dead-letters"]["get"]["security"] == security["admin"]
    assert paths["/v1/improvements"]["post"]["security"] == security["manage"]
    assert paths["/v1/tickets/{ticket_id}"]["get"]["security"] == security["read"]
    assert "security" not in paths["/healthz"]["get"]
    for path, item in paths.items():
        for method, operation in item.items():
            if path.startswith("/v1/"):
                assert operation["security"] in security.values(), (method, path)
                assert {"401", "403"} <= set(operation["responses"]), (method, path)


def test_every_documented_error_answer_is_the_error_body(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in json.dumps(doc)
    error_body = {"$ref": "#/components/schemas/ErrorBody"}
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            for status, answer in operation["responses"].items():
                if int(status) < 400 or (path, status) == ("/readyz", "503"):
                    continue  # a probe's 503 is its report (Health)
                schema = answer["content"]["application/json"]["schema"]
                assert schema == error_body or error_body in schema.get("anyOf", []), (
                    method,
                    path,
                    status,
                )
            assert "500" in operation["responses"]
            for parameter in operation.get("parameters", []):
                text = json.dumps(parameter["schema"])
                if '"type": "string"' in text and "enum" not in text and "format" not in text:
                    assert "pattern" in text, (path, parameter["name"])
