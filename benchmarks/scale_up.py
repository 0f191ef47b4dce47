"""Two scenarios of `itsm-metrics up --no-simulate` on the realistic world's catalog.

`run` — the busy month before `up` (issue 10): 25,000 realistic tickets (~100,000 events over
October 2026) wait in `itsm.tickets` when `itsm-metrics up` starts. How long until every event
is stored, how long until the month's ticket count is visible over HTTP, and how much memory
each service needs on the way.

`history` — old history replayed over HTTP: with `up` running, a user POSTs a few thousand
tickets of 2016 to `/v1/events` in batches of 1,000; the few opened in its last days are
still open at its end (under 1 % of a year's tickets), and each marks every window from 2016 to
now dirty. How long after the last POST until
2016's ticket count is visible over HTTP (target: 30 s), and the memory on the way."""

from __future__ import annotations

import contextlib
import json
import secrets
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaProducer
from sqlalchemy import text

from benchmarks import procs
from benchmarks.engines import engines
from benchmarks.realistic import catalog_yaml, month_end, ticket_events
from services.local.engines import free_port
from shared.db import make_engine
from shared.kafka import ensure_topics
from shared.settings import Settings

MONTH = datetime(2026, 10, 1, tzinfo=UTC)
HISTORY = (datetime(2016, 1, 1, tzinfo=UTC), datetime(2017, 1, 1, tzinfo=UTC))
HISTORY_TARGET_S = 30.0
POST_BATCH = 1000
PROGRESS_EVERY_S = 10.0
OPEN_STATES = ("new", "assigned", "in_progress", "pending")


def run(n_tickets: int = 25_000, timeout_s: float = 900.0, seed: int = 1) -> dict[str, Any]:
    with (
        engines("scale_up") as (db_url, kafka),
        tempfile.TemporaryDirectory(prefix="itsm-scale-up-") as tmp,
    ):
        settings = Settings(
            _env_file=None,
            database_url=db_url,  # type: ignore[call-arg]
            kafka_bootstrap_servers=kafka,
        )
        ensure_topics(settings)
        started = time.perf_counter()
        produced = produce(settings, ticket_events(n_tickets, MONTH, month_end(MONTH), seed))
        produce_s = time.perf_counter() - started
        print(f"  {produced:,} events of {n_tickets:,} tickets acknowledged", flush=True)
        catalog = Path(tmp) / "catalog.yaml"
        catalog.write_text(catalog_yaml(seed))
        result = watch_up(db_url, kafka, Path(tmp), catalog, n_tickets, produced, timeout_s)
    return {
        "tickets": n_tickets,
        "events_produced": produced,
        "produce_s": round(produce_s, 1),
        **result,
    }


def produce(settings: Settings, events: Any) -> int:
    """Produce (topic suffix, key, event) with acks=all; returns how many were acknowledged
    (raises if any was not)."""
    producer = KafkaProducer(
        bootstrap_servers=settings.require_kafka(),
        acks="all",
        linger_ms=20,
        batch_size=256 * 1024,
    )
    sent = acked = 0
    failed: list[str] = []

    def ok(_: Any) -> None:
        nonlocal acked
        acked += 1

    def error(err: Exception) -> None:
        failed.append(str(err))

    for suffix, key, event in events:
        future = producer.send(
            settings.topic(suffix), key=key.encode(), value=json.dumps(event).encode()
        )
        future.add_callback(ok).add_errback(error)
        sent += 1
        if sent % 25_000 == 0:
            print(f"  produced {sent:,} events ...", flush=True)
    producer.flush()
    producer.close()
    if acked != sent:
        raise RuntimeError(f"{acked:,} of {sent:,} events acknowledged: {failed[:3]}")
    return acked


@dataclass
class Up:
    """`itsm-metrics up` running on the benchmark's engines: its process, api, tokens, a
    database engine to count what it stored, and (once stopped) its figures."""

    proc: subprocess.Popen[bytes]
    url: str
    ingest_token: str
    log_path: Path
    engine: Any
    figures: dict[str, Any] = field(default_factory=dict)

    def print_log_tail(self, lines: int = 15) -> None:
        text_ = self.log_path.read_text(errors="replace").splitlines()
        tail = [ln for ln in text_ if "token" not in ln]
        print("  last lines of up's output:\n    " + "\n    ".join(tail[-lines:]), flush=True)


