"""Reads at scale: 16 concurrent clients asking the api for a month of daily points grouped by
service, then `/metrics` scraped as Prometheus would. Over a database the caller prepared (a
computed month); the api runs as its own process (`itsm-metrics api`). `/metrics` serves the
snapshot an aggregator stored (SPEC §8): without one, a scrape has the api's own metrics only
and counts as stale."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import json
import multiprocessing
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlencode, urlsplit

import httpx

from benchmarks import procs
from benchmarks.realistic import month_end
from services.local.engines import free_port

# Indicators with a `service` dimension, of every family.
INDICATORS = (
    "ticket_opened_count",
    "ticket_resolved_count",
    "incident_backlog_count",
    "incident_response_time_seconds",
    "incident_resolution_time_seconds",
    "incident_sla_resolution_met_ratio",
    "incident_reassignment_ratio",
    "change_count",
    "csat_score",
    "service_availability_ratio",
)


def run_reads(
    db_url: str,
    kafka: str,
    month_start: datetime,
    seconds: float = 30.0,
    *,
    clients: int = 16,
    max_requests: int = 100_000,
    scrapes: int = 20,
    indicators: Sequence[str] = INDICATORS,
) -> dict[str, Any]:
    """Start the api on the prepared database, read for `seconds` (at most `max_requests`),
    scrape `/metrics` `scrapes` times, stop the api. Figures in ms and counts."""
    with api(db_url, kafka) as (url, pid):
        reads = read_load(url, month_start, seconds, clients, max_requests, indicators)
        scraped = scrape(url, scrapes) if scrapes else {}
        peak = max(procs.memory_kb(pid))
    return {**reads, **scraped, "api_peak_rss_mb": round(peak / 1024, 1)}


@contextlib.contextmanager
def api(db_url: str, kafka: str, ready_timeout: float = 90.0) -> Iterator[tuple[str, int]]:
    """`itsm-metrics api` on a free loopback port: its base URL and pid while it runs."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="itsm-reads-") as tmp:
        log_path = Path(tmp) / "api.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [*procs.command(), "api"],
                env=procs.environment(db_url, kafka, port),
                cwd=tmp,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            if procs.wait_ready(url, proc, ready_timeout) is None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
                raise RuntimeError(f"the api did not become ready: {' | '.join(tail)}")
            print(f"  api ready at {url}", flush=True)
            yield url, proc.pid
        finally:
            procs.stop(proc, signal.SIGTERM, grace=30)


def read_load(
    url: str,
    month_start: datetime,
    seconds: float,
    clients: int,
    max_requests: int,
    indicators: Sequence[str],
) -> dict[str, Any]:
    """`clients` client processes (`client_processes`) asking in turn for each indicator's daily
    points by service over the month, until `seconds` pass or `max_requests` are sent."""
    query = urlencode(
        {
            "window": "day",
            "group_by": "service",
            "start": _z(month_start),
            "end": _z(month_end(month_start)),
        }
    )
    paths = [f"/v1/indicators/{ind}?{query}" for ind in indicators]
    with client_processes(url, paths, seconds, clients, max_requests) as pending:
        started = time.monotonic()
        while not pending.ready():
            pending.wait(5.0)
            if not pending.ready():
                print(f"  reads: {time.monotonic() - started:.0f} s of {seconds:.0f}", flush=True)
        results = pending.get()
        elapsed = time.monotonic() - started
    reads = [r for own in results for r in own]
    latencies = sorted(r.seconds for r in reads)
    errors = Counter(r.outcome for r in reads if r.outcome != "HTTP 200")  # with their codes
    return {
        "reads_clients": clients,
        "reads_method": "client processes, keep-alive, gzip, time to last byte",
        "reads_requests": len(latencies),
        "reads_per_s": round(len(latencies) / elapsed, 1),
        "reads_errors": sum(errors.values()),
        "reads_error_kinds": ", ".join(f"{k} ×{n}" for k, n in errors.most_common(3)) or "none",
        "reads_p50_ms": _ms(latencies, 0.5),
        "reads_p99_ms": _ms(latencies, 0.99),
    }


