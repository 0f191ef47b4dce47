"""The slice end to end, each service its own process: events in over HTTP and Kafka, indicator
values out over HTTP and /metrics, checked against hand-computed numbers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from shared.kafka import ensure_topics
from shared.settings import Settings
from tests.conftest import Postgres, make_settings, wait_until
from tests.e2e.conftest import services
from tests.helpers import ticket_event

pytestmark = pytest.mark.e2e


@dataclass
class Stack:
    settings: Settings
    url: str
    procs: dict[str, Any]
    log: Path

    def get(self, path: str, **params: Any) -> Any:
        return httpx.get(f"{self.url}{path}", params=params, timeout=10)


@pytest.fixture(scope="module")
def stack(
    postgres: Postgres, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    settings = make_settings(postgres.fresh(), kafka_bootstrap)
    ensure_topics(settings)
    log = tmp_path_factory.mktemp("e2e") / "services.log"
    with services(settings, log, "e2e-ingest") as (url, procs):
        yield Stack(settings, url, procs, log)


def test_events_over_http_and_kafka_become_indicator_values(stack: Stack) -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)

    def at(seconds: int) -> datetime:
        return today + timedelta(seconds=seconds)

    e = ticket_event
    over_http = [
        e("E1", at(10), "new", service="email", priority=2),
        e("E1", at(610), "resolved"),  # 600 s
        e("E2", at(20), "new", service="email", priority=3),
        e("E2", at(1220), "resolved"),  # 1200 s
    ]
    over_kafka = [
        e("E3", at(30), "new", service="erp", priority=2),
        e("E3", at(3030), "resolved"),  # 3000 s
        e("E4", at(40), "new", service="erp", priority=4, kind="service_request"),
    ]
    resp = httpx.post(
        f"{stack.url}/v1/events",
        json=over_http,
        timeout=30,
        headers={"Authorization": "Bearer e2e-ingest"},
    )
    assert resp.status_code == 202, resp.text
    producer = KafkaProducer(bootstrap_servers=stack.settings.kafka_bootstrap_servers, acks="all")
    for ev in over_kafka:
        producer.send(
            stack.settings.topic("tickets"),
            key=ev["data"]["ticket_id"].encode(),
            value=json.dumps(ev).encode(),
        )
    producer.flush()
    producer.close()
    # a duplicate over HTTP changes nothing
    assert (
        httpx.post(
            f"{stack.url}/v1/events",
            json=over_http[0],
            timeout=30,
            headers={"Authorization": "Bearer e2e-ingest"},
        ).status_code
        == 202
    )

    def day_value(indicator: str, **params: Any) -> Any:
        body = stack.get(
            f"/v1/indicators/{indicator}", window="day", start=today.isoformat(), **params
        ).json()
        return {json.dumps(p["dimensions"], sort_keys=True): p for p in body["points"]}

    # opened today: E1..E4 = 4
    wait_until(
        lambda: day_value("ticket_opened_count").get("{}", {}).get("value") == 4,
        timeout=60,
        what="4 tickets opened today",
    )
    wait_until(
        lambda: day_value("ticket_resolved_count").get("{}", {}).get("value") == 3,
        timeout=30,
        what="3 tickets resolved today",
    )
    # incidents resolved today: 600, 1200, 3000 → mean 1600, p50 1200,
    # p90 = 1200 + 0.8 × (3000 − 1200) = 2640; a day's percentiles follow its count and mean
    # within the slower cadence
    total = wait_until(
        lambda: (
            day_value("incident_resolution_time_seconds")["{}"]["p50"] is not None
            and day_value("incident_resolution_time_seconds")["{}"]
        ),
        timeout=30,
        what="today's resolution time percentiles",
    )
    assert (total["value"], total["count"], total["p50"], total["p90"]) == (1600, 3, 1200, 2640)
    by_service = day_value("incident_resolution_time_seconds", group_by="service")
    assert by_service['{"service": "email"}']["value"] == 900  # (600 + 1200) / 2
    assert by_service['{"service": "erp"}']["value"] == 3000
    by_kind = day_value("ticket_opened_count", service="erp", group_by="kind")
    assert {k: p["value"] for k, p in by_kind.items()} == {
        '{"kind": "incident", "service": "erp"}': 1,
        '{"kind": "service_request", "service": "erp"}': 1,
    }
    month = stack.get("/v1/indicators/ticket_opened_count", window="month").json()["points"]
    assert [p["value"] for p in month if p["dimensions"] == {}][-1] == 4

    # /metrics serves the aggregator's snapshot, rendered every second here: the one rendered
    # after the percentiles above were stored
    median = (
        'itsm_incident_resolution_time_seconds{assignment_group="",customer="",'
        'period="current",priority="",quantile="0.5",'
        'service="",window="day"} 1200.0'
    )

    def scraped() -> str | None:
        text: str = stack.get("/metrics").text
        return text if median in text else None

    metrics = wait_until(scraped, timeout=15, what="a /metrics snapshot with today's percentiles")
    assert "itsm_exposition_stale 0.0" in metrics
    assert (
        'itsm_ticket_opened_count{assignment_group="",channel="",customer="",kind="",'
        'period="current",priority="",service="",window="day"} 4.0' in metrics
    )
    assert (
        'itsm_ticket_resolved_count{assignment_group="",channel="",customer="",kind="",'
        'period="current",priority="2",service="erp",'
        'window="month"} 1.0' in metrics
    )
