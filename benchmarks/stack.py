"""The collector, the aggregator and the api as processes of this checkout, for runs that take
them down one by one or watch them through faults: the fault tests (tests/faults) and the soak
(benchmarks/soak.py). Each runs `python -m services.cli <name>` from the repository root, so a
worktree runs its own code even where an editable install points `itsm-metrics` elsewhere."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from services.local.engines import free_port
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("collector", "aggregator", "api")


def service_env(**values: str) -> dict[str, str]:
    """The parent environment without ITSM_* settings, plus `values`: a service reads only what
    its caller meant it to."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ITSM_")}
    env.update(values)
    return env


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`itsm-metrics <args>` of this checkout, its output appended to `log`."""
    out = open(log, "ab")  # noqa: SIM115 - the process owns it until it ends
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> int:
    """SIGTERM, then SIGKILL if it has not stopped within `timeout` s; its exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class Stack:
    """The three services, each its own process on `settings`' database, broker, topics and
    group, with `env` added to each one's environment (cadences, tokens); a caller may kill
    (SIGKILL) and restart each. Every process connects to PostgreSQL with its name as
    `application_name`, so pg_stat_activity shows what each one is doing."""

    def __init__(self, settings: Settings, log: Path, env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.log = log
        self.extra = dict(env or {})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def env(self, name: str) -> dict[str, str]:
        s = self.settings
        database = make_url(s.require_database_url()).update_query_dict(
            {"application_name": f"itsm-{name}"}
        )
        return service_env(
            ITSM_DATABASE_URL=database.render_as_string(hide_password=False),
            ITSM_KAFKA_BOOTSTRAP_SERVERS=s.require_kafka(),
            ITSM_TOPIC_PREFIX=s.topic_prefix,
            ITSM_CONSUMER_GROUP=s.consumer_group,
            ITSM_COLLECTOR_BATCH_SIZE=str(s.collector_batch_size),
            ITSM_HOUR_RETENTION_DAYS=str(s.hour_retention_days),
            ITSM_API_PORT=str(self.port),
            **self.extra,
        )

    def start(self, *names: str, **env: str) -> None:
        """Start these services (all by default), with `env` added to their environment (e.g.
        ITSM_FAULT, shared/faults.py)."""
        for name in names or SERVICES:
            self.procs[name] = spawn([name], {**self.env(name), **env}, self.log)

    def kill(self, name: str) -> None:
        """SIGKILL: no handler runs, nothing is flushed or committed."""
        proc = self.procs[name]
        proc.kill()
        if proc.wait(10) != -signal.SIGKILL:
            raise RuntimeError(f"{name} ended with {proc.returncode} before it was killed")

    def restart(self, name: str) -> None:
        """Start `name` again (after a kill or a crash); the api is waited for until ready."""
        if self.procs[name].poll() is None:
            raise RuntimeError(f"{name} is still running")
        self.start(name)
        if name == "api":
            self.wait_ready()

    def exited(self) -> dict[str, int]:
        """The services that are no longer running, with their exit codes."""
        return {name: code for name, p in self.procs.items() if (code := p.poll()) is not None}

    def assert_running(self) -> None:
        for name, code in self.exited().items():
            raise AssertionError(f"{name} exited with {code}: {self.tail()}")

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 60) -> float:
        """Seconds until the api says ready; fails if a service exits or time runs out."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            self.assert_running()
            if self.ready():
                return time.monotonic() - started
            time.sleep(0.1)
        raise TimeoutError(f"the api was not ready within {timeout:.0f} s\n{self.tail()}")

    def stop(self) -> dict[str, int]:
        """SIGTERM to every process at once, then each one's exit status."""
        for p in self.procs.values():
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.terminate()
        return {name: stop(p) for name, p in self.procs.items()}

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""
