"""`itsm-metrics up`: embedded engines (unless external ones are configured), topics, migrations,
then collector, aggregator and api as separate processes, and the simulator. Ctrl-C or SIGTERM
stops everything in order; children die with this process even if it is killed."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from kafka.errors import KafkaError

from services.catalog import (
    Catalog,
    active_version,
    apply_catalog,
    load_catalog,
    read_catalog_text,
)
from services.local.engines import (
    EmbeddedBroker,
    EmbeddedPostgres,
    die_with_parent,
    free_port,
    require_free_port,
)
from services.local.spool import SPOOL, keep_unconsumed, restore
from shared.db import make_engine, migrate
from shared.errors import ConfigError
from shared.kafka import ensure_topics
from shared.settings import Settings
from shared.signals import stop_on_signals

log = logging.getLogger("itsm.up")

SERVICES = ("collector", "aggregator", "api")


def _tokens(settings: Settings, data_dir: Path) -> dict[str, str]:
    """Tokens from settings, else generated once and kept in the data dir (SPEC §9)."""
    path = data_dir / "tokens.json"
    saved: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    tokens = {
        "ingest": settings.ingest_token or saved.get("ingest") or secrets.token_urlsafe(24),
        "admin": settings.admin_token or saved.get("admin") or secrets.token_urlsafe(24),
    }
    if tokens != saved:
        path.write_text(json.dumps(tokens))
        path.chmod(0o600)
    return tokens


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )


def _wait_ready(
    url: str, children: dict[str, subprocess.Popen[bytes]], timeout: float, stop: threading.Event
) -> bool:
    """True once the api is ready; False if a stop was asked for first (Ctrl-C while starting)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if stop.is_set():
            return False
        for name, proc in children.items():
            if proc.poll() is not None:
                raise ConfigError(f"the {name} exited with code {proc.returncode} while starting")
        try:
            resp = httpx.get(f"{url}/readyz", timeout=2)
            if resp.status_code == 200:
                return True
            last = json.dumps(resp.json().get("checks"))
        except httpx.HTTPError as err:
            last = str(err)
        time.sleep(0.3)
    raise ConfigError(f"the api was not ready within {timeout:.0f} s: {last}")


def _banner(
    url: str,
    tokens: dict[str, str],
    db_url: str,
    kafka: str,
    ports: dict[str, int],
    simulate: bool,
    review: str | None = None,
) -> str:
    lines = [
        "",
        "itsm-metrics is up",
        f"  api           {url}   (OpenAPI docs: {url}/docs)",
        f"  metrics       {url}/metrics",
        f"  indicators    {url}/v1/indicators/ticket_opened_count?window=day&group_by=service",
        f"  objectives    {url}/v1/objectives?window=month",
        *([f"  review        {url}{review}"] if review else []),
        f"  collector     http://127.0.0.1:{ports['collector']}/metrics",
        f"  aggregator    http://127.0.0.1:{ports['aggregator']}/metrics",
        f"  postgres      {db_url.replace('+psycopg', '')}",
        f"  kafka         {kafka}",
        f"  ingest token  {tokens['ingest']}",
        f"  admin token   {tokens['admin']}",
        f"  try: curl -H 'Authorization: Bearer {tokens['ingest']}' "
        f"-H 'Content-Type: application/json' -d @event.json {url}/v1/events",
        "  simulated events: " + ("on" if simulate else "off"),
        "  Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def run_stack(
    settings: Settings,
    *,
    simulate: bool,
    rate: float,
    catalog: Path | None = None,
    history: float = 0.0,
    seed: int | None = None,
) -> int:
    stop = stop_on_signals()  # nothing done in the handler itself (shared/signals.py)

    catalog = catalog or settings.catalog
    if catalog is not None and not catalog.exists():
        raise ConfigError(f"catalog file {catalog} does not exist")
    if catalog is not None:
        # an invalid catalog stops `up` here, with FILE:LINE: reason
        load_catalog(catalog, timezone=settings.reporting_timezone)
    require_free_port(settings.api_port, "api", "ITSM_API_PORT")
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)

    pg: EmbeddedPostgres | None = None
    broker: EmbeddedBroker | None = None
    children: dict[str, subprocess.Popen[bytes]] = {}
    kept_log: Settings | None = None  # the embedded broker's, once what it kept is back in it
    try:
        if settings.database_url:
            db_url = settings.database_url
        else:
            print("starting embedded PostgreSQL ...", flush=True)
            pg = EmbeddedPostgres(data_dir / "pgdata", port=settings.local_postgres_port).start()
            db_url = pg.url
        if settings.kafka_bootstrap_servers:
            kafka = settings.kafka_bootstrap_servers
        else:
            print("starting embedded Kafka-protocol broker (Tansu) ...", flush=True)
            broker = EmbeddedBroker(
                port=settings.local_kafka_port, log_path=data_dir / "broker.log"
            ).start()
            kafka = broker.bootstrap
        effective = settings.model_copy(
            update={"database_url": db_url, "kafka_bootstrap_servers": kafka}
        )
        ensure_topics(effective)
        if broker is not None:
            restored = restore(effective, data_dir / SPOOL)
            if restored:
                print(f"{restored} events not consumed at the last stop produced again", flush=True)
            kept_log = effective
        before, after = migrate(db_url)
        print(f"database at {after}" + ("" if before == after else f" (from {before or 'empty'})"))
        review = None
        if catalog is not None:
            review = _review_path(_apply_catalog(db_url, catalog, settings), settings)
        tokens = _tokens(settings, data_dir)
        ports = {"collector": free_port(), "aggregator": free_port()}
        env = {
            **os.environ,
            "ITSM_DATABASE_URL": db_url,
            "ITSM_KAFKA_BOOTSTRAP_SERVERS": kafka,
            "ITSM_INGEST_TOKEN": tokens["ingest"],
            "ITSM_ADMIN_TOKEN": tokens["admin"],
            "ITSM_COLLECTOR_METRICS_PORT": str(ports["collector"]),
            "ITSM_AGGREGATOR_METRICS_PORT": str(ports["aggregator"]),
        }
        if catalog is not None:
            env["ITSM_CATALOG"] = str(catalog.resolve())
        for name in SERVICES:
            children[name] = _spawn([name], env)
        url = f"http://{settings.api_host}:{settings.api_port}"
        if not _wait_ready(url, children, timeout=90, stop=stop):
            return 0
        if simulate:
            children["simulator"] = _spawn(_simulator_args(db_url, rate, history, seed), env)
        print(_banner(url, tokens, db_url, kafka, ports, simulate, review), flush=True)
        return _supervise(children, stop)
    finally:
        _stop_children(children)
        if kept_log is not None:
            _keep_unconsumed(kept_log, data_dir / SPOOL)
        if broker is not None:
            broker.stop()
        if pg is not None:
            pg.stop()
        print("itsm-metrics stopped", flush=True)


