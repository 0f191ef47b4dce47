"""Stop signals at any moment end a service cleanly and quickly (issue 14): nothing is done inside
the signal handler, so a signal that interrupts a lock holder (an `Event.wait` in the broker
client's selector, a logging call, an earlier signal's handling) cannot hang the process."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from shared.settings import Settings
from tests.conftest import wait_until
from tests.e2e.conftest import ROOT, service_env, spawn
from tests.helpers import collector_env, counts, produce_tickets

pytestmark = pytest.mark.e2e

# The main thread waits on Events and logs without pause, as kafka-python's selector and a
# busy service do: the moments a handler that takes a lock deadlocks in.
BUSY = """
import logging, sys, threading
from shared.signals import ignore_stop_signals, stop_on_signals
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
stop = stop_on_signals()
ev = threading.Event()
print("ready", flush=True)
n = 0
while not stop.is_set():
    ev.wait(0.00001)
    n += 1
    if n % 50 == 0:
        logging.getLogger("busy").info("tick %d", n)
ignore_stop_signals()
print("stopped", flush=True)
"""


def _burst(pid: int, rng: random.Random, n: int) -> None:
    for _ in range(n):
        os.kill(pid, rng.choice((signal.SIGTERM, signal.SIGINT)))
        time.sleep(rng.uniform(0, 0.002))


def test_a_burst_of_signals_into_a_busy_main_thread_stops_it_at_once() -> None:
    rng = random.Random(14)
    for _ in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-c", BUSY],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0, 0.2))
        _burst(proc.pid, rng, 40)
        try:
            assert proc.wait(5) == 0
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("the process hung after a burst of stop signals")
        assert proc.stdout.read().strip() == "stopped"


def _stopped_within(proc: subprocess.Popen[bytes], seconds: float, log: Path) -> int:
    try:
        return proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"still running {seconds:.0f} s after SIGTERM: {log.read_text()[-1500:]}")


def test_collector_stopped_by_signals_under_load_exits_cleanly_with_its_batches_committed(
    collector_settings: Settings, collector_engine: Engine, tmp_path: Path
) -> None:
    sent = produce_tickets(collector_settings, 1500)  # 3000 events
    log = tmp_path / "collector.log"
    rng = random.Random(41)
    for _ in range(3):
        before = counts(collector_engine)["events"]
        proc = spawn(["collector"], collector_env(collector_settings), log)
        # under load: somewhere in a poll, a batch or a commit
        wait_until(
            lambda b=before: counts(collector_engine)["events"] > b + rng.randint(20, 400),
            timeout=60,
            what="the collector storing events",
        )
        _burst(proc.pid, rng, 5)
        assert _stopped_within(proc, 15, log) == 0, log.read_text()[-2000:]
    final = spawn(["collector"], collector_env(collector_settings), log)
    try:
        wait_until(
            lambda: counts(collector_engine)["events"] == sent,
            timeout=90,
            what=f"every event stored once (log: {log})",
        )
        assert counts(collector_engine) == {
            "events": 3000,
            "tickets": 1500,
            "projected": 3000,
            "resolved": 1500,
        }
    finally:
        os.kill(final.pid, signal.SIGTERM)
        assert _stopped_within(final, 15, log) == 0


def test_aggregator_stopped_by_signals_exits_cleanly(settings: Settings, tmp_path: Path) -> None:
    log = tmp_path / "aggregator.log"
    env = service_env(
        ITSM_DATABASE_URL=settings.require_database_url(),
        ITSM_KAFKA_BOOTSTRAP_SERVERS=settings.require_kafka(),
        ITSM_AGGREGATOR_INTERVAL_SECONDS="0.1",
    )
    rng = random.Random(42)
    for _ in range(2):
        running = log.read_text().count("aggregator running") if log.exists() else 0
        proc = spawn(["aggregator"], env, log)
        wait_until(
            lambda r=running: log.read_text().count("aggregator running") > r,
            timeout=60,
            what="the aggregator running",
        )
        time.sleep(rng.uniform(0, 0.5))
        _burst(proc.pid, rng, 5)
        assert _stopped_within(proc, 15, log) == 0, log.read_text()[-2000:]
