"""The HTTP API on real PostgreSQL and the real broker (SPEC §7)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer
from sqlalchemy import text
from sqlalchemy.engine import Engine

from services.api.app import create_app
from shared.db import make_engine
from shared.kafka import CONSUMER_TIMINGS
from shared.settings import Settings
from tests.conftest import Postgres, make_settings, wait_until
from tests.helpers import (
    aggregate,
    aggregator,
    cloud_event,
    publish,
    real_clock,
    store,
    ticket_event,
    utc,
)

INGEST = {"Authorization": "Bearer ingest-secret"}
RAW_JSON = {**INGEST, "Content-Type": "application/json"}  # for bodies sent as bytes


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine)) as c:
        yield c


def error_code(resp: Any) -> str:
    body = resp.json()
    assert set(body["error"]) == {"code", "message", "details"}
    return str(body["error"]["code"])


# --- auth ---------------------------------------------------------------------------------------
def test_ingest_without_token_is_401(client: TestClient) -> None:
    resp = client.post("/v1/events", json=ticket_event("A1", utc(2026, 10, 5), "new"))
    assert resp.status_code == 401
    assert error_code(resp) == "unauthorized"


def test_ingest_with_wrong_token_is_401(client: TestClient) -> None:
    resp = client.post("/v1/events", json={}, headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401


def test_ingest_with_read_token_is_403(postgres: Postgres, kafka_bootstrap: str) -> None:
    s = make_settings(postgres.fresh(), kafka_bootstrap, read_token="reader")
    eng = make_engine(s.require_database_url())
    with TestClient(create_app(s, eng)) as c:
        resp = c.post("/v1/events", json={}, headers={"Authorization": "Bearer reader"})
        assert resp.status_code == 403
        # and reads now need a token
        assert c.get("/v1/indicators").status_code == 401
        assert (
            c.get("/v1/indicators", headers={"Authorization": "Bearer reader"}).status_code == 200
        )
    eng.dispose()


def test_ingest_is_refused_when_no_write_token_is_configured(
    postgres: Postgres, kafka_bootstrap: str
) -> None:
    s = make_settings(postgres.fresh(), kafka_bootstrap, ingest_token=None, admin_token=None)
    eng = make_engine(s.require_database_url())
    with TestClient(create_app(s, eng)) as c:
        resp = c.post("/v1/events", json={}, headers={"Authorization": "Bearer anything"})
        assert resp.status_code == 403
        assert "ITSM_INGEST_TOKEN" in resp.json()["error"]["message"]
    eng.dispose()


# --- ingest -------------------------------------------------------------------------------------
def _consume(settings: Settings, topic: str, n: int) -> list[Any]:
    consumer = KafkaConsumer(
        settings.topic(topic),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"{settings.consumer_group}-peek",
        auto_offset_reset="earliest",
        **CONSUMER_TIMINGS,
    )
    got: list[Any] = []
    try:

        def poll() -> bool:
            for records in consumer.poll(500).values():
                got.extend(records)
            return len(got) >= n

        wait_until(poll, timeout=30, what=f"{n} messages on {topic}")
    finally:
        consumer.close()
    return got


def test_single_event_is_produced_keyed_by_entity_before_the_answer(
    client: TestClient, settings: Settings
) -> None:
    ev = ticket_event("INC42", utc(2026, 10, 5, 9), "new", event_id="http-1")
    resp = client.post(
        "/v1/events", json=ev, headers={**INGEST, "Content-Type": "application/cloudevents+json"}
    )
    assert resp.status_code == 202
    assert resp.json() == {"accepted": ["http-1"], "rejected": []}
    [msg] = _consume(settings, "tickets", 1)
    assert msg.key == b"INC42"
    assert json.loads(msg.value)["id"] == "http-1"


def test_batch_reports_each_rejection_and_produces_the_rest(
    client: TestClient, settings: Settings
) -> None:
    good = ticket_event("B1", utc(2026, 10, 5, 9), "new", event_id="b-ok")
    bad = ticket_event("B2", utc(2026, 10, 5, 9), "new", event_id="b-bad", priority="high")
    call = {
        "specversion": "1.0",
        "id": "b-call",
        "source": "pbx://hq",
        "type": "itsm.servicedesk.call.completed",
        "time": "2026-10-05T09:00:00Z",
        "data": {"call_id": "c1", "answered": True},
    }
    resp = client.post(
        "/v1/events",
        content=json.dumps([good, bad, call, "nonsense"]),
        headers={**INGEST, "Content-Type": "application/cloudevents-batch+json"},
    )
    assert resp.status_code == 207
    body = resp.json()
    assert body["accepted"] == ["b-ok", "b-call"]
    assert [(r["index"], r["id"]) for r in body["rejected"]] == [(1, "b-bad"), (3, None)]
    assert "data.priority" in body["rejected"][0]["reason"]
    assert len(_consume(settings, "servicedesk", 1)) == 1  # a call goes to its own topic


def test_batch_with_nothing_valid_is_422(client: TestClient) -> None:
    resp = client.post("/v1/events", json=[{"id": 1}, {"specversion": "1.0"}], headers=INGEST)
    assert resp.status_code == 422
    assert resp.json()["accepted"] == []
    assert len(resp.json()["rejected"]) == 2


def test_single_invalid_event_is_422_with_its_reason(client: TestClient) -> None:
    ev = ticket_event("I1", "2026-10-05T09:00:00", "new")  # no offset
    resp = client.post("/v1/events", json=ev, headers=INGEST)
    assert resp.status_code == 422
    assert "timezone" in resp.json()["rejected"][0]["reason"]


def test_oversized_single_event_is_413(client: TestClient) -> None:
    ev = ticket_event("BIG", utc(2026, 10, 5), "new", notes="x" * 300_000)
    resp = client.post("/v1/events", json=ev, headers=INGEST)
    assert resp.status_code == 413
    assert error_code(resp) == "payload_too_large"


def test_batch_over_10000_events_is_413(client: TestClient) -> None:
    resp = client.post("/v1/events", json=[{}] * 10_001, headers=INGEST)
    assert resp.status_code == 413


def test_body_that_is_not_json_is_422(client: TestClient) -> None:
    resp = client.post("/v1/events", content=b"<xml/>", headers=RAW_JSON)
    assert resp.status_code == 422
    assert error_code(resp) == "invalid_request"


# --- indicators ---------------------------------------------------------------------------------
@pytest.fixture
def with_data(engine: Engine) -> Engine:
    e = ticket_event
    store(
        engine,
        [
            e("T1", utc(2026, 10, 5, 9), "new", service="email", priority=2),
            e("T2", utc(2026, 10, 5, 10), "new", service="email", priority=3),
            e("T3", utc(2026, 10, 5, 11), "new", service="erp", priority=3),
            e("T4", utc(2026, 10, 6, 11), "new", service="erp", priority=3),
        ],
    )
    aggregate(engine)
    return engine


def test_indicator_catalog_lists_the_indicators(client: TestClient) -> None:
    body = client.get("/v1/indicators").json()
    ids = {i["id"]: i for i in body["indicators"]}
    assert {
        "ticket_opened_count",
        "ticket_resolved_count",
        "incident_resolution_time_seconds",
    } <= set(ids)
    assert ids["incident_resolution_time_seconds"]["unit"] == "seconds"
    assert (
        ids["incident_resolution_time_seconds"]["metric"] == "itsm_incident_resolution_time_seconds"
    )


def test_indicator_total_per_day(client: TestClient, with_data: Engine) -> None:
    resp = client.get(
        "/v1/indicators/ticket_opened_count",
        params={"window": "day", "start": "2026-10-05T00:00:00Z", "end": "2026-10-07T00:00:00Z"},
    )
    assert resp.status_code == 200
    body = resp.json()
    assert (body["indicator"], body["unit"], body["window"]) == (
        "ticket_opened_count",
        "count",
        "day",
    )
    # 10-05: T1, T2, T3 = 3; 10-06: T4 = 1
    assert [(p["window_start"][:10], p["dimensions"], p["value"]) for p in body["points"]] == [
        ("2026-10-05", {}, 3.0),
        ("2026-10-06", {}, 1.0),
    ]


def test_indicator_group_by_and_filter(client: TestClient, with_data: Engine) -> None:
    params = {"window": "day", "start": "2026-10-05T00:00:00Z", "end": "2026-10-06T00:00:00Z"}
    body = client.get(
        "/v1/indicators/ticket_opened_count", params={**params, "group_by": "service"}
    ).json()
    assert [(p["dimensions"], p["value"]) for p in body["points"]] == [
        ({"service": "email"}, 2.0),
        ({"service": "erp"}, 1.0),
    ]
    body = client.get(
        "/v1/indicators/ticket_opened_count",
        params={**params, "service": "email", "group_by": "priority"},
    ).json()
    assert [(p["dimensions"], p["value"]) for p in body["points"]] == [
        ({"priority": "2", "service": "email"}, 1.0),
        ({"priority": "3", "service": "email"}, 1.0),
    ]
    body = client.get(
        "/v1/indicators/ticket_opened_count", params={**params, "priority": "3"}
    ).json()
    assert [(p["dimensions"], p["value"]) for p in body["points"]] == [({"priority": "3"}, 2.0)]


def test_a_cached_answer_follows_every_write_to_its_points(
    client: TestClient, with_data: Engine
) -> None:
    params = {
        "window": "day",
        "group_by": "service",
        "start": "2026-10-05T00:00:00Z",
        "end": "2026-10-07T00:00:00Z",
    }

    def read() -> list[tuple[str, str, float]]:
        body = client.get("/v1/indicators/ticket_opened_count", params=params).json()
        return [
            (p["window_start"][:10], p["dimensions"]["service"], p["value"]) for p in body["points"]
        ]

    first = read()
    assert first == [
        ("2026-10-05", "email", 2.0),
        ("2026-10-05", "erp", 1.0),
        ("2026-10-06", "erp", 1.0),
    ]
    assert read() == first  # served from the cache
    cache = client.app.state.series_cache  # type: ignore[attr-defined]
    assert len(cache._cache) == 1
    # a new ticket updates one point, another adds a point; a removed window removes points
    store(
        with_data,
        [
            ticket_event("T5", utc(2026, 10, 5, 12), "new", service="erp", priority=3),
            ticket_event("T6", utc(2026, 10, 6, 12), "new", service="hr", priority=3),
        ],
    )
    aggregate(with_data)
    assert read() == [
        ("2026-10-05", "email", 2.0),
        ("2026-10-05", "erp", 2.0),
        ("2026-10-06", "erp", 1.0),
        ("2026-10-06", "hr", 1.0),
    ]
    aggregator(with_data).fold(force=True)  # what is pending joins the points, then goes
    with with_data.begin() as conn:
        conn.execute(text("DELETE FROM indicator_values WHERE window_start = '2026-10-06'"))
    assert read() == [("2026-10-05", "email", 2.0), ("2026-10-05", "erp", 2.0)]


def test_the_same_request_is_answered_from_memory_for_read_cache_seconds(
    settings: Settings, with_data: Engine
) -> None:
    """Within `read_cache_seconds` an answer is served without a database read (a write
    meanwhile is not seen); after it, the first request revalidates while the others are still
    served the previous answer, and then everyone sees the write."""
    now = [0.0]
    app = create_app(settings.model_copy(update={"read_cache_seconds": 5.0}), with_data)
    app.state.series_cache.clock = lambda: now[0]
    params = {"window": "day", "start": "2026-10-05T00:00:00Z", "end": "2026-10-06T00:00:00Z"}

    def opened(c: TestClient) -> float:
        body = c.get("/v1/indicators/ticket_opened_count", params=params).json()
        return float(sum(p["value"] for p in body["points"]))

    with TestClient(app) as c:
        before = opened(c)
        store(with_data, [ticket_event("RC1", utc(2026, 10, 5, 15), "new", service="erp")])
        aggregate(with_data)
        now[0] = 4.9
        assert opened(c) == before  # fresh in memory: not read again
        # expired, and another request is revalidating it: still the previous answer
        asked = ("ticket_opened_count", "day", utc(2026, 10, 5), utc(2026, 10, 6), (), ())
        now[0] = 5.0
        cache = app.state.series_cache
        assert cache.recent(asked) is None  # this caller revalidates
        assert opened(c) == before  # the others are not held up
        cache.remember(asked, None)  # the revalidation failed: the next request reads
        assert opened(c) == before + 1


def test_a_large_answer_is_gzipped_for_clients_that_accept_it(
    client: TestClient, engine: Engine
) -> None:
    store(
        engine,
        [
            ticket_event(f"G{n}", utc(2026, 10, 1 + n // 40, 9), "new", service=f"svc{n % 40}")
            for n in range(400)
        ],
    )
    aggregate(engine)
    params = {"window": "day", "group_by": "service", "start": "2026-10-01T00:00:00Z"}
    params["end"] = "2026-11-01T00:00:00Z"
    url = "/v1/indicators/ticket_opened_count"
    zipped = client.get(url, params=params, headers={"Accept-Encoding": "gzip"})
    plain = client.get(url, params=params, headers={"Accept-Encoding": "identity"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in plain.headers
    assert int(zipped.headers["content-length"]) < int(plain.headers["content-length"]) / 5
    assert zipped.json() == plain.json()
    assert len(plain.json()["points"]) == 400  # 40 services, each on 10 days


def test_a_grouping_not_stored_is_computed_at_query_time(
    client: TestClient, with_data: Engine
) -> None:
    # service × priority per hour is not stored (an hour keeps its total and the enumerated
    # dimensions): the same statement answers it from the tickets
    with with_data.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT count(*) FROM indicator_points WHERE window_kind = 'hour' "
                "AND dim_keys = 'priority,service'"
            )
        ).scalar()
    assert stored == 0
    params = {"window": "hour", "start": "2026-10-05T09:00:00Z", "end": "2026-10-05T12:00:00Z"}
    body = client.get(
        "/v1/indicators/ticket_opened_count", params={**params, "group_by": "service,priority"}
    ).json()
    # T1 email/2 at 09, T2 email/3 at 10, T3 erp/3 at 11
    assert [(p["window_start"][11:16], p["dimensions"], p["value"]) for p in body["points"]] == [
        ("09:00", {"priority": "2", "service": "email"}, 1.0),
        ("10:00", {"priority": "3", "service": "email"}, 1.0),
        ("11:00", {"priority": "3", "service": "erp"}, 1.0),
    ]
    # filtered: a count's empty windows read as 0, as for stored points
    body = client.get(
        "/v1/indicators/ticket_opened_count", params={**params, "service": "erp"}
    ).json()
    assert [(p["window_start"][11:16], p["value"]) for p in body["points"]] == [
        ("09:00", 0.0),
        ("10:00", 0.0),
        ("11:00", 1.0),
    ]


def test_a_query_time_grouping_past_its_time_limit_is_a_503(
    client: TestClient, with_data: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.api import indicators

    monkeypatch.setattr(indicators, "QUERY_SECONDS", 0.001)
    # a year of hours by service and priority: far longer than a millisecond
    params = {
        "window": "hour",
        "start": "2025-10-01T00:00:00Z",
        "end": "2026-10-01T00:00:00Z",
        "group_by": "service,priority",
    }
    resp = client.get("/v1/indicators/incident_resolution_time_seconds", params=params)
    assert resp.status_code == 503
    assert error_code(resp) == "query_timeout"
    assert "narrow start..end" in resp.json()["error"]["message"]


def test_month_window(client: TestClient, with_data: Engine) -> None:
    body = client.get(
        "/v1/indicators/ticket_opened_count",
        params={"window": "month", "start": "2026-10-01T00:00:00Z", "end": "2026-11-01T00:00:00Z"},
    ).json()
    assert [(p["window_start"][:10], p["window_end"][:10], p["value"]) for p in body["points"]] == [
        ("2026-10-01", "2026-11-01", 4.0)
    ]


def test_quarter_window(client: TestClient, with_data: Engine) -> None:
    body = client.get(
        "/v1/indicators/ticket_opened_count",
        params={
            "window": "quarter",
            "start": "2026-07-01T00:00:00Z",
            "end": "2027-01-01T00:00:00Z",
        },
    ).json()
    # Q3 has nothing (a count reads 0), Q4 the four tickets of October
    assert [(p["window_start"][:10], p["window_end"][:10], p["value"]) for p in body["points"]] == [
        ("2026-07-01", "2026-10-01", 0.0),
        ("2026-10-01", "2027-01-01", 4.0),
    ]
    by_service = client.get(
        "/v1/indicators/ticket_opened_count",
        params={"window": "quarter", "start": "2026-10-01T00:00:00Z", "group_by": "service"},
    ).json()
    assert [(p["dimensions"], p["value"]) for p in by_service["points"]] == [
        ({"service": "email"}, 2.0),
        ({"service": "erp"}, 2.0),
    ]


def test_filter_and_group_by_channel(client: TestClient, engine: Engine) -> None:
    e = ticket_event
    store(
        engine,
        [
            e("CH1", utc(2026, 10, 5, 9), "new", service="email", channel="phone"),
            e("CH2", utc(2026, 10, 5, 10), "new", service="email", channel="portal"),
            e("CH3", utc(2026, 10, 5, 11), "new", service="erp", channel="phone"),
            e("CH3", utc(2026, 10, 5, 12), "resolved"),
        ],
    )
    aggregate(engine)
    params = {"window": "day", "start": "2026-10-05T00:00:00Z", "end": "2026-10-06T00:00:00Z"}
    body = client.get(
        "/v1/indicators/ticket_opened_count", params={**params, "group_by": "channel"}
    ).json()
    assert [(p["dimensions"], p["value"]) for p in body["points"]] == [
        ({"channel": "phone"}, 2.0),
        ({"channel": "portal"}, 1.0),
    ]
    body = client.get(
        "/v1/indicators/ticket_opened_count",
        params={**params, "channel": "phone", "group_by": "service"},
    ).json()
    assert [(p["dimensions"], p["value"]) for p in body["points"]] == [
        ({"channel": "phone", "service": "email"}, 1.0),
        ({"channel": "phone", "service": "erp"}, 1.0),
    ]
    body = client.get(
        "/v1/indicators/ticket_resolved_count", params={**params, "channel": "phone"}
    ).json()
    assert [(p["dimensions"], p["value"]) for p in body["points"]] == [({"channel": "phone"}, 1.0)]
    # durations are not broken down by channel
    resp = client.get(
        "/v1/indicators/incident_resolution_time_seconds", params={**params, "channel": "phone"}
    )
    assert resp.status_code == 422
    assert "has no dimension channel" in resp.json()["error"]["message"]


@pytest.mark.parametrize(
    "params",
    [
        {"assignee": "alice"},
        {"group_by": "assignee"},
        {"group_by": "service,assignee", "service": "email"},
    ],
)
def test_per_engineer_values_are_refused_naming_the_team_review(
    client: TestClient, params: dict[str, str]
) -> None:
    resp = client.get("/v1/indicators/ticket_resolved_count", params=params)
    assert resp.status_code == 422
    assert error_code(resp) == "invalid_request"
    message = resp.json()["error"]["message"]
    assert "assignee is private" in message and "team review" in message


def test_the_catalog_lists_no_private_dimension(client: TestClient) -> None:
    body = client.get("/v1/indicators").json()
    assert not any("assignee" in i["dimensions"] for i in body["indicators"])


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/v1/indicators/no_such_thing", {}, 404, "not_found"),
        ("/v1/indicators/ticket_opened_count", {"window": "fortnight"}, 422, "invalid_request"),
        ("/v1/indicators/ticket_opened_count", {"group_by": "assignee"}, 422, "invalid_request"),
        ("/v1/indicators/ticket_opened_count", {"ci": "db1"}, 422, "invalid_request"),
        ("/v1/indicators/ticket_opened_count", {"start": "yesterday"}, 422, "validation_error"),
        # 1970 to now in hours: ~500,000 windows to fill with zeros
        (
            "/v1/indicators/ticket_opened_count",
            {"window": "hour", "start": "1970-01-01T00:00:00Z"},
            422,
            "invalid_request",
        ),
        (
            "/v1/indicators/ticket_opened_count",
            {"start": "2026-10-01T00:00:00"},
            422,
            "invalid_request",
        ),
        (
            "/v1/indicators/ticket_opened_count",
            {"start": "2026-10-02T00:00:00Z", "end": "2026-10-01T00:00:00Z"},
            422,
            "invalid_request",
        ),
        ("/v1/nothing-here", {}, 404, "not_found"),
    ],
)
def test_bad_requests_get_an_error_body(
    client: TestClient, path: str, params: dict[str, str], status: int, code: str
) -> None:
    resp = client.get(path, params=params)
    assert resp.status_code == status
    assert error_code(resp) == code


def test_unknown_indicator_in_a_hostile_id_is_echoed_as_json_data(client: TestClient) -> None:
    resp = client.get("/v1/indicators/<script>alert(1)<%2Fscript>")
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/json")


# --- operations ---------------------------------------------------------------------------------
def test_healthz_and_readyz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    resp = client.get("/readyz")
    assert resp.status_code == 200
    assert resp.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_readyz_is_503_on_an_unmigrated_database(postgres: Postgres, kafka_bootstrap: str) -> None:
    s = make_settings(postgres.fresh(migrated=False), kafka_bootstrap)
    eng = make_engine(s.require_database_url())
    with TestClient(create_app(s, eng)) as c:
        resp = c.get("/readyz")
    eng.dispose()
    assert resp.status_code == 503
    assert "itsm-metrics migrate" in resp.json()["checks"]["database"]


def test_readyz_is_503_when_the_broker_is_unreachable(postgres: Postgres) -> None:
    from services.local.engines import free_port

    s = make_settings(postgres.fresh(), f"127.0.0.1:{free_port()}")
    eng = make_engine(s.require_database_url())
    with TestClient(create_app(s, eng)) as c:
        resp = c.get("/readyz")
    eng.dispose()
    assert resp.status_code == 503
    assert "unreachable" in resp.json()["checks"]["broker"]


def test_metrics_expose_current_and_previous_windows(client: TestClient, engine: Engine) -> None:
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    e = ticket_event
    # two tickets today (current day), one yesterday (previous day); resolution 600 s today
    store(
        engine,
        [
            e("M1", today + timedelta(seconds=1), "new", service="email", priority=2),
            e("M1", today + timedelta(seconds=601), "resolved"),
            e("M2", today + timedelta(seconds=2), "new", service="erp", priority=3),
            e("M3", today - timedelta(hours=1), "new", service="erp", priority=3),
        ],
    )
    aggregate(engine, clock=real_clock)
    publish(engine, clock=real_clock)  # the aggregator's exposition job
    client.get("/healthz")
    text = client.get("/metrics").text
    assert (
        'itsm_ticket_opened_count{assignment_group="",channel="",customer="",kind="",'
        'period="current",priority="",service="",window="day"} 2.0' in text
    )
    assert (
        'itsm_ticket_opened_count{assignment_group="",channel="",customer="",kind="",'
        'period="previous",priority="",service="",'
        'window="day"} 1.0' in text
    )
    assert (
        'itsm_incident_resolution_time_seconds{assignment_group="",customer="",'
        'period="current",priority="",quantile="0.9",'
        'service="email",window="day"} 600.0' in text
    )
    assert 'itsm_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in text
    assert "# TYPE itsm_ticket_resolved_count gauge" in text


def test_openapi_documents_the_event_example(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/events"]["post"]["requestBody"]["content"]
    examples = body["application/cloudevents+json"]["examples"]
    assert examples["itsm.ticket.created"]["value"]["data"]["ticket_id"] == "INC0012345"
    assert "itsm.monitor.alert.firing" in examples
    assert len(body["application/cloudevents-batch+json"]["example"]) == len(examples) == 10


def test_a_count_with_nothing_to_count_reads_as_zero(client: TestClient, with_data: Engine) -> None:
    # tickets were opened on 10-05 and 10-06 only; 10-04 and 10-07 read as 0, durations do not
    params = {"window": "day", "start": "2026-10-04T00:00:00Z", "end": "2026-10-08T00:00:00Z"}
    body = client.get("/v1/indicators/ticket_opened_count", params=params).json()
    assert [(p["window_start"][:10], p["value"], p["count"]) for p in body["points"]] == [
        ("2026-10-04", 0.0, 0),
        ("2026-10-05", 3.0, 3),
        ("2026-10-06", 1.0, 1),
        ("2026-10-07", 0.0, 0),
    ]
    filtered = client.get(
        "/v1/indicators/ticket_opened_count", params={**params, "service": "erp"}
    ).json()
    assert [(p["dimensions"], p["value"]) for p in filtered["points"]] == [
        ({"service": "erp"}, 0.0),
        ({"service": "erp"}, 1.0),
        ({"service": "erp"}, 1.0),
        ({"service": "erp"}, 0.0),
    ]
    durations = client.get("/v1/indicators/incident_resolution_time_seconds", params=params)
    assert durations.json()["points"] == []  # an empty window has no value, not zero


def test_metrics_show_zero_for_an_empty_count_window(client: TestClient, engine: Engine) -> None:
    publish(engine)  # read from an empty database: a count with nothing to count is 0
    text = client.get("/metrics").text
    assert (
        'itsm_ticket_resolved_count{assignment_group="",channel="",customer="",kind="",'
        'period="current",priority="",service="",'
        'window="hour"} 0.0' in text
    )
    assert "itsm_incident_resolution_time_seconds{assignment_group=," not in text


def test_event_with_a_nul_character_is_refused(client: TestClient) -> None:
    # PostgreSQL cannot store U+0000 in text or jsonb: refused up front, never a stuck batch
    ev = ticket_event("NUL1", utc(2026, 10, 5), "new", service="mail\x00")
    resp = client.post("/v1/events", json=ev, headers=INGEST)
    assert resp.status_code == 422
    assert "NUL character" in resp.json()["rejected"][0]["reason"]


@pytest.mark.parametrize(
    ("fragment", "what"),
    [
        (b"NaN", "NaN"),
        (b"Infinity", "Infinity"),
        (b"1e400", "a number beyond a double"),
        (b'"\\ud800"', "a lone surrogate"),
    ],
)
def test_json_that_postgresql_cannot_store_is_refused(
    client: TestClient, fragment: bytes, what: str
) -> None:
    # Python's json module reads these; PostgreSQL's json does not: the event would have
    # failed its whole batch in the collector, again and again (a poison batch).
    body = json.dumps(ticket_event("J1", utc(2026, 10, 5), "new", notes="X")).encode()
    resp = client.post("/v1/events", content=body.replace(b'"X"', fragment), headers=RAW_JSON)
    assert resp.status_code == 422, what
    assert "body is not JSON" in resp.json()["error"]["message"]


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (
            ticket_event("W1", utc(2026, 10, 5), "new", reassignment_count=2**31),
            "data.reassignment_count: Input should be less than or equal to 2147483647",
        ),
        (
            ticket_event("W2", utc(2026, 10, 5), "new", sequence=2**63),
            "data.sequence: Input should be less than or equal to 9223372036854775807",
        ),
        (
            cloud_event(
                "itsm.config.audit.completed",
                utc(2026, 10, 5),
                "W3",
                audit_id="A1",
                cis_checked=2**40,
                discrepancies=0,
            ),
            "data.cis_checked: Input should be less than or equal to 2147483647",
        ),
    ],
)
def test_integers_wider_than_their_column_are_refused(
    client: TestClient, event: dict[str, Any], reason: str
) -> None:
    resp = client.post("/v1/events", json=event, headers=INGEST)
    assert resp.status_code == 422
    assert reason in resp.json()["rejected"][0]["reason"]


@pytest.mark.parametrize("depth", [40, 300])  # 300: deeper than orjson writes
def test_deeply_nested_events_are_refused(client: TestClient, depth: int) -> None:
    body = json.dumps(ticket_event("N1", utc(2026, 10, 5), "new", notes="X")).encode()
    nested = body.replace(b'"X"', b"[" * depth + b"]" * depth)
    resp = client.post("/v1/events", content=nested, headers=RAW_JSON)
    assert resp.status_code == 422
    assert "nested deeper than 32 levels" in resp.json()["rejected"][0]["reason"]


def test_read_body_refuses_oversized_bodies_declared_or_not() -> None:
    import asyncio

    from starlette.requests import Request

    from services.api.ingest import read_body
    from shared.errors import PayloadTooLarge

    def request(body: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[Request, list[int]]:
        reads: list[int] = []

        async def receive() -> dict[str, Any]:
            reads.append(1)
            return {"type": "http.request", "body": body, "more_body": False}

        scope = {"type": "http", "method": "POST", "path": "/v1/events", "headers": headers}
        return Request(scope, receive), reads

    # declared over the limit: refused before anything is read
    req, reads = request(b"x" * 10, [(b"content-length", b"999")])
    with pytest.raises(PayloadTooLarge, match="999 bytes, over the 100-byte limit"):
        asyncio.run(read_body(req, max_body=100))
    assert reads == []
    # no declared length, body over the limit: refused after reading
    req, _ = request(b"x" * 101, [])
    with pytest.raises(PayloadTooLarge, match="101 bytes"):
        asyncio.run(read_body(req, max_body=100))
    # within the limit: the body
    req, _ = request(b"x" * 100, [(b"content-length", b"100")])
    assert asyncio.run(read_body(req, max_body=100)) == b"x" * 100


def test_a_connection_lost_while_a_request_is_answered_is_dropped_not_raised(
    engine: Engine,
) -> None:
    """PostgreSQL going away while a request is answered (the soak crashed it under 16 readers):
    closing the request's connection rolls back, which fails; the dependency drops the
    connection instead of raising into the server, which cut the client's keep-alive connection
    (it saw no answer at all, not the 503 the next request gets)."""
    from types import SimpleNamespace

    from services.api import deps

    request: Any = SimpleNamespace(
        app=SimpleNamespace(state=SimpleNamespace(engine=engine)),
        url=SimpleNamespace(path="/v1/tickets"),
    )
    answering = deps._db(request)
    conn = next(answering)
    pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()  # a transaction is open
    with engine.connect() as other:
        assert other.execute(
            text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid}
        ).scalar()
    with pytest.raises(StopIteration):  # closed without raising
        next(answering)
    with engine.connect() as after:  # the pool hands out a live connection
        assert after.execute(text("SELECT 1")).scalar_one() == 1