def _keep_unconsumed(settings: Settings, path: Path) -> None:
    """The embedded broker keeps its log in memory: what the collector has not consumed goes
    to the data directory for the next start (services/local/spool.py)."""
    try:
        kept = keep_unconsumed(settings, path)
    except (KafkaError, OSError) as err:
        print(f"events not consumed could not be kept: {err}", file=sys.stderr, flush=True)
        return
    print(f"{kept} events not consumed kept for the next start", flush=True)


def _simulator_args(db_url: str, rate: float, weeks: float, seed: int | None) -> list[str]:
    """The simulator's command line: `weeks` of history at the first start only."""
    from services.local.simulate import first_start_weeks

    history = first_start_weeks(db_url, weeks)
    if weeks > 0 and not history:
        print("history: none simulated, the database has events already", flush=True)
    seeded = ["--seed", str(seed)] if seed is not None else []
    return ["simulate", "--rate", str(rate), "--history", f"{history:g}", *seeded]


def _review_path(catalog: Catalog, settings: Settings) -> str | None:
    """The printable customer review of the catalog's first customer for this month: what the
    simulated company looks like to its customer (None when the catalog names no customer)."""
    if not catalog.customers:
        return None
    month = datetime.now(ZoneInfo(settings.reporting_timezone)).strftime("%Y-%m")
    return f"/v1/reviews/customer?customer={catalog.customers[0].id}&period={month}&format=html"


def _apply_catalog(db_url: str, path: Path, settings: Settings) -> Catalog:
    engine = make_engine(db_url, pool_size=1)
    try:
        with engine.begin() as conn:
            text = read_catalog_text(path)
            zone = settings.reporting_timezone
            catalog, changed = apply_catalog(conn, text, str(path.resolve()), timezone=zone)
            version = active_version(conn)
    finally:
        engine.dispose()
    state = "applied" if changed else "already active"
    number = version.id if version is not None else "?"
    print(f"catalog {path} {state} (version {number}: {catalog.summary()})", flush=True)
    return catalog


def _supervise(children: dict[str, subprocess.Popen[bytes]], stop: threading.Event) -> int:
    while not stop.wait(0.5):
        for name, proc in children.items():
            if proc.poll() is not None:
                print(
                    f"itsm-metrics: the {name} exited unexpectedly (code {proc.returncode}); "
                    "stopping the stack",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
    print("\nstopping ...", flush=True)
    return 0


def _stop_children(children: dict[str, subprocess.Popen[bytes]]) -> None:
    # Producers first, then the services in reverse start order.
    for name in reversed(list(children)):
        proc = children[name]
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for proc in children.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