@contextlib.contextmanager
def running_up(db_url: str, kafka: str, tmp: Path, catalog: Path) -> Iterator[Up]:
    """Start `up --no-simulate` with `catalog` on the engines and sample its memory; on the
    way out stop it with SIGINT (Ctrl-C), wait for it, end what outlived it, and leave peak
    RSS per service, exit code and leftovers in `Up.figures`."""
    port = free_port()
    ingest_token = secrets.token_urlsafe(16)
    env = procs.environment(
        db_url,
        kafka,
        port,
        ITSM_DATA_DIR=str(tmp / "data"),
        ITSM_INGEST_TOKEN=ingest_token,
        ITSM_ADMIN_TOKEN=secrets.token_urlsafe(16),
    )
    log_path = tmp / "up.log"
    url = f"http://127.0.0.1:{port}"
    print(f"  starting itsm-metrics up (api {url}) ...", flush=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*procs.command(), "up", "--no-simulate", "--catalog", str(catalog)],
            env=env,
            cwd=tmp,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # stopped by us, as Ctrl-C would, and not by a stray one
        )
    memory = procs.PeakMemory(proc.pid)
    up = Up(proc, url, ingest_token, log_path, make_engine(db_url, pool_size=1))
    try:
        with memory:
            yield up
    except BaseException:
        up.print_log_tail()
        raise
    finally:
        code = procs.stop(proc, signal.SIGINT, grace=60)
        up.engine.dispose()
        leftovers = procs.end_leftovers(memory.seen)
        print(f"  up stopped (exit code {code})", flush=True)
        if leftovers:
            print(f"  killed processes that outlived up: {', '.join(leftovers)}", flush=True)
        up.figures = {
            **{f"{name}_peak_rss_mb": mb for name, mb in memory.mb().items()},
            "up_exit_code": code,
            "leftover_processes": len(leftovers),
        }


def watch_up(
    db_url: str,
    kafka: str,
    tmp: Path,
    catalog: Path,
    n_tickets: int,
    produced: int,
    timeout_s: float,
) -> dict[str, Any]:
    """Start `up` on the engines, follow it until the month is visible or time runs out, then
    stop it."""
    query = _window_query("month", MONTH, month_end(MONTH))
    with running_up(db_url, kafka, tmp, catalog) as up:
        seen = follow(up, produced, n_tickets, query, timeout_s, what="month")
    if seen["verdict"] != "ok":
        up.print_log_tail()
    figures = {
        "up_ready_s": seen["ready_s"],
        "events_stored_s": seen["stored_s"],
        "month_visible_s": seen["visible_s"],
        "month_total_seen": seen["total"],
        "timeout_s": timeout_s,
        "verdict": seen["verdict"],
    }
    return {**figures, **up.figures}


def history(
    n_tickets: int = 3000,
    timeout_s: float = 900.0,
    seed: int = 1,
    target_s: float = HISTORY_TARGET_S,
) -> dict[str, Any]:
    """Old history replayed over HTTP into a running `up`: the tickets of 2016, POSTed in
    batches of POST_BATCH with the ingest token, then 2016's monthly ticket count polled until
    it is complete."""
    start, end = HISTORY
    events = [event for _, _, event in ticket_events(n_tickets, start, end, seed)]
    created = sum(1 for ev in events if ev["type"] == "itsm.ticket.created")
    still_open = _still_open(events)
    print(
        f"  {len(events):,} events of {created:,} tickets over {start:%Y}, "
        f"{still_open:,} still open at its end",
        flush=True,
    )
    with (
        engines("history") as (db_url, kafka),
        tempfile.TemporaryDirectory(prefix="itsm-history-") as tmp,
    ):
        catalog = Path(tmp) / "catalog.yaml"
        catalog.write_text(catalog_yaml(seed))
        # `up` creates the topics, as for a user; nothing waits in Kafka.
        with running_up(db_url, kafka, Path(tmp), catalog) as up:
            ready_s = procs.wait_ready(up.url, up.proc, timeout=120)
            if ready_s is None:
                raise RuntimeError("up did not become ready within 120 s")
            print(f"  up ready after {ready_s:.1f} s; posting ...", flush=True)
            posted = post_events(up, events)
            query = _window_query("month", start, end)
            seen = follow(
                up,
                len(events),
                created,
                query,
                timeout_s,
                what=f"{start:%Y}",
                started=posted["last_response"],
                ready=True,
            )
        visible_s = seen["visible_s"]
        if visible_s is None:
            verdict = seen["verdict"]
            up.print_log_tail()
        elif visible_s <= target_s:
            verdict = f"ok: visible {visible_s:.1f} s after the last POST (target {target_s:.0f} s)"
        else:
            verdict = (
                f"over target: visible {visible_s:.1f} s after the last POST, "
                f"{visible_s / target_s:.1f}× the {target_s:.0f} s target"
            )
    print(f"  {verdict}", flush=True)
    return {
        "tickets": created,
        "tickets_open_at_end": still_open,
        "events_posted": len(events),
        "posts": posted["posts"],
        "post_s": _round(posted["seconds"]),
        "up_ready_s": _round(ready_s),
        "events_stored_s": seen["stored_s"],
        "visible_s": visible_s,
        "total_seen": seen["total"],
        "target_s": target_s,
        "timeout_s": timeout_s,
        "verdict": verdict,
        **up.figures,
    }


