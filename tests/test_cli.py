"""Failures a user can fix give one line saying what and how, and a distinct exit code."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from services.local.engines import free_port
from tests.conftest import Postgres
from tests.e2e.conftest import ROOT, service_env


def run(args: list[str], timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=service_env(**env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("itsm-metrics: ")
    return lines[0]


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("service", ["collector", "aggregator", "api"])
def test_service_refuses_an_unmigrated_database(
    service: str, postgres: Postgres, kafka_bootstrap: str
) -> None:
    result = run(
        [service],
        ITSM_DATABASE_URL=postgres.fresh(migrated=False),
        ITSM_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
    )
    assert result.returncode == 4
    assert "run `itsm-metrics migrate` first" in one_line(result)


def test_unreachable_database(kafka_bootstrap: str) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    result = run(["collector"], ITSM_DATABASE_URL=url, ITSM_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap)
    assert result.returncode == 3
    line = one_line(result)
    assert "PostgreSQL unreachable" in line and "check ITSM_DATABASE_URL" in line


def test_migrate_on_unreachable_database() -> None:
    result = run(["migrate"], ITSM_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    assert result.returncode == 3
    assert "PostgreSQL unreachable" in one_line(result)


def test_unreachable_broker(postgres: Postgres) -> None:
    result = run(
        ["collector"],
        ITSM_DATABASE_URL=postgres.fresh(),
        ITSM_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}",
    )
    assert result.returncode == 5
    assert "check ITSM_KAFKA_BOOTSTRAP_SERVERS" in one_line(result)


def test_api_port_in_use(postgres: Postgres, kafka_bootstrap: str, listening_port: int) -> None:
    result = run(
        ["api"],
        ITSM_DATABASE_URL=postgres.fresh(),
        ITSM_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        ITSM_API_PORT=str(listening_port),
    )
    assert result.returncode == 6
    assert f"port {listening_port} for the api is in use" in one_line(result)


def test_up_with_api_port_in_use(listening_port: int, tmp_path: object) -> None:
    result = run(
        ["up", "--no-simulate"], ITSM_API_PORT=str(listening_port), ITSM_DATA_DIR=str(tmp_path)
    )
    assert result.returncode == 6
    assert "ITSM_API_PORT" in one_line(result)


def test_missing_database_url_says_how_to_fix_it() -> None:
    result = run(["aggregator"])
    assert result.returncode == 2
    assert "ITSM_DATABASE_URL is not set" in one_line(result)


def test_invalid_setting_is_one_line() -> None:
    result = run(["api"], ITSM_API_PORT="eighty")
    assert result.returncode == 2
    assert "invalid settings" in one_line(result)


def test_migrate_twice_is_idempotent(postgres: Postgres) -> None:
    url = postgres.fresh(migrated=False)
    first = run(["migrate"], ITSM_DATABASE_URL=url)
    assert first.returncode == 0, first.stderr
    assert "migrated from empty to" in first.stdout
    second = run(["migrate"], ITSM_DATABASE_URL=url)
    assert second.returncode == 0
    assert "already at" in second.stdout
