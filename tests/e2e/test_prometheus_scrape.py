"""A real Prometheus server scrapes the api's /metrics and sees the indicator gauges."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from services.local.engines import free_port
from shared.settings import Settings
from tests.conftest import wait_until
from tests.e2e.conftest import prometheus, service_env, spawn, stop
from tests.helpers import aggregate, publish, real_clock, store, ticket_event

pytestmark = pytest.mark.e2e

PROMETHEUS = shutil.which("prometheus")


@pytest.mark.skipif(
    PROMETHEUS is None,
    reason="LOUD SKIP: the `prometheus` server is not installed "
    "(make test installs Debian's prometheus package; it failed or apt is missing)",
)
def test_prometheus_scrapes_indicator_gauges(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    e = ticket_event
    # three tickets opened today, two of them email → email: 2, total: 3
    store(
        engine,
        [
            e("P1", today + timedelta(seconds=5), "new", service="email"),
            e("P2", today + timedelta(seconds=6), "new", service="email"),
            e("P3", today + timedelta(seconds=7), "new", service="erp"),
        ],
    )
    aggregate(engine, clock=real_clock)
    publish(engine, settings, real_clock)  # the exposition job: the snapshot the api serves

    api_port = free_port()
    api = spawn(
        ["api"],
        service_env(
            ITSM_DATABASE_URL=settings.require_database_url(),
            ITSM_KAFKA_BOOTSTRAP_SERVERS=settings.require_kafka(),
            ITSM_API_PORT=str(api_port),
        ),
        tmp_path / "api.log",
    )

    def query(q: str) -> list[dict[str, object]]:
        try:
            body = httpx.get(f"{base}/api/v1/query", params={"query": q}, timeout=5).json()
        except (httpx.HTTPError, ValueError):  # not up yet, or plain text while starting
            return []
        return list(body.get("data", {}).get("result", []))

    try:
        with prometheus(tmp_path, f"127.0.0.1:{api_port}") as base:
            series = wait_until(
                lambda: query(
                    'itsm_ticket_opened_count{window="day",period="current",assignment_group="",channel="",'
                    'service="email",customer="",priority="",kind=""}'
                ),
                timeout=60,
                what="Prometheus to scrape the api",
            )
            assert float(series[0]["value"][1]) == 2  # type: ignore[index]
            [total] = query(
                'itsm_ticket_opened_count{window="day",period="current",assignment_group="",channel="",'
                'customer="",service="",priority="",kind=""}'
            )
            assert float(total["value"][1]) == 3  # type: ignore[index]
            [up] = query('up{job="itsm-api"}')
            assert float(up["value"][1]) == 1  # type: ignore[index]
            [stale] = query('itsm_exposition_stale{job="itsm-api"}')
            assert float(stale["value"][1]) == 0  # type: ignore[index]
    finally:
        assert stop(api) == 0, (tmp_path / "api.log").read_text()[-2000:]
