"""`itsm-metrics up` (what `make run` calls): ready, shows simulated data, Ctrl-C leaves no
process behind, and a second run starts fast with the earlier data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from services.local.engines import free_port
from tests.conftest import wait_until
from tests.e2e.conftest import ROOT, service_env

pytestmark = pytest.mark.e2e
CATALOG = ROOT / "deploy" / "catalog.example.yaml"


def start_up(data_dir: Path, port: int, log: Path, *args: str) -> subprocess.Popen[bytes]:
    env = service_env(
        ITSM_DATA_DIR=str(data_dir),
        ITSM_API_PORT=str(port),
        ITSM_AGGREGATOR_INTERVAL_SECONDS="0.5",
        ITSM_EXPOSITION_INTERVAL_SECONDS="1",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", "up", *args],
        env=env,
        cwd=ROOT,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, like a terminal session
    )


def total_opened(url: str) -> float:
    body = httpx.get(
        f"{url}/v1/indicators/ticket_opened_count", params={"window": "month"}, timeout=5
    ).json()
    return sum(p["value"] for p in body["points"] if p["dimensions"] == {})


def ready(proc: subprocess.Popen[bytes], url: str, log: Path) -> bool:
    assert proc.poll() is None, f"up exited early:\n{log.read_text()[-3000:]}"
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def ctrl_c(proc: subprocess.Popen[bytes], log: Path) -> list[psutil.Process]:
    """Send SIGINT to the whole process group, as a terminal does; return what was running."""
    family = psutil.Process(proc.pid).children(recursive=True)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(60) == 0, log.read_text()[-3000:]
    return family


def leftovers(family: list[psutil.Process], data_dir: Path) -> list[Any]:
    alive = [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for p in psutil.process_iter(["cmdline"]):
        if str(data_dir) in " ".join(p.info["cmdline"] or []):
            alive.append(p)
    return alive


def test_up_runs_the_stack_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "up.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # no history here: tests/e2e/test_simulated_week.py runs one through `up`
    proc = start_up(
        data_dir, port, log, "--rate", "20", "--history", "0", "--catalog", str(CATALOG)
    )
    try:
        wait_until(lambda: ready(proc, url, log), timeout=90, what="/readyz of `up`")
        wait_until(lambda: "itsm-metrics is up" in log.read_text(), timeout=30, what="the banner")
        assert "ingest token" in log.read_text()
        wait_until(lambda: total_opened(url) > 0, timeout=60, what="simulated tickets counted")
        # the banner's customer review of the simulated company, as a printable page
        [review] = [ln.split()[-1] for ln in log.read_text().splitlines() if "  review  " in ln]
        page = httpx.get(review, timeout=30)
        assert page.status_code == 200, page.text[:500]
        assert "<h1>Customer review: acme " in page.text
        assert "<h2>Contract and SLA</h2>" in page.text
        metrics = httpx.get(f"{url}/metrics", timeout=5).text
        assert (
            'itsm_ticket_opened_count{assignment_group="",channel="",customer="",kind="",'
            'period="current",priority="",service=""' in metrics
        )
        before = total_opened(url)
    finally:
        family = ctrl_c(proc, log)
    assert len(family) >= 5  # collector, aggregator, api, simulator, broker (+ postgres, apart)
    assert leftovers(family, data_dir) == []
    assert "itsm-metrics stopped" in log.read_text()

    # a second run keeps the data and is fast (no initdb, no install), and simulates no history
    # over the data it has
    started = time.monotonic()
    proc = start_up(data_dir, port, log, "--rate", "1", "--history", "1")
    try:
        wait_until(lambda: ready(proc, url, log), timeout=60, what="/readyz of the second `up`")
        restart_seconds = time.monotonic() - started
        assert total_opened(url) >= before
        skipped = "history: none simulated, the database has events already"
        wait_until(lambda: skipped in log.read_text(), timeout=30, what="the history skipped")
        assert "history: generating" not in log.read_text()
    finally:
        family = ctrl_c(proc, log)
    assert leftovers(family, data_dir) == []
    assert restart_seconds < 30, f"second start took {restart_seconds:.1f} s"
