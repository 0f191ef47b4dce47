"""Two collector processes in one consumer group split the partitions and together store every
event exactly once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from services.local.engines import free_port
from shared.settings import Settings
from tests.conftest import wait_until
from tests.e2e.conftest import spawn, stop
from tests.helpers import (
    collector_env,
    collector_events,
    counts,
    metric_samples,
    produce_tickets,
)

pytestmark = pytest.mark.e2e


def partitions(port: int) -> set[str]:
    return {
        labels["partition"]
        for labels, _ in metric_samples(port, "itsm_collector_consumer_lag")
        if re.search(r"tickets$", labels["topic"])
    }


def test_two_collectors_share_the_partitions_and_store_each_event_once(
    collector_settings: Settings, collector_engine: Engine, tmp_path: Path
) -> None:
    ports = [free_port(), free_port()]
    procs = [
        spawn(
            ["collector"],
            collector_env(collector_settings, ITSM_COLLECTOR_METRICS_PORT=str(port)),
            tmp_path / f"collector{i}.log",
        )
        for i, port in enumerate(ports)
    ]
    try:
        # both joined and own a share of the 3 partitions of the tickets topic
        wait_until(
            lambda: (
                all(partitions(p) for p in ports)
                and len(partitions(ports[0]) | partitions(ports[1])) == 3
            ),
            timeout=60,
            what="both collectors to own partitions",
        )
        assert not partitions(ports[0]) & partitions(ports[1])
        sent = produce_tickets(collector_settings, 1500)  # 3000 events over every partition
        wait_until(
            lambda: counts(collector_engine)["events"] == sent,
            timeout=60,
            what="every event stored",
        )
        wait_until(
            lambda: collector_events(ports[0]) + collector_events(ports[1]) == sent,
            timeout=10,
            what="the collectors' counters to add up",
        )
        assert collector_events(ports[0]) > 0 and collector_events(ports[1]) > 0
        assert counts(collector_engine) == {
            "events": 3000,
            "tickets": 1500,
            "projected": 3000,
            "resolved": 1500,
        }
    finally:
        codes = [stop(p) for p in procs]
    assert codes == [0, 0]
