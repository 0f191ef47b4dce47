"""Kill the collector at the worst moments; after a restart every event is there exactly once
(SPEC §4). Each collector is its own process, killed for real."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from shared.settings import Settings
from tests.conftest import wait_until
from tests.e2e.conftest import spawn, stop
from tests.helpers import collector_env, counts, produce_tickets

pytestmark = pytest.mark.e2e


def test_crash_between_database_commit_and_offset_commit_loses_and_doubles_nothing(
    collector_settings: Settings, collector_engine: Engine, tmp_path: Path
) -> None:
    sent = produce_tickets(collector_settings, 300)  # 600 events, batches of at most 50
    log = tmp_path / "collector.log"
    first = spawn(
        ["collector"], collector_env(collector_settings, ITSM_FAULT="after_db_commit:3"), log
    )
    # dies right after its 3rd batch is in the database and before its offsets are committed
    assert first.wait(60) == 137, log.read_text()[-2000:]
    stored_at_crash = counts(collector_engine)["events"]
    assert 0 < stored_at_crash < sent
    second = spawn(["collector"], collector_env(collector_settings), log)
    try:
        wait_until(
            lambda: counts(collector_engine)["events"] == sent,
            timeout=60,
            what="every event stored after the restart",
        )
        # the uncommitted batches were delivered again and ignored as duplicates
        assert counts(collector_engine) == {
            "events": 600,
            "tickets": 300,
            "projected": 600,
            "resolved": 300,
        }
    finally:
        assert stop(second) == 0


def test_kill_9_at_random_moments_then_restart_counts_every_event_once(
    collector_settings: Settings, collector_engine: Engine, tmp_path: Path
) -> None:
    sent = produce_tickets(collector_settings, 1000)  # 2000 events
    log = tmp_path / "collector.log"
    rng = random.Random(7)
    for _ in range(3):
        proc = spawn(["collector"], collector_env(collector_settings), log)
        before = counts(collector_engine)["events"]
        # let it make progress, then kill it mid-flight
        wait_until(
            lambda b=before: counts(collector_engine)["events"] > b + rng.randint(50, 300),
            timeout=60,
            what="progress before the kill",
        )
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if counts(collector_engine)["events"] == sent:
            break
    consuming = log.read_text().count("collector consuming")
    final = spawn(["collector"], collector_env(collector_settings), log)
    try:
        # when the killed ones stored everything, the last one must still be up before it is
        # stopped: a SIGTERM during its interpreter's start-up ends it by the signal (-15)
        wait_until(
            lambda: log.read_text().count("collector consuming") > consuming,
            timeout=60,
            what="the last collector consuming",
        )
        wait_until(
            lambda: counts(collector_engine)["events"] == sent,
            timeout=90,
            what="every event stored",
        )
        assert counts(collector_engine) == {
            "events": 2000,
            "tickets": 1000,
            "projected": 2000,
            "resolved": 1000,
        }
    finally:
        assert stop(final) == 0