class Read(NamedTuple):
    started: float  # monotonic (one clock for every process of the machine)
    seconds: float  # to the last byte
    outcome: str  # "HTTP 200", "HTTP <status> <error code>", or the error that got no answer
    path: str


@contextlib.contextmanager
def client_processes(
    url: str,
    paths: Sequence[str],
    seconds: float,
    clients: int,
    max_requests: int = 10**9,
    pause: float = 0.0,
) -> Iterator[AsyncResult[list[list[Read]]]]:
    """`clients` client processes, each with its own keep-alive connection, asking in turn for
    each of `paths` (each starting at its own place in them; gzip accepted, the whole body
    read: time to last byte), `pause` s after each answer, until `seconds` pass or each sent
    `max_requests / clients`. Yields the pending result: each client's reads. Processes, and
    the standard library's HTTP client: sixteen httpx clients in threads of one Python process
    saturate a core with their own work and measure their GIL queue, not the api."""
    per_client = -(-max_requests // clients)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(clients) as pool:
        yield pool.starmap_async(
            _client, [(url, list(paths), i, seconds, per_client, pause) for i in range(clients)]
        )


def _client(
    url: str, paths: list[str], offset: int, seconds: float, max_requests: int, pause: float
) -> list[Read]:
    """One client process: its reads."""
    where = urlsplit(url)
    conn = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=60)
    headers = {"Accept-Encoding": "gzip"}
    own: list[Read] = []
    deadline = time.monotonic() + seconds
    k = offset
    while time.monotonic() < deadline and len(own) < max_requests:
        path = paths[k % len(paths)]
        k += 1
        started = time.perf_counter()
        at = time.monotonic()
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status == 200:
                outcome = "HTTP 200"
            else:
                gzipped = resp.getheader("Content-Encoding") == "gzip"
                code = _error_code(gzip.decompress(body) if gzipped else body)
                outcome = f"HTTP {resp.status}{code}"
        except (OSError, http.client.HTTPException) as err:
            outcome = type(err).__name__
            conn.close()
            conn = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=60)
        own.append(Read(at, time.perf_counter() - started, outcome, path))
        if pause:
            time.sleep(pause)
    conn.close()
    return own


def _error_code(body: bytes) -> str:
    """` <code>` of an error body (`{"error": {"code": …}}`, SPEC §7), else nothing."""
    try:
        return f" {json.loads(body)['error']['code']}"
    except (ValueError, KeyError, TypeError):
        return ""


def scrape(url: str, times: int, every: float = 0.0) -> dict[str, Any]:
    """`/metrics` `times` times, `every` seconds apart: latency, the number of series (sample
    lines) and how many scrapes said the snapshot was stale (`itsm_exposition_stale 1`)."""
    latencies: list[float] = []
    series = size = 0
    errors = stale = 0
    with httpx.Client(base_url=url, timeout=120) as http:
        for i in range(times):
            if i and every:
                time.sleep(every)
            started = time.perf_counter()
            try:
                resp = http.get("/metrics")
            except httpx.HTTPError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)
            if resp.status_code != 200:
                errors += 1
                continue
            body = resp.text
            size = len(resp.content)
            stale += "\nitsm_exposition_stale 1.0\n" in body
            series = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
    print(f"  /metrics: {series:,} series, {size / 1e6:.1f} MB", flush=True)
    latencies.sort()
    return {
        "metrics_scrapes": times,
        "metrics_errors": errors,
        "metrics_stale": stale,
        "metrics_p50_ms": _ms(latencies, 0.5),
        "metrics_p99_ms": _ms(latencies, 0.99),
        "metrics_series": series,
        "metrics_bytes": size,
    }


def _ms(sorted_seconds: list[float], q: float) -> float | None:
    if not sorted_seconds:
        return None
    i = min(len(sorted_seconds) - 1, int(q * (len(sorted_seconds) - 1) + 0.5))
    return round(1000 * sorted_seconds[i], 1)


def _z(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")
