"""The broker hangs while events flow over Kafka and over `POST /v1/events` and the aggregator
computes, then comes back (issue 14, SPEC §4 and §7.1). The broker is frozen (SIGSTOP), not
restarted: the embedded Tansu keeps its log in memory only."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.db import make_engine
from shared.kafka import ensure_topics
from tests.conftest import Postgres, make_settings, wait_until
from tests.faults.conftest import TOKEN, FreezableBroker, running, wait_serving, wait_stored, waited
from tests.faults.invariants import assert_nothing_lost_nor_doubled
from tests.faults.load import HttpLoad, KafkaLoad, history_start, incidents, keys
from tests.helpers import counts

pytestmark = pytest.mark.e2e

# Longer than the api waits for the broker's acknowledgements (ITSM_INGEST_ACK_TIMEOUT_SECONDS,
# 30 s by default, 8 s here): the requests in flight when the broker hung are answered 503, the
# client waits as Retry-After says and posts them again.
ACK_TIMEOUT_SECONDS = 8
FREEZE_SECONDS = ACK_TIMEOUT_SECONDS + 4
N = 400  # incidents per path: 1,200 events over Kafka, 1,200 over HTTP


def test_broker_hung_past_the_ingest_timeout_then_back_counts_every_event_once(
    postgres: Postgres, own_broker: FreezableBroker, tmp_path: Path
) -> None:
    settings = make_settings(postgres.fresh(), own_broker.bootstrap, collector_batch_size=200)
    ensure_topics(settings)
    base = history_start(N)
    over_kafka, over_http = incidents("kafka", N, base), incidents("http", N, base)
    sent = keys(over_kafka) | keys(over_http)
    engine = make_engine(settings.require_database_url())
    api_env = {"ITSM_INGEST_ACK_TIMEOUT_SECONDS": str(ACK_TIMEOUT_SECONDS)}
    with running(settings, tmp_path, env={"api": api_env}) as stack:
        kafka = KafkaLoad(settings, over_kafka, size=40, pause=0.2, deadline=150)
        http = HttpLoad(stack.url, TOKEN, over_http, size=40, pause=0.2, deadline=150)
        kafka.start()
        http.start()
        # the broker hangs with events on their way both ways and batches being stored
        wait_until(
            lambda: kafka.progress() > 0.3 and http.progress() > 0.3 and counts(engine)["events"],
            timeout=60,
            what="events flowing both ways",
        )
        own_broker.freeze()
        waited(FREEZE_SECONDS, check=stack.assert_running)
        own_broker.thaw()
        kafka.finish(timeout=120)
        http.finish(timeout=120)
        wait_stored(stack, engine, len(sent), timeout=90)
        # the aggregator computed them, and the api serves it: 2 × 400 incidents opened
        wait_serving(stack, base, opened=2 * N)
        stack.assert_running()  # none died or was restarted: each one recovered by itself
    # While the broker hung, a POST was answered 503 with Retry-After, never 202 nor 500; the
    # client posted the same batch again until it was accepted.
    assert set(http.sender.statuses) == {202, 503} and not http.sender.answers, (
        http.sender.statuses,
        http.sender.answers,
    )
    assert http.sender.without_retry_after == 0
    assert http.sender.statuses[202] == http.chunks
    assert_nothing_lost_nor_doubled(engine, settings, sent, since=base)
    engine.dispose()
