"""`itsm-metrics up` keeps what the collector had not consumed across a restart on the same data
directory, though the embedded broker keeps its log in memory (services/local/spool.py)."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import psutil
import pytest
from kafka import KafkaProducer
from sqlalchemy import text

from services.local.engines import free_port
from shared.db import make_engine
from tests.conftest import wait_until
from tests.e2e.test_up import ctrl_c, leftovers, ready, start_up
from tests.helpers import ticket_event, utc

pytestmark = pytest.mark.e2e
SOURCE = "test://restart"


def banner(log: Path, name: str) -> str:
    """A line of the banner of the latest start: `kafka`, `postgres`, …"""
    return re.findall(rf"^  {name} +(\S+)", log.read_text(), re.MULTILINE)[-1]


def stored(log: Path) -> int:
    engine = make_engine(banner(log, "postgres").replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            query = text("SELECT count(*) FROM events WHERE source = :s")
            return int(conn.execute(query, {"s": SOURCE}).scalar_one())
    finally:
        engine.dispose()


def test_events_not_consumed_when_up_stops_are_consumed_after_the_restart(
    tmp_path: Path,
) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "up.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_up(data_dir, port, log, "--no-simulate")
    try:
        wait_until(lambda: ready(proc, url, log), timeout=90, what="/readyz of `up`")
        wait_until(lambda: "itsm-metrics is up" in log.read_text(), timeout=30, what="the banner")
        # no collector consumes: it is frozen while 40 events are produced, then dies
        [collector] = [
            p
            for p in psutil.Process(proc.pid).children(recursive=True)
            if p.cmdline()[-1:] == ["collector"]
        ]
        collector.send_signal(signal.SIGSTOP)
        producer = KafkaProducer(bootstrap_servers=banner(log, "kafka"), acks="all")
        for i in range(20):
            tid = f"KEPT{i}"
            for ev in (
                ticket_event(tid, utc(2026, 10, 5, 9), "new", source=SOURCE),
                ticket_event(tid, utc(2026, 10, 5, 10), "resolved", source=SOURCE),
            ):
                producer.send("itsm.tickets", key=tid.encode(), value=json.dumps(ev).encode())
        producer.flush()
        producer.close()
        os.kill(collector.pid, signal.SIGKILL)
        # `up` sees its collector gone and stops the stack, keeping the broker's unconsumed log
        assert proc.wait(60) == 1, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            ctrl_c(proc, log)
    assert "40 events not consumed kept for the next start" in log.read_text()

    proc = start_up(data_dir, port, log, "--no-simulate")
    try:
        wait_until(lambda: ready(proc, url, log), timeout=60, what="/readyz of the second `up`")
        wait_until(
            lambda: log.read_text().count("itsm-metrics is up") == 2, timeout=30, what="banner"
        )
        assert "40 events not consumed at the last stop produced again" in log.read_text()
        wait_until(lambda: stored(log) == 40, timeout=60, what="the kept events stored")
    finally:
        family = ctrl_c(proc, log)
    assert leftovers(family, data_dir) == []
    # all consumed now: nothing kept, so the next start produces nothing again
    kept = re.findall(r"^(\d+) events not consumed kept", log.read_text(), re.MULTILINE)
    assert kept == ["40", "0"]
    assert not (data_dir / "broker-unconsumed.jsonl").exists()
