"""PostgreSQL goes down while events flow over Kafka and over `POST /v1/events` and the aggregator
computes, then comes back (issue 14, SPEC §4 and §7.5): every service recovers by itself."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from shared.db import make_engine
from shared.kafka import ensure_topics
from tests.conftest import make_settings, wait_until
from tests.faults.conftest import (
    TOKEN,
    RestartablePostgres,
    running,
    wait_serving,
    wait_stored,
    waited,
)
from tests.faults.invariants import assert_nothing_lost_nor_doubled
from tests.faults.load import HttpLoad, KafkaLoad, history_start, incidents, keys
from tests.helpers import counts

pytestmark = pytest.mark.e2e

OUTAGE_SECONDS = 15
N = 400  # incidents per path: 1,200 events over Kafka, 1,200 over HTTP


def test_database_down_then_back_every_service_recovers_by_itself_and_counts_each_event_once(
    own_postgres: RestartablePostgres, kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = make_settings(
        own_postgres.create_database(), kafka_bootstrap, collector_batch_size=100
    )
    ensure_topics(settings)
    base = history_start(N)
    over_kafka, over_http = incidents("kafka", N, base), incidents("http", N, base)
    sent = keys(over_kafka) | keys(over_http)
    engine = make_engine(settings.require_database_url())
    with running(settings, tmp_path) as stack:
        kafka = KafkaLoad(settings, over_kafka, size=40, pause=0.25, deadline=150)
        http = HttpLoad(stack.url, TOKEN, over_http, size=40, pause=0.25, deadline=150)
        kafka.start()
        http.start()
        wait_until(
            lambda: kafka.progress() > 0.2 and http.progress() > 0.2 and counts(engine)["events"],
            timeout=60,
            what="events flowing both ways and being stored",
        )
        own_postgres.crash()
        down = time.monotonic()
        # not ready while the database is away, and a read is a 503 to retry, never a 500
        wait_until(lambda: _readiness(stack.url) == 503, timeout=10, what="/readyz to say 503")
        read = httpx.get(
            f"{stack.url}/v1/indicators/ticket_opened_count",
            params={"window": "hour", "start": base.isoformat()},
            timeout=10,
        )
        assert read.status_code == 503, read.text
        assert read.headers["retry-after"]
        waited(OUTAGE_SECONDS - (time.monotonic() - down), check=stack.assert_running)
        own_postgres.start()
        wait_until(stack.ready, timeout=30, what="/readyz to say 200 again")
        kafka.finish(timeout=120)
        http.finish(timeout=120)
        wait_stored(stack, engine, len(sent), timeout=90)
        # the aggregator computed them, and the api serves it: 2 × 400 incidents opened
        wait_serving(stack, base, opened=2 * N)
        stack.assert_running()  # none died or was restarted: each one recovered by itself
    # The api produces to the broker, which stayed up: ingest never needed the database.
    assert set(http.sender.statuses) == {202} and not http.sender.answers, (
        http.sender.statuses,
        http.sender.answers,
    )
    assert_nothing_lost_nor_doubled(engine, settings, sent, since=base)
    engine.dispose()


def _readiness(url: str) -> int | None:
    try:
        return httpx.get(f"{url}/readyz", timeout=5).status_code
    except httpx.HTTPError:
        return None
