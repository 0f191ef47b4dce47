from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from benchmarks.stack import service_env, spawn, stop
from services.local.engines import free_port
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def services(settings: Settings, log: Path, token: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The collector, the aggregator and the api, each its own process on `settings`' database,
    broker, topics and group, with short cadences (the aggregator every 0.5 s, the running
    windows' costly parts every 2 s instead of 30 s, the /metrics snapshot every second instead
    of 15 s) and `token` as the ingest token; yields the api's URL once it is ready and the
    processes; at the end each must stop by itself with exit 0."""
    from tests.conftest import wait_until

    port = free_port()
    env = service_env(
        ITSM_DATABASE_URL=settings.require_database_url(),
        ITSM_KAFKA_BOOTSTRAP_SERVERS=settings.require_kafka(),
        ITSM_TOPIC_PREFIX=settings.topic_prefix,
        ITSM_CONSUMER_GROUP=settings.consumer_group,
        ITSM_INGEST_TOKEN=token,
        ITSM_API_PORT=str(port),
        ITSM_AGGREGATOR_INTERVAL_SECONDS="0.5",
        ITSM_AGGREGATOR_SLOW_SECONDS="2",
        ITSM_EXPOSITION_INTERVAL_SECONDS="1",
    )
    procs = {name: spawn([name], env, log) for name in ("collector", "aggregator", "api")}
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        for name, p in procs.items():
            assert p.poll() is None, f"{name} died: {log.read_text()[-2000:]}"
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, timeout=60, what="the api to be ready")
    yield url, procs
    codes = {name: stop(p) for name, p in procs.items()}
    assert codes == {"collector": 0, "aggregator": 0, "api": 0}, log.read_text()[-3000:]


@contextmanager
def prometheus(tmp_path: Path, api: str, **config: Any) -> Iterator[str]:
    """A real Prometheus server (Debian's `prometheus`, which the caller checked is installed)
    scraping the api at `api` (host:port) as job `itsm-api` every second, evaluating every
    second, with more of its configuration in `config` (rule_files, alerting); its log in
    tmp_path/prom.log. Yields its base URL; stopped at the end."""
    import shutil

    import yaml

    binary = shutil.which("prometheus")
    assert binary is not None
    port = free_port()
    path = tmp_path / "prometheus.yml"
    scrape = {"job_name": "itsm-api", "static_configs": [{"targets": [api]}]}
    path.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                **config,
                "scrape_configs": [scrape],
            }
        )
    )
    with open(tmp_path / "prom.log", "wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={path}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(20)