def post_events(up: Up, events: list[dict[str, Any]], batch: int = POST_BATCH) -> dict[str, Any]:
    """POST `events` to /v1/events as JSON arrays of at most `batch` events with the ingest
    token, one after the other; every answer must be 202 (all accepted). Returns the number of
    POSTs, their seconds, and the monotonic instant the last answer came."""
    headers = {
        "Authorization": f"Bearer {up.ingest_token}",
        "Content-Type": "application/cloudevents-batch+json",
    }
    started = time.monotonic()
    posts = 0
    with httpx.Client(base_url=up.url, timeout=120, headers=headers) as client:
        for i in range(0, len(events), batch):
            chunk = events[i : i + batch]
            resp = client.post("/v1/events", content=json.dumps(chunk).encode())
            posts += 1
            if resp.status_code != 202:
                raise RuntimeError(
                    f"POST {posts} ({len(chunk)} events) answered {resp.status_code}: "
                    f"{resp.text[:300]}"
                )
            accepted = len(resp.json().get("accepted", []))
            if accepted != len(chunk):
                raise RuntimeError(f"POST {posts}: {accepted} of {len(chunk)} events accepted")
    last = time.monotonic()
    print(f"  {len(events):,} events posted in {posts} POSTs, {last - started:.1f} s", flush=True)
    return {"posts": posts, "seconds": last - started, "last_response": last}


def _still_open(events: Iterable[dict[str, Any]]) -> int:
    """Tickets whose latest event (by sequence) leaves them open (SPEC §3.1)."""
    latest: dict[str, tuple[int, str]] = {}
    for ev in events:
        data = ev["data"]
        seq = int(data["sequence"])
        tid = data["ticket_id"]
        if tid not in latest or seq > latest[tid][0]:
            latest[tid] = (seq, data["state"])
    return sum(1 for _, state in latest.values() if state in OPEN_STATES)


_STORED = text("SELECT count(*) FROM events WHERE entity_kind = 'ticket'")


def follow(
    up: Up,
    expected_events: int,
    expected_total: int,
    query: dict[str, str],
    timeout_s: float,
    *,
    what: str,
    started: float | None = None,
    ready: bool = False,
) -> dict[str, Any]:
    """Poll until the ticket events are stored and the ticket_opened_count points of `query`
    with no dimensions add up to `expected_total`, or `timeout_s` passes. Seconds are counted
    from `started` (a time.monotonic() instant; default: now). With `ready`, the api is known
    ready and /readyz is not polled."""
    started = time.monotonic() if started is None else started
    ready_s = stored_s = visible_s = None
    stored = total = 0
    next_report = PROGRESS_EVERY_S
    verdict = ""
    with httpx.Client(base_url=up.url, timeout=10) as client:
        while (elapsed := time.monotonic() - started) < timeout_s:
            if up.proc.poll() is not None:
                verdict = f"up exited with code {up.proc.returncode} after {elapsed:.0f} s"
                break
            if not ready and _ready(client):
                ready, ready_s = True, elapsed
            if stored_s is None:
                with up.engine.connect() as conn:
                    stored = int(conn.execute(_STORED).scalar_one())
                if stored >= expected_events:
                    stored_s = elapsed
            if ready:
                total = _opened_total(client, query)
                if total == expected_total:
                    visible_s = elapsed
                    break
            if elapsed >= next_report:
                print(
                    f"  {elapsed:5.0f} s: {stored:,}/{expected_events:,} events stored, {what} "
                    f"total {total:,}/{expected_total:,}",
                    flush=True,
                )
                next_report += PROGRESS_EVERY_S
            time.sleep(1.0)
    if visible_s is not None:
        verdict = "ok"
    elif not verdict:
        verdict = (
            f"{what} not visible within {timeout_s:.0f} s (total {total:,} of "
            f"{expected_total:,}; {stored:,} of {expected_events:,} events stored)"
        )
    print(f"  {verdict}", flush=True)
    return {
        "ready_s": _round(ready_s),
        "stored_s": _round(stored_s),
        "visible_s": _round(visible_s),
        "total": total,
        "verdict": verdict,
    }


def _window_query(window: str, start: datetime, end: datetime) -> dict[str, str]:
    return {
        "window": window,
        "start": start.isoformat().replace("+00:00", "Z"),
        "end": end.isoformat().replace("+00:00", "Z"),
    }


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _opened_total(client: httpx.Client, query: dict[str, str]) -> int:
    """The sum of the points with no dimensions (0 while there is none or the api errs)."""
    try:
        resp = client.get("/v1/indicators/ticket_opened_count", params=query)
    except httpx.HTTPError:
        return 0
    if resp.status_code != 200:
        return 0
    return sum(
        int(point.get("value") or point.get("count") or 0)
        for point in resp.json().get("points", [])
        if point.get("dimensions") == {}
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
