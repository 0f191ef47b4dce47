"""The Alertmanager webhook adapter (SPEC §3.4, §7.1): the pure mapping, then the route on the
real broker."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from services.api.alertmanager import alert_event, decode, to_events
from services.api.app import create_app
from shared.errors import InvalidRequest, PayloadTooLarge
from shared.events import InvalidEvent, validate_event
from shared.settings import Settings
from tests.helpers import read_topic, store

INGEST = {"Authorization": "Bearer ingest-secret"}
SOURCE = "alertmanager://itsm"


def am_alert(status: str = "firing", **overrides: Any) -> dict[str, Any]:
    alert: dict[str, Any] = {
        "status": status,
        "labels": {
            "alertname": "InstanceDown",
            "instance": "mail-01:9100",
            "ci": "mail-01",
            "service": "email",
            "severity": "critical",
            "job": "node",
        },
        "annotations": {"summary": "mail-01 is down", "runbook_url": "http://wiki/down"},
        "startsAt": "2026-10-05T09:12:00.123456789Z",
        # Alertmanager's guess at expiry on a firing alert, the real end on a resolved one
        "endsAt": "2026-10-05T09:16:00Z" if status == "firing" else "2026-10-05T09:40:30Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up+%3D%3D+0",
        "fingerprint": "c7a4b2f1e9d05a13",
    }
    alert.update(overrides)
    return alert


def payload(*alerts: dict[str, Any], receiver: str = "itsm") -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="InstanceDown"}',
        "truncatedAlerts": 0,
        "status": alerts[0]["status"] if alerts else "firing",
        "receiver": receiver,
        "groupLabels": {"alertname": "InstanceDown"},
        "commonLabels": {"alertname": "InstanceDown"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


# --- mapping ------------------------------------------------------------------------------------
def test_firing_alert_maps_to_a_firing_event_without_an_end() -> None:
    assert alert_event(am_alert(), SOURCE) == {
        "specversion": "1.0",
        "id": "c7a4b2f1e9d05a13:firing:2026-10-05T09:12:00.123456789Z",
        "source": "alertmanager://itsm",
        "type": "itsm.monitor.alert.firing",
        "time": "2026-10-05T09:12:00.123456789Z",
        "subject": "c7a4b2f1e9d05a13@2026-10-05T09:12:00.123456789Z",
        "datacontenttype": "application/json",
        "data": {
            "alert_id": "c7a4b2f1e9d05a13@2026-10-05T09:12:00.123456789Z",
            "ci_id": "mail-01",
            "service": "email",
            "check": "InstanceDown",
            "severity": "critical",
            "started_at": "2026-10-05T09:12:00.123456789Z",
            "sequence": 1,
            "summary": "mail-01 is down",
            "labels": {
                "alertname": "InstanceDown",
                "instance": "mail-01:9100",
                "ci": "mail-01",
                "service": "email",
                "severity": "critical",
                "job": "node",
            },
        },
    }


def test_resolved_alert_ends_at_endsat_and_shares_the_firing_alert_id() -> None:
    firing = alert_event(am_alert("firing"), SOURCE)
    resolved = alert_event(am_alert("resolved"), SOURCE)
    assert resolved["type"] == "itsm.monitor.alert.resolved"
    assert resolved["id"] == "c7a4b2f1e9d05a13:resolved:2026-10-05T09:12:00.123456789Z"
    assert resolved["time"] == "2026-10-05T09:40:30Z"
    assert resolved["data"]["ended_at"] == "2026-10-05T09:40:30Z"
    assert resolved["data"]["started_at"] == "2026-10-05T09:12:00.123456789Z"
    assert resolved["data"]["sequence"] == 2
    assert resolved["data"]["alert_id"] == firing["data"]["alert_id"]
    assert "ended_at" not in firing["data"]


def test_mapped_events_pass_the_contract_keyed_by_alert_id_on_the_monitoring_topic() -> None:
    for status in ("firing", "resolved"):
        ev = validate_event(alert_event(am_alert(status), SOURCE))
        assert ev.entity_kind == "alert"
        assert ev.entity_id == "c7a4b2f1e9d05a13@2026-10-05T09:12:00.123456789Z"
        assert ev.topic_suffix == "monitoring"
        assert ev.source == "alertmanager://itsm"


def test_ci_falls_back_to_instance_and_absent_labels_stay_absent() -> None:
    labels = {"alertname": "DiskFull", "instance": "db-02:9100"}
    data = alert_event(am_alert(labels=labels), SOURCE)["data"]
    assert data["ci_id"] == "db-02:9100"
    assert "service" not in data
    assert data["check"] == "DiskFull"
    # no severity label: an alert that fires is at least a warning
    assert data["severity"] == "warning"
    bare = alert_event(am_alert(labels={}, annotations={}), SOURCE)["data"]
    assert {"ci_id", "service", "check", "summary"}.isdisjoint(bare)
    assert bare["labels"] == {}


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("critical", "critical"),
        ("page", "critical"),
        ("error", "critical"),
        ("HIGH", "critical"),
        ("warning", "warning"),
        ("warn", "warning"),
        ("medium", "warning"),
        ("info", "info"),
        ("low", "info"),
        ("none", "info"),
        (" Info ", "info"),
        ("disaster", "warning"),
        ("", "warning"),
    ],
)
def test_severity_labels_map_onto_the_contract(label: str, expected: str) -> None:
    alert = am_alert(labels={"alertname": "X", "severity": label})
    assert alert_event(alert, SOURCE)["data"]["severity"] == expected


def test_repeated_notification_of_a_firing_alert_is_the_same_event() -> None:
    first = am_alert()
    # 4 h later Alertmanager re-sends the still-firing alert with a later endsAt
    repeat = am_alert(endsAt="2026-10-05T13:16:00Z")
    assert alert_event(repeat, SOURCE) == alert_event(first, SOURCE)


def test_a_second_outage_of_the_same_alert_is_a_new_alert() -> None:
    first = alert_event(am_alert(), SOURCE)
    second = alert_event(am_alert(startsAt="2026-10-06T02:00:00Z"), SOURCE)
    assert second["data"]["alert_id"] == "c7a4b2f1e9d05a13@2026-10-06T02:00:00Z"
    assert second["data"]["alert_id"] != first["data"]["alert_id"]
    assert second["id"] != first["id"]


def test_source_names_the_receiver_and_events_keep_payload_order() -> None:
    events = to_events(
        payload(am_alert(fingerprint="aaa"), am_alert(fingerprint="bbb"), receiver="ops")
    )
    assert [e["source"] for e in events] == ["alertmanager://ops", "alertmanager://ops"]
    assert [e["data"]["alert_id"][:3] for e in events] == ["aaa", "bbb"]


def test_unknown_alert_status_is_refused_by_the_contract() -> None:
    reason = re.escape("type: unknown event type 'itsm.monitor.alert.pending'")
    with pytest.raises(InvalidEvent, match=reason):
        validate_event(alert_event(am_alert("pending"), SOURCE))


def test_alert_without_fingerprint_is_refused_by_the_contract() -> None:
    alert = am_alert()
    del alert["fingerprint"]
    with pytest.raises(InvalidEvent, match=r"^id: Input should be a valid string$"):
        validate_event(alert_event(alert, SOURCE))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body is not JSON"),
        (b"[]", "not an Alertmanager webhook payload"),
        (json.dumps({"receiver": "x"}).encode(), "not an Alertmanager webhook payload"),
        (json.dumps({"receiver": "x", "alerts": ["a"]}).encode(), "a list of objects"),
        (json.dumps({**payload(am_alert()), "version": "3"}).encode(), "version '3' unsupported"),
        (json.dumps(payload()).encode(), "has no alerts"),
    ],
)
def test_what_is_not_an_alertmanager_payload_is_refused(body: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(message)):
        decode(body)


@pytest.mark.parametrize(
    ("alert", "where"),
    [
        ({"labels": "x"}, "alerts.0.labels"),
        ({"labels": {"severity": 1}}, "alerts.0.labels.severity"),
        ({"annotations": ["summary"]}, "alerts.0.annotations"),
        ({"startsAt": 1760000000}, "alerts.0.startsAt"),
        ({"fingerprint": {"a": 1}}, "alerts.0.fingerprint"),
        ({"status": None}, "alerts.0.status"),
    ],
)
def test_an_alert_of_the_wrong_shape_is_refused_naming_the_field(
    alert: dict[str, Any], where: str
) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(f"payload: {where}: ")) as caught:
        decode(json.dumps(payload(am_alert(**alert))).encode())
    assert caught.value.details[0]["loc"] == where.split(".")


def test_more_alerts_than_an_ingest_batch_takes_are_refused_as_too_large() -> None:
    # The same limit as POST /v1/events (shared.kafka.MAX_BATCH), and the same answer: 413.
    with pytest.raises(PayloadTooLarge, match="10001 alerts, over the 10000 limit"):
        decode(json.dumps(payload(*[am_alert()] * 10_001)).encode())
    assert len(decode(json.dumps(payload(*[am_alert()] * 10_000)).encode())["alerts"]) == 10_000


def test_decode_does_not_modify_the_payload() -> None:
    doc = payload(am_alert())
    before = copy.deepcopy(doc)
    assert decode(json.dumps(doc).encode()) == before
    to_events(doc)
    assert doc == before


def test_a_firing_then_resolved_episode_projects_to_one_outage_interval(engine: Engine) -> None:
    firing = alert_event(am_alert("firing"), SOURCE)
    repeat = alert_event(am_alert("firing", endsAt="2026-10-05T13:16:00Z"), SOURCE)
    resolved = alert_event(am_alert("resolved"), SOURCE)
    store(engine, [firing, repeat, resolved])  # the repeat is a duplicate of the first
    with engine.connect() as conn:
        columns = "alert_id, ci_id, severity, outage, state, started_at, ended_at"
        rows = conn.execute(text(f"SELECT {columns} FROM alerts")).all()
    assert [tuple(r) for r in rows] == [
        (
            "c7a4b2f1e9d05a13@2026-10-05T09:12:00.123456789Z",
            "mail-01",
            "critical",
            True,  # critical, and outage left to the contract's default
            "resolved",
            datetime(2026, 10, 5, 9, 12, 0, 123456, tzinfo=UTC),  # nanoseconds truncated
            datetime(2026, 10, 5, 9, 40, 30, tzinfo=UTC),
        )
    ]


# --- route --------------------------------------------------------------------------------------
@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine)) as c:
        yield c


def test_webhook_without_token_is_401(client: TestClient) -> None:
    resp = client.post("/v1/ingest/alertmanager", json=payload(am_alert()))
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "unauthorized"


def test_webhook_alerts_are_produced_to_monitoring_keyed_by_alert_id(
    client: TestClient, settings: Settings
) -> None:
    resolved = am_alert("resolved", fingerprint="0000feedbeef0001", startsAt="2026-10-05T08:00:00Z")
    resp = client.post(
        "/v1/ingest/alertmanager", json=payload(am_alert(), resolved), headers=INGEST
    )
    assert resp.status_code == 202
    assert resp.json() == {
        "accepted": [
            "c7a4b2f1e9d05a13:firing:2026-10-05T09:12:00.123456789Z",
            "0000feedbeef0001:resolved:2026-10-05T08:00:00Z",
        ],
        "rejected": [],
    }
    records = read_topic(settings, "monitoring", 2)
    by_key = {r.key: json.loads(r.value) for r in records}
    assert set(by_key) == {
        b"c7a4b2f1e9d05a13@2026-10-05T09:12:00.123456789Z",
        b"0000feedbeef0001@2026-10-05T08:00:00Z",
    }
    sent = by_key[b"0000feedbeef0001@2026-10-05T08:00:00Z"]
    assert sent["type"] == "itsm.monitor.alert.resolved"
    assert sent["data"]["ended_at"] == "2026-10-05T09:40:30Z"


def test_webhook_with_one_bad_alert_is_207(client: TestClient) -> None:
    resp = client.post(
        "/v1/ingest/alertmanager",
        json=payload(am_alert(), am_alert("pending", fingerprint="bad")),
        headers=INGEST,
    )
    assert resp.status_code == 207
    body = resp.json()
    assert body["accepted"] == ["c7a4b2f1e9d05a13:firing:2026-10-05T09:12:00.123456789Z"]
    assert [(r["index"], r["id"]) for r in body["rejected"]] == [
        (1, "bad:pending:2026-10-05T09:12:00.123456789Z")
    ]
    assert "unknown event type" in body["rejected"][0]["reason"]


def test_webhook_with_no_valid_alert_is_422(client: TestClient) -> None:
    resp = client.post("/v1/ingest/alertmanager", json=payload(am_alert("pending")), headers=INGEST)
    assert resp.status_code == 422
    assert resp.json()["accepted"] == []
    assert len(resp.json()["rejected"]) == 1


@pytest.mark.parametrize(
    "body", [b"garbage", b'{"receiver": "x"}', json.dumps([{"specversion": "1.0"}]).encode()]
)
def test_garbage_is_422_with_the_error_body(client: TestClient, body: bytes) -> None:
    headers = {**INGEST, "Content-Type": "application/json"}
    resp = client.post("/v1/ingest/alertmanager", content=body, headers=headers)
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["code"] == "invalid_request"
    assert set(error) == {"code", "message", "details"}


def test_webhook_over_the_batch_limit_is_413_with_the_error_body(client: TestClient) -> None:
    resp = client.post(
        "/v1/ingest/alertmanager", json=payload(*[am_alert()] * 10_001), headers=INGEST
    )
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "payload_too_large"


def test_webhook_with_labels_not_an_object_is_422_naming_them(client: TestClient) -> None:
    resp = client.post(
        "/v1/ingest/alertmanager", json=payload(am_alert(labels="x")), headers=INGEST
    )
    assert resp.status_code == 422
    assert resp.json()["error"]["details"][0]["loc"] == ["alerts", "0", "labels"]


@pytest.mark.parametrize("media_type", ["text/plain", "application/cloudevents+json", None])
def test_webhook_body_not_sent_as_json_is_415(client: TestClient, media_type: str | None) -> None:
    headers = {**INGEST, **({"Content-Type": media_type} if media_type else {})}
    resp = client.post(
        "/v1/ingest/alertmanager", content=json.dumps(payload(am_alert())), headers=headers
    )
    assert resp.status_code == 415
    assert resp.json()["error"]["details"] == {"accepted": ["application/json"]}
