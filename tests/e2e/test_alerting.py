"""Alerts end to end (issue 12): the stack's processes, a real Prometheus evaluating the shipped
rules on the api's /metrics, and a real Alertmanager routing them — the objective alerts to a
webhook receiver inside this test, infrastructure alerts to the api's own
`/v1/ingest/alertmanager`, where they become outages in the technical indicators.

The shipped rules are used as they are, but for their `for:` durations (minutes, so that a
blip does not page), shortened to a few seconds in the copy Prometheus loads: their waiting is
covered by the promtool unit tests (deploy/prometheus/tests/)."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from services.catalog import apply_catalog
from services.local.engines import free_port
from shared.db import make_engine
from shared.kafka import ensure_topics
from tests.conftest import Postgres, make_settings, wait_until
from tests.e2e.conftest import ROOT, prometheus, services
from tests.helpers import cloud_event, ticket_event

pytestmark = pytest.mark.e2e

PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
RULES = ROOT / "deploy" / "prometheus" / "rules" / "itsm.rules.yml"
TOKEN = "alerting-ingest"
# One objective, judged on complete days: at least one email incident resolved a day.
CATALOG = """
customers: [{id: acme}]
services: [{id: email, customer: acme}]
objectives:
  - {service: email, indicator: ticket_resolved_count, window: day, comparator: ">=", target: 1}
"""


class Receiver:
    """A webhook receiver: every notification Alertmanager posts, in order."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        received = self.notifications

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self, name: str, status: str) -> list[dict[str, Any]]:
        return [
            a
            for n in self.notifications
            for a in n["alerts"]
            if a["labels"].get("alertname") == name and a["status"] == status
        ]


