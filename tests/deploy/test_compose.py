"""docker-compose.yml and the Dockerfile have the production shape of SPEC §8 and §9.

There is no Docker engine here, so `docker compose config` is not run: the file is read with
PyYAML (anchors and `<<` merge keys resolved) and checked against the settings and the
Prometheus configuration it has to agree with.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from shared.settings import Settings

from .conftest import PROMETHEUS_CONFIG, REPO

ITSM_SERVICES = ("migrate", "collector", "aggregator", "api")
WORKERS = ("collector", "aggregator", "api")
SUBCOMMANDS = {"migrate", "collector", "aggregator", "api", "up"}
DATABASE_URL = "postgresql://itsm:itsm@postgres:5432/itsm"


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(compose["services"][name])


def environment(compose: dict[str, Any], name: str) -> dict[str, str]:
    env = service(compose, name).get("environment", {})
    assert isinstance(env, dict), f"{name}: write environment as a mapping"
    return {key: str(value) for key, value in env.items()}


def published_ports(compose: dict[str, Any], name: str) -> set[tuple[int, int]]:
    pairs = set()
    for spec in service(compose, name).get("ports", []):
        host, container = str(spec).rsplit(":", 2)[-2:]
        pairs.add((int(host), int(container)))
    return pairs


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}` as `docker compose` would."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if name in variables:
            return variables[name]
        if op == ":-":
            return arg
        raise AssertionError(f"${{{name}}} is not set and has no default")

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, value)


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_stack_has_every_production_service(compose: dict[str, Any]) -> None:
    expected = {
        "kafka",
        "postgres",
        "migrate",
        "collector",
        "aggregator",
        "api",
        "prometheus",
        "alertmanager",
        "grafana",
    }
    assert expected <= set(compose["services"]), expected - set(compose["services"])
    assert "zookeeper" not in compose["services"], "Kafka runs in KRaft mode, no ZooKeeper"


def test_itsm_services_share_one_build_and_image(compose: dict[str, Any]) -> None:
    builds = {json.dumps(service(compose, n).get("build"), sort_keys=True) for n in ITSM_SERVICES}
    images = {service(compose, n).get("image") for n in ITSM_SERVICES}
    assert len(builds) == 1 and len(images) == 1, (builds, images)
    build = service(compose, "api")["build"]
    assert (REPO / build["context"] / build["dockerfile"]).resolve() == REPO / "Dockerfile"


def test_each_itsm_service_runs_its_own_subcommand(compose: dict[str, Any]) -> None:
    for name in ITSM_SERVICES:
        command = service(compose, name)["command"]
        assert command == [name], f"{name} runs {command}"
        assert command[0] in SUBCOMMANDS


def test_dockerfile_builds_the_production_image() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    runs = [args for op, args in instructions if op == "RUN"]
    assert any(re.search(r"\bpip install \.(\s|$)", run) for run in runs), runs
    assert not any("[local]" in run or "[dev]" in run for run in runs), "no embedded engines"

    users = [i for i, (op, _) in enumerate(instructions) if op == "USER"]
    assert users, "the image must not run as root"
    user = instructions[users[-1]][1].split(":")[0]
    assert user not in {"root", "0"}
    assert users[-1] > max(i for i, (op, _) in enumerate(instructions) if op == "RUN")

    entrypoints = [args for op, args in instructions if op == "ENTRYPOINT"]
    assert [json.loads(e) for e in entrypoints] == [["itsm-metrics"]]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "itsm-metrics" in scripts


def test_files_the_image_needs_exist() -> None:
    instructions = dockerfile_instructions()
    assert ("WORKDIR", "/app") in instructions
    assert ("COPY", "deploy ./deploy") in instructions

    needed: set[str] = set()
    for op, args in instructions:
        if op == "COPY" and not args.startswith("--from"):
            needed.update(args.split()[:-1])
    missing = {path for path in needed if not (REPO / path).exists()}
    assert not missing, f"the Dockerfile copies files that do not exist: {missing}"


def test_api_publishes_port_8000_on_all_interfaces(compose: dict[str, Any]) -> None:
    assert (8000, 8000) in published_ports(compose, "api")
    env = environment(compose, "api")
    assert env["ITSM_API_HOST"] == "0.0.0.0"
    assert env["ITSM_API_PORT"] == "8000"


def test_every_itsm_variable_is_a_settings_field(compose: dict[str, Any]) -> None:
    fields = {f"ITSM_{name.upper()}" for name in Settings.model_fields}
    for name in ITSM_SERVICES:
        env = environment(compose, name)
        assert env, f"{name} sets no environment"
        unknown = {key for key in env if key not in fields}
        assert not unknown, f"{name} sets variables Settings does not read: {unknown}"


@pytest.mark.parametrize("name", ITSM_SERVICES)
def test_settings_read_each_service_environment(
    compose: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith("ITSM_")]:
        monkeypatch.delenv(key)
    variables = {"ITSM_INGEST_TOKEN": "ingest-secret", "ITSM_ADMIN_TOKEN": "admin-secret"}
    for key, value in environment(compose, name).items():
        monkeypatch.setenv(key, interpolate(value, variables))

    settings = Settings(_env_file=None)  # type: ignore[call-arg]

    assert settings.database_url == "postgresql+psycopg://itsm:itsm@postgres:5432/itsm"
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.log_format == "json"
    expected_ports = {"collector": (9101, None), "aggregator": (None, 9102)}
    ports = (settings.collector_metrics_port, settings.aggregator_metrics_port)
    assert ports == expected_ports.get(name, (None, None))
    if name == "api":
        assert (settings.api_host, settings.api_port) == ("0.0.0.0", 8000)
        assert (settings.ingest_token, settings.admin_token) == ("ingest-secret", "admin-secret")


def test_every_process_reads_one_reporting_time_zone_the_catalog_agrees_with(
    compose: dict[str, Any],
) -> None:
    from services.catalog import load_catalog

    zones = {environment(compose, name).get("ITSM_REPORTING_TIMEZONE") for name in WORKERS}
    (zone,) = zones  # one value, set for every process (the windows stored are aligned in it)
    assert zone is not None
    for chosen in ({}, {"ITSM_REPORTING_TIMEZONE": "Europe/Berlin"}):
        # the catalog the aggregator applies at start is accepted whatever the zone chosen
        catalog = environment(compose, "aggregator")["ITSM_CATALOG"].removeprefix("/app/")
        load_catalog(REPO / catalog, timezone=interpolate(zone, chosen))
    assert interpolate(zone, {}) == Settings.model_fields["reporting_timezone"].default


def test_tokens_come_from_required_variables_and_only_the_api_has_them(
    compose: dict[str, Any],
) -> None:
    env = environment(compose, "api")
    for key in ("ITSM_INGEST_TOKEN", "ITSM_ADMIN_TOKEN"):
        assert re.fullmatch(rf"\$\{{{key}:\?[^}}]+\}}", env[key]), f"{key}={env[key]}"
    for name in ("migrate", "collector", "aggregator"):
        tokens = {key for key in environment(compose, name) if key.endswith("_TOKEN")}
        assert not tokens, f"{name} does not check tokens and should not hold {tokens}"


def test_services_start_after_migrate_and_healthy_engines(compose: dict[str, Any]) -> None:
    for name in WORKERS:
        assert service(compose, name)["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "kafka": {"condition": "service_healthy"},
            "postgres": {"condition": "service_healthy"},
        }, name
    migrate = service(compose, "migrate")
    assert migrate["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert "migrate" not in migrate["depends_on"]
    # A one-shot that restarts would run forever and never "complete successfully".
    assert migrate["restart"] == "no"


def test_every_dependency_exists_and_healthy_ones_have_a_healthcheck(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for name, spec in services.items():
        depends = spec.get("depends_on", {})
        items = depends.items() if isinstance(depends, dict) else ((d, {}) for d in depends)
        for target, options in items:
            assert target in services, f"{name} depends on unknown service {target}"
            if options.get("condition") == "service_healthy":
                test = services[target].get("healthcheck", {}).get("test")
                assert test, f"{name} waits for {target} to be healthy; it has no healthcheck"


def test_kafka_is_a_single_kraft_node_at_the_bootstrap_address(compose: dict[str, Any]) -> None:
    env = {k: str(v) for k, v in service(compose, "kafka")["environment"].items()}
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in key for key in env)
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    advertised = {url.split("://", 1)[1] for url in env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    assert environment(compose, "collector")["ITSM_KAFKA_BOOTSTRAP_SERVERS"] in advertised
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):
        assert env[key] == "1", f"{key} must be 1 on a single node"
    assert service(compose, "kafka")["healthcheck"]["test"]


def test_postgres_16_matches_the_database_url(compose: dict[str, Any]) -> None:
    postgres = service(compose, "postgres")
    assert re.match(r"postgres:16(\.|-|$)", postgres["image"]), postgres["image"]
    url = urlsplit(DATABASE_URL)
    env = postgres["environment"]
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"]) == (url.username, url.password)
    assert env["POSTGRES_DB"] == url.path.lstrip("/")
    assert (url.hostname, url.port) == ("postgres", 5432)
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    for name in ITSM_SERVICES:
        assert environment(compose, name)["ITSM_DATABASE_URL"] == DATABASE_URL


def bind_mounts(compose: dict[str, Any], name: str) -> dict[str, str]:
    """container path → repository-relative host path, for `./…` bind mounts."""
    mounts = {}
    for volume in service(compose, name).get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith("./"):
            assert (REPO / source).exists(), f"{name} mounts missing {source}"
            mounts[target] = source.removeprefix("./")
    return mounts


def flag(compose: dict[str, Any], name: str, option: str) -> str:
    values = [a.split("=", 1)[1] for a in service(compose, name)["command"] if a.startswith(option)]
    assert len(values) == 1, f"{name}: {option} given {len(values)} times"
    return values[0]


def test_monitoring_services_mount_their_deploy_directories(compose: dict[str, Any]) -> None:
    prometheus_mounts = bind_mounts(compose, "prometheus")
    config = Path(flag(compose, "prometheus", "--config.file="))
    assert prometheus_mounts[str(config.parent)] == "deploy/prometheus"
    assert REPO / "deploy/prometheus" / config.name == PROMETHEUS_CONFIG

    alertmanager_config = Path(flag(compose, "alertmanager", "--config.file="))
    assert bind_mounts(compose, "alertmanager")[str(alertmanager_config.parent)] == (
        "deploy/alertmanager"
    )
    assert (REPO / "deploy/alertmanager" / alertmanager_config.name).is_file()

    assert bind_mounts(compose, "grafana")["/etc/grafana/provisioning"] == (
        "deploy/grafana/provisioning"
    )


def scrape_targets(job: dict[str, Any]) -> set[tuple[str, int]]:
    targets = set()
    for static in job.get("static_configs", []):
        for target in static["targets"]:
            host, port = target.rsplit(":", 1)
            targets.add((host, int(port)))
    for dns in job.get("dns_sd_configs", []):
        assert dns.get("type", "SRV") == "A", "compose DNS answers A records, not SRV"
        targets.update((host, int(dns["port"])) for host in dns["names"])
    return targets


def test_prometheus_scrapes_each_service_where_it_listens(
    compose: dict[str, Any], prometheus_config: dict[str, Any]
) -> None:
    jobs = {job["job_name"]: job for job in prometheus_config["scrape_configs"]}
    expected = {
        "itsm-api": ("api", "ITSM_API_PORT"),
        "itsm-collector": ("collector", "ITSM_COLLECTOR_METRICS_PORT"),
        "itsm-aggregator": ("aggregator", "ITSM_AGGREGATOR_METRICS_PORT"),
    }
    for job_name, (name, port_variable) in expected.items():
        assert job_name in jobs, f"no scrape job {job_name}"
        port = int(environment(compose, name)[port_variable])
        assert scrape_targets(jobs[job_name]) == {(name, port)}, job_name
        assert jobs[job_name].get("metrics_path", "/metrics") == "/metrics"

    (alerting,) = prometheus_config["alerting"]["alertmanagers"]
    hosts = scrape_targets(alerting)
    assert hosts == {("alertmanager", 9093)}
    assert (9093, 9093) in published_ports(compose, "alertmanager")
