"""`kill -9` of the aggregator in the middle of a pass, and of the api in the middle of a batch
POST, while events flow (issue 14, SPEC §4): after a restart, nothing is lost or doubled."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from shared.db import make_engine
from shared.kafka import ensure_topics
from tests.conftest import Postgres, make_settings, wait_until
from tests.faults.conftest import TOKEN, Stack, running, wait_serving, wait_stored
from tests.faults.invariants import assert_nothing_lost_nor_doubled
from tests.faults.load import HttpLoad, KafkaLoad, history_start, incidents, keys

pytestmark = pytest.mark.e2e


def _writing_points(engine: Engine) -> bool:
    """Whether the aggregator is inside a transaction that has written indicator points (it
    holds the row-exclusive lock a write takes until the transaction ends): in the middle of a
    pass, its windows claimed and their points half-written."""
    with engine.connect() as conn:
        return bool(
            conn.execute(
                text(
                    """
                    SELECT count(*) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid
                    WHERE a.application_name = 'itsm-aggregator'
                      AND l.relation IN ('indicator_values'::regclass,
                                         'indicator_pending'::regclass)
                      AND l.mode = 'RowExclusiveLock'
                    """
                )
            ).scalar_one()
        )


def test_aggregator_killed_in_the_middle_of_a_pass_then_restarted_loses_and_doubles_nothing(
    postgres: Postgres, kafka_bootstrap: str, tmp_path: Path
) -> None:
    n = 800  # incidents: 2,400 events
    settings = make_settings(postgres.fresh(), kafka_bootstrap, collector_batch_size=200)
    ensure_topics(settings)
    base = history_start(n)
    events = incidents("kafka", n, base)
    engine = make_engine(settings.require_database_url())
    with running(settings, tmp_path) as stack:
        load = KafkaLoad(settings, events, size=100, pause=0.25, deadline=120)
        load.start()
        for _ in range(2):
            wait_until(
                lambda: _writing_points(engine),
                timeout=60,
                interval=0.01,
                what="the aggregator writing",
                diagnostics=stack.tail,
            )
            stack.kill("aggregator")
            stack.restart("aggregator")
        load.finish(timeout=120)
        wait_stored(stack, engine, len(events), timeout=60)
        wait_serving(stack, base, opened=n)
    assert_nothing_lost_nor_doubled(engine, settings, keys(events), since=base)
    engine.dispose()


def test_api_killed_in_the_middle_of_batch_posts_the_client_retrying_counts_each_event_once(
    postgres: Postgres, kafka_bootstrap: str, tmp_path: Path
) -> None:
    n = 800  # incidents: 2,400 events, posted in batches of 200
    settings = make_settings(postgres.fresh(), kafka_bootstrap, collector_batch_size=200)
    ensure_topics(settings)
    base = history_start(n)
    events = incidents("http", n, base)
    engine = make_engine(settings.require_database_url())
    rng = random.Random(14)
    # The worst moment first: the 2nd batch is all on the broker, and the api dies before it
    # answers (shared/faults.py): the client's retry produces each of its events a second time.
    fault = {"api": {"ITSM_FAULT": "after_produce:2"}}
    with running(settings, tmp_path, env=fault) as stack:
        http = HttpLoad(stack.url, TOKEN, events, size=200, pause=0.1, deadline=120)
        http.start()
        wait_until(
            lambda: stack.procs["api"].poll() == 137, timeout=30, what="the api dying after a POST"
        )
        stack.restart("api")
        # Then at any moment of a request: some of its events on the broker, some not (tried
        # again if the kill came as the answer did).
        cut = any(_kill_api_mid_request(stack, http, rng) for _ in range(4))
        http.finish(timeout=120)
        wait_stored(stack, engine, len(events), timeout=60)
    # two requests were never answered, and sent again (duplicates on the broker, not stored)
    assert cut, "no kill came in the middle of a request"
    assert http.sender.dropped == 2, (http.sender.dropped, http.sender.refused)
    assert set(http.sender.statuses) == {202} and not http.sender.answers, (
        http.sender.statuses,
        http.sender.answers,
    )
    assert http.sender.statuses[202] == http.chunks
    assert_nothing_lost_nor_doubled(engine, settings, keys(events), since=base)
    engine.dispose()


def _kill_api_mid_request(stack: Stack, http: HttpLoad, rng: random.Random) -> bool:
    """SIGKILL the api a random 2 to 12 ms into a request (reading, validating, producing,
    waiting for acknowledgements), then start it again. Whether a request was cut: it may have
    been answered in the meantime, or the client may have sent everything already."""
    sender = http.sender
    dropped, refused = sender.dropped, sender.refused
    delay = rng.uniform(0.002, 0.012)

    def in_flight() -> bool:
        since = sender.posting_since
        return (since is not None and time.monotonic() - since >= delay) or not http.is_alive()

    wait_until(in_flight, timeout=30, interval=0.001, what="a request in flight")
    if not http.is_alive():
        return False
    stack.kill("api")
    wait_until(
        lambda: sender.dropped > dropped or sender.refused > refused or not http.is_alive(),
        timeout=10,
        what="the client to miss the api",
    )
    stack.restart("api")
    return sender.dropped > dropped
