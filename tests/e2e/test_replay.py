"""`itsm-metrics replay` of one file through Kafka and through a running api: the same stored
state, and the same lines reported by number (issue 13)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text as sql
from sqlalchemy.engine import Engine

from services.collector.consumer import Collector
from services.collector.metrics import CollectorMetrics
from shared.db import make_engine
from shared.kafka import ensure_topics
from shared.settings import Settings
from tests.conftest import Postgres, Running, make_settings, wait_until
from tests.e2e.conftest import ROOT, service_env, services
from tests.test_replay import REFUSED_LINES, history, text

pytestmark = pytest.mark.e2e

TOKEN = "replay-ingest"
# What each path must leave: tickets INC1 (created then resolved; line 4 repeats line 1) and
# call C1; no dead letter, since refused lines are never produced.
STATE = """
select (select count(*) from events) as events,
       (select count(*) from dead_letters) as dead_letters,
       (select string_agg(ticket_id || ':' || state, ',' order by ticket_id) from tickets)
         as tickets,
       (select string_agg(call_id, ',') from calls) as calls
"""


def state(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(sql(STATE)).one()._mapping)


def replay(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = service_env(
        ITSM_KAFKA_BOOTSTRAP_SERVERS=settings.require_kafka(),
        ITSM_TOPIC_PREFIX=settings.topic_prefix,
        ITSM_INGEST_TOKEN=TOKEN,
    )
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "replay", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def refused_lines(stderr: str) -> list[int]:
    return [int(line.split(":")[0].removeprefix("line ")) for line in stderr.splitlines()
            if line.startswith("line ")]  # fmt: skip


@pytest.fixture
def history_file(tmp_path: Path) -> Path:
    path = tmp_path / "history.jsonl"
    path.write_bytes(text(history()))
    return path


@pytest.fixture
def kafka_side(postgres: Postgres, kafka_bootstrap: str) -> Iterator[tuple[Settings, Engine]]:
    settings = make_settings(postgres.fresh(), kafka_bootstrap)
    ensure_topics(settings)
    engine = make_engine(settings.require_database_url())
    collector = Collector(settings, engine, CollectorMetrics(CollectorRegistry()))
    running = Running(collector.run, collector.stop_event.set)
    yield settings, engine
    running.stop()
    engine.dispose()


def test_replay_through_kafka_and_through_the_api_stores_the_same_state(
    postgres: Postgres,
    kafka_bootstrap: str,
    kafka_side: tuple[Settings, Engine],
    history_file: Path,
    tmp_path: Path,
) -> None:
    expected = {"events": 3, "dead_letters": 0, "tickets": "INC1:resolved", "calls": "C1"}

    settings, engine = kafka_side
    by_kafka = replay(settings, str(history_file))
    assert by_kafka.returncode == 1, by_kafka.stderr
    assert refused_lines(by_kafka.stderr) == REFUSED_LINES
    wait_until(lambda: state(engine) == expected, what="the Kafka replay stored")

    http_settings = make_settings(postgres.fresh(), kafka_bootstrap)
    ensure_topics(http_settings)
    http_engine = make_engine(http_settings.require_database_url())
    try:
        with services(http_settings, tmp_path / "services.log", TOKEN) as (url, _):
            by_http = replay(http_settings, str(history_file), "--via", "http", "--url", url)
            assert by_http.returncode == 1, by_http.stderr
            assert refused_lines(by_http.stderr) == REFUSED_LINES
            assert "8 lines read, 4 sent, 4 refused" in by_http.stdout
            wait_until(lambda: state(http_engine) == expected, what="the http replay stored")
    finally:
        http_engine.dispose()
    assert by_http.stdout.replace("the api", "Kafka") == by_kafka.stdout