def shipped_rules_fast(path: Path) -> None:
    """The shipped rules with every `for:` at 2 s."""
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "2s"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def alertmanager_config(path: Path, receiver: str, api: str) -> None:
    """The shipped routing (deploy/alertmanager/alertmanager.yml) with test timings: the service's
    own alerts to the SRE receiver, everything else (infrastructure alerts about the CIs it
    measures) to itsm-metrics' Alertmanager ingest."""
    shipped = yaml.safe_load((ROOT / "deploy" / "alertmanager" / "alertmanager.yml").read_text())
    config = {
        "route": {
            "receiver": "itsm-ingest",
            "group_by": shipped["route"]["group_by"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
            "routes": [
                {"receiver": "sre", "matchers": ['alertname=~"Itsm.+"']},
            ],
        },
        "receivers": [
            {"name": "sre", "webhook_configs": [{"url": receiver, "send_resolved": True}]},
            {
                "name": "itsm-ingest",
                "webhook_configs": [
                    {
                        "url": f"{api}/v1/ingest/alertmanager",
                        "send_resolved": True,
                        "http_config": {"authorization": {"credentials": TOKEN}},
                    }
                ],
            },
        ],
        "inhibit_rules": shipped.get("inhibit_rules", []),
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def start(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "wb"),
        stdin=subprocess.DEVNULL,
    )


def clear_of_midnight() -> datetime:
    """Now, at least three minutes before midnight UTC (waits past it otherwise): the test's
    'yesterday' must stay the last complete day while it runs."""
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    if midnight - now < timedelta(minutes=3):
        time.sleep((midnight - now).total_seconds() + 1)
        now = datetime.now(UTC)
    return now


@pytest.fixture
def stack(
    postgres: Postgres, kafka_bootstrap: str, tmp_path: Path
) -> Iterator[tuple[str, Path, dict[str, subprocess.Popen[bytes]]]]:
    settings = make_settings(postgres.fresh(), kafka_bootstrap)
    ensure_topics(settings)
    engine = make_engine(settings.require_database_url())
    with engine.begin() as conn:
        apply_catalog(conn, CATALOG, "alerting.yaml")
    engine.dispose()
    log = tmp_path / "services.log"
    with services(settings, log, TOKEN) as (url, procs):
        yield url, log, procs


@pytest.mark.skipif(
    PROMETHEUS is None or ALERTMANAGER is None,
    reason="LOUD SKIP: `prometheus` or `prometheus-alertmanager` is not installed "
    "(make test installs Debian's packages; it failed or apt is missing)",
)
def test_objective_alert_fires_and_resolves_and_infrastructure_alerts_become_outages(
    stack: tuple[str, Path, dict[str, subprocess.Popen[bytes]]], tmp_path: Path
) -> None:
    api, log, _ = stack
    receiver = Receiver()
    am_port = free_port()
    am_config, rules = tmp_path / "alertmanager.yml", tmp_path / "rules.yml"
    alertmanager_config(am_config, receiver.url, api)
    shipped_rules_fast(rules)
    assert ALERTMANAGER is not None
    am = start(
        [
            ALERTMANAGER,
            f"--config.file={am_config}",
            f"--storage.path={tmp_path / 'am'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",  # no gossip port
        ],
        tmp_path / "am.log",
    )
    with prometheus(
        tmp_path,
        api.removeprefix("http://"),
        rule_files=[str(rules)],
        alerting={"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
    ):
        headers = {"Authorization": f"Bearer {TOKEN}"}

        def post(events: list[dict[str, Any]]) -> None:
            r = httpx.post(f"{api}/v1/events", json=events, headers=headers, timeout=30)
            assert r.status_code == 202, r.text

        def diagnostics() -> str:
            return "\n".join(
                f"--- {p.name}\n{p.read_text()[-1500:]}"
                for p in (log, tmp_path / "am.log", tmp_path / "prom.log")
            )

        try:
            now = clear_of_midnight()
            yesterday = (now - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
            # Yesterday an email incident was opened and none resolved: the day missed its
            # objective.
            post([ticket_event("AL-1", yesterday + timedelta(hours=9), "new", service="email")])
            fired = wait_until(
                lambda: receiver.alerts("ItsmObjectiveBreached", "firing"),
                timeout=120,
                what="ItsmObjectiveBreached at the receiver",
                diagnostics=diagnostics,
            )
            labels = fired[0]["labels"]
            assert (labels["service"], labels["indicator"], labels["window"]) == (
                "email",
                "ticket_resolved_count",
                "day",
            )
            assert labels["severity"] == "critical"
            assert not receiver.alerts("ItsmObjectiveBreached", "resolved")

            # A late event: it was resolved yesterday evening. The day meets its objective again.
            post([ticket_event("AL-1", yesterday + timedelta(hours=22), "resolved")])
            wait_until(
                lambda: receiver.alerts("ItsmObjectiveBreached", "resolved"),
                timeout=120,
                what="ItsmObjectiveBreached resolved at the receiver",
                diagnostics=diagnostics,
            )

            # An infrastructure alert through the same Alertmanager: routed to itsm-metrics' ingest,
            # it is an outage of CI db-01 (critical: its outage flag defaults to true).
            post(
                [
                    cloud_event(
                        "itsm.config.ci.upserted",
                        now,
                        "ci-db-01",
                        ci_id="db-01",
                        services=["email"],
                        critical=True,
                    )
                ]
            )
            started = datetime.now(UTC) - timedelta(minutes=5)
            r = httpx.post(
                f"http://127.0.0.1:{am_port}/api/v2/alerts",
                json=[
                    {
                        "labels": {"alertname": "HostDown", "ci": "db-01", "severity": "critical"},
                        "annotations": {"summary": "db-01 is down"},
                        "startsAt": started.isoformat(),
                    }
                ],
                timeout=10,
            )
            assert r.status_code == 200, r.text

            def outages() -> float:
                body = httpx.get(
                    f"{api}/v1/indicators/ci_outage_count",
                    params={"window": "day", "ci": "db-01", "start": started.isoformat()},
                    timeout=10,
                ).json()
                return sum(p["value"] or 0 for p in body.get("points", []))

            wait_until(
                lambda: outages() == 1,
                timeout=120,
                what="the Alertmanager alert counted as an outage of db-01",
                diagnostics=diagnostics,
            )
            assert not receiver.alerts("HostDown", "firing"), (
                "an infrastructure alert paged the SRE"
            )
        finally:
            am.terminate()
            am.wait(20)
            receiver.server.shutdown()
