"""The soak (issue 14): the whole pipeline for a long while under a steady load of current,
realistic events, through a hung broker and a crashed PostgreSQL, then the question every
fault test asks, over everything sent: nothing lost, nothing twice?

    python -m benchmarks soak                                  # 20 min, 500 events/s, 16 readers
    ITSM_SOAK_SECONDS=120 ITSM_SOAK_RATE=200 python -m benchmarks soak        # a short one

The run: embedded PostgreSQL and Tansu of its own (it takes them away: external engines cannot
serve), migrated, the realistic catalog applied, `itsm-metrics collector|aggregator|api` as
processes of this checkout with their default cadences; the CMDB's 5,000 CIs and their checks
loaded first. Then for `seconds`: the realistic world's events as they happen at `rate`
(benchmarks/soak_traffic.py; ~15 % over `POST /v1/events`, a poison message in a thousand), and
`readers` client processes reading indicator series grouped by a dimension, ticket lists and
`/metrics`, each pausing half a second between two reads (readers of dashboards and review
pages; benchmarks/reads.py measures saturation). The broker hangs (SIGSTOP: this Tansu keeps
its log in memory, so a stop would lose it) for `outage` s around a third of the run,
PostgreSQL crashes (SIGQUIT) and restarts on its data `outage` s later around two thirds.
Then the drain: until every event acknowledged is stored and every ticket creation visible.
Then the services stop, and the checks of benchmarks/invariants.py run over the database.

Environment overrides: ITSM_SOAK_SECONDS, ITSM_SOAK_RATE, ITSM_SOAK_READERS,
ITSM_SOAK_OUTAGE_SECONDS, ITSM_SOAK_HTTP_SHARE, ITSM_SOAK_READ_PAUSE."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from benchmarks import invariants, reads
from benchmarks import soak_report as report
from benchmarks.faults import FreezableBroker, RestartablePostgres
from benchmarks.realistic_events import ci_events
from benchmarks.realistic_world import catalog_yaml
from benchmarks.senders import KafkaSender
from benchmarks.soak_traffic import Traffic, read_paths
from benchmarks.soak_watch import Watch, collector_counts, dead_letters
from benchmarks.stack import Stack
from services.catalog import apply_catalog
from services.local.engines import free_port
from shared.db import make_engine
from shared.kafka import ensure_topics
from shared.settings import Settings

SEED = 1
TOKEN = "soak-ingest-token"
REPORT_EVERY = 30.0  # seconds between two progress lines
# Where the services' and PostgreSQL's logs are kept (`Soak.keep_logs`).
RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Plan:
    """What a run does: its length, load and outages (keyword arguments of `run`, each
    overridden by its ITSM_SOAK_* variable, so a short run needs no code)."""

    seconds: float  # of sending
    rate: float  # events per second
    readers: int
    outage: float = 30.0  # seconds the broker hangs, and PostgreSQL is down
    http_share: float = 0.15
    read_pause: float = 0.5  # seconds a reader waits after an answer

    @classmethod
    def from_env(cls, seconds: float, rate: float, readers: int) -> Plan:
        seconds = _env("SECONDS", seconds)
        return cls(
            seconds=seconds,
            rate=_env("RATE", rate),
            readers=int(_env("READERS", readers)),
            # two outages and the time between them must fit in the run
            outage=min(_env("OUTAGE_SECONDS", cls.outage), seconds / 5),
            http_share=_env("HTTP_SHARE", cls.http_share),
            read_pause=_env("READ_PAUSE", cls.read_pause),
        )

    def faults(self) -> list[tuple[float, str]]:
        """(seconds into the run, the phase that begins then)."""
        half, third = self.outage / 2, self.seconds / 3
        return [
            (third - half, report.FROZEN),
            (third + half, report.THAWED),
            (2 * third - half, report.PG_DOWN),
            (2 * third + half, report.PG_BACK),
        ]

    def describe(self) -> str:
        at = ", ".join(f"{name} at {t:.0f} s" for t, name in self.faults())
        return (
            f"{self.seconds:.0f} s at {self.rate:,.0f} events/s ({self.http_share:.0%} over "
            f"HTTP), {self.readers} readers; {at}"
        )


def _env(name: str, default: float) -> float:
    raw = os.environ.get(f"ITSM_SOAK_{name}")
    try:
        return default if raw is None else float(raw)
    except ValueError:
        raise SystemExit(f"ITSM_SOAK_{name} must be a number (it is {raw!r})") from None


def run(seconds: float = 1200.0, rate: float = 500.0, readers: int = 16) -> dict[str, Any]:
    plan = Plan.from_env(seconds, rate, readers)
    # The soak's own producers meet the outages it makes: the client library's complaints
    # about them are expected (the soak counts what was sent again), not news to print.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    print(f"  {plan.describe()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="itsm-soak-") as tmp:
        pg = RestartablePostgres(Path(tmp) / "pgdata")
        broker = FreezableBroker(log_path=Path(tmp) / "broker.log")
        pg.start()
        try:
            broker.start()
            return Soak(plan, pg, broker, Path(tmp)).run()
        finally:
            broker.stop()
            pg.stop()


class Soak:
    """One run on engines it owns; `run()` returns the figures and the verdict."""

    def __init__(
        self, plan: Plan, pg: RestartablePostgres, broker: FreezableBroker, tmp: Path
    ) -> None:
        self.plan, self.pg, self.broker = plan, pg, broker
        url = pg.create_database("soak")
        self.settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            database_url=url,
            kafka_bootstrap_servers=broker.bootstrap,
            consumer_group="itsm-soak",
        )
        self.engine = make_engine(url)
        self.metrics_port = free_port()
        extra = {"ITSM_INGEST_TOKEN": TOKEN, "ITSM_COLLECTOR_METRICS_PORT": str(self.metrics_port)}
        self.stack = Stack(self.settings, tmp / "services.log", extra)
        self.timeline = report.Timeline()
        self.died: dict[str, str] = {}
        self.drain_s: float | None = None
        self.cmdb = 0  # events of the CMDB loaded before the soak

    def run(self) -> dict[str, Any]:
        ensure_topics(self.settings)
        with self.engine.begin() as conn:
            apply_catalog(conn, catalog_yaml(SEED), "soak.yaml")
        self.stack.start()
        try:
            self.stack.wait_ready(120)
            cmdb, since = self.load_cmdb()
            self.cmdb = len(cmdb)
            traffic, watch, read = self.soak()
            collector = collector_counts(self.metrics_port)
        finally:
            codes = self.stack.stop()
            self.keep_logs()
        print("  checking: stored once, projections re-folded, points recomputed", flush=True)
        parts = [
            self.ingest(traffic),
            report.storage_part(
                invariants.storage(self.engine, cmdb | traffic.keys),
                traffic.poison,
                dead_letters(self.engine),
                collector,
            ),
            report.lag_part(watch.lag, self.timeline),
            report.freshness_part(traffic.created, watch.seen, self.timeline),
            report.memory_part(watch.memory.mb(), watch.postgres_peak_kb),
            self.consistency(since),
            report.services_part(codes, self.died),
        ]
        self.engine.dispose()
        return self.result(parts, report.reads_part(read, self.plan.seconds, self.timeline))

    def keep_logs(self) -> None:
        """The services' and PostgreSQL's logs beside the results (the engines' directory is
        removed at the end): what to read when something went wrong."""
        RESULTS.mkdir(exist_ok=True)
        for log, name in ((self.stack.log, "services"), (self.pg.data / "server.log", "postgres")):
            if log.exists():
                shutil.copyfile(log, RESULTS / f"soak-{name}.log")

    def load_cmdb(self) -> tuple[set[tuple[str, str]], datetime]:
        """The CMDB a discovery run registered in the week before: 5,000 CIs and their checks,
        over Kafka, waited for until stored. Returns their keys, and the first instant a full
        recompute must start from to cover them."""
        now = datetime.now(UTC)
        events = list(ci_events(now, SEED))
        sender = KafkaSender(self.settings)
        started = time.monotonic()
        for i in range(0, len(events), 1000):
            while not sender.send(events[i : i + 1000]):
                pass
        sender.close()
        self._wait(lambda: self._stored() >= len(events), 180, "the CMDB stored")
        took = time.monotonic() - started
        print(f"  CMDB: {len(events):,} events stored in {took:.0f} s", flush=True)
        since = (now - timedelta(days=8)).replace(hour=0, minute=0, second=0, microsecond=0)
        return {(e["source"], e["id"]) for _, _, e in events}, since

    def soak(self) -> tuple[Traffic, Watch, list[reads.Read]]:
        """Readers, traffic and watch for the planned time through the faults, then the
        drain; the readers' reads."""
        plan = self.plan
        day0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        paths = read_paths(day0, SEED)
        with reads.client_processes(
            self.stack.url, paths, plan.seconds, plan.readers, pause=plan.read_pause
        ) as pending:
            traffic = Traffic(
                self.settings,
                self.stack.url,
                TOKEN,
                rate=plan.rate,
                http_share=plan.http_share,
                end=time.time() + plan.seconds,
                seed=SEED,
            )
            watch = Watch(self.engine, lambda: self.counts(traffic), day0, self.pg)
            self.timeline.mark(report.WARM_UP, time.monotonic())
            watch.start()
            traffic.begin()
            try:
                self.phases(traffic, watch)
                self.drain(traffic, watch)
            finally:
                watch.stop()
            read = [r for own in pending.get(timeout=120) for r in own]
        return traffic, watch, read

    def phases(self, traffic: Traffic, watch: Watch) -> None:
        """Until the planned time is over: the faults at their time, the services watched,
        a progress line every REPORT_EVERY s."""
        t0 = self.timeline.marks[0][1]
        act: dict[str, Callable[[], None]] = {
            report.FROZEN: self.broker.freeze,
            report.THAWED: self.broker.thaw,
            report.PG_DOWN: self.pg.crash,
            report.PG_BACK: self.pg.start,
        }
        faults = self.plan.faults()
        next_report = REPORT_EVERY
        while (elapsed := time.monotonic() - t0) < self.plan.seconds:
            while faults and elapsed >= faults[0][0]:
                name = faults.pop(0)[1]
                # An outage begins as it is caused (a crash takes a moment to complete), a
                # recovery once done (a restart returns when the server accepts connections).
                if name in (report.FROZEN, report.PG_DOWN):
                    self.timeline.mark(name, time.monotonic())
                act[name]()
                if name not in (report.FROZEN, report.PG_DOWN):
                    self.timeline.mark(name, time.monotonic())
                self.progress(traffic, watch)
            self.watch_recovery()
            self.watch_services()
            if elapsed >= next_report:
                self.progress(traffic, watch)
                next_report += REPORT_EVERY
            time.sleep(0.5)

    def drain(self, traffic: Traffic, watch: Watch) -> None:
        """Sending stops; wait until every event acknowledged is stored and every ticket
        creation visible to readers (`drain_s` stays None if that does not come)."""
        self.timeline.mark(report.DRAIN, time.monotonic())
        started = time.monotonic()
        timeout = max(120.0, self.plan.seconds / 4)
        traffic.finish(timeout)
        expected = self.cmdb + traffic.acknowledged
        next_report = started + REPORT_EVERY

        def drained() -> bool:
            nonlocal next_report
            self.watch_services()
            if time.monotonic() > next_report:
                self.progress(traffic, watch)
                next_report += REPORT_EVERY
            return watch.stored >= expected and watch.visible >= len(traffic.created)

        if self._wait(drained, timeout - (time.monotonic() - started), "the drain"):
            self.drain_s = round(time.monotonic() - started, 1)
        self.progress(traffic, watch)

    def progress(self, traffic: Traffic, watch: Watch) -> None:
        """One line: the phase, events sent (over HTTP), acknowledged, stored (the CMDB's
        aside), the lag of the last count, creations visible to readers."""
        t = time.monotonic()
        lag = max(0, watch.lag[-1][2] - watch.lag[-1][3]) if watch.lag else 0
        print(
            f"  [{t - self.timeline.marks[0][1]:5.0f} s] {self.timeline.phase(t):<18} "
            f"sent {sum(traffic.sent.values()):,} (http {traffic.sent['http']:,}) · "
            f"acked {traffic.acknowledged:,} · stored {max(0, watch.stored - self.cmdb):,} · "
            f"lag {lag:,} · visible {watch.visible:,} of {len(traffic.created):,} created",
            flush=True,
        )

    def counts(self, traffic: Traffic) -> tuple[int, int]:
        """Events handed to the senders and acknowledged so far, the CMDB's included."""
        acked = traffic.acknowledged  # first: never more acknowledged than handed
        return self.cmdb + sum(traffic.sent.values()), self.cmdb + acked

    def watch_recovery(self) -> None:
        """After PostgreSQL restarted: mark when the api says ready again (the end of the
        outage readers may see)."""
        restarted = self.timeline.at(report.PG_BACK) and not self.timeline.at(report.API_READY)
        if restarted and self.stack.ready():
            self.timeline.mark(report.API_READY, time.monotonic())

    def watch_services(self) -> None:
        for name, code in self.stack.exited().items():
            if name not in self.died:
                t = time.monotonic()
                self.died[name] = f"died with {code} ({self.timeline.phase(t)})"
                print(f"  {name} {self.died[name]}:\n{self.stack.tail(1500)}", flush=True)

    def ingest(self, traffic: Traffic) -> report.Part:
        http = traffic.http
        return report.ingest_part(
            traffic.sent,
            traffic.resent,
            traffic.unacked,
            http.statuses,
            {
                "connections refused": http.refused,
                "requests never answered": http.dropped,
                "503 without Retry-After": http.without_retry_after,
            },
            http.answers,
        )

    def consistency(self, since: datetime) -> report.Part:
        """The projections re-folded and every window recomputed from `since`, by an aggregator
        of this process with no slower cadence (everything computed at once)."""
        settings = self.settings.model_copy(update={"aggregator_slow_seconds": 0})
        started = time.monotonic()
        projections = invariants.projection_differences(self.engine)
        refolded = time.monotonic()
        print(f"  projections re-folded in {refolded - started:.0f} s", flush=True)
        points = invariants.recompute_differences(self.engine, settings, since)
        print(f"  every window recomputed in {time.monotonic() - refolded:.0f} s", flush=True)
        return report.consistency_part(projections, points)

    def result(self, parts: list[report.Part], reading: report.Part) -> dict[str, Any]:
        """The figures; the verdict on the data (every part but the readers'); the readers'
        problems beside it. `ok` only when neither found any."""
        plan = self.plan
        result: dict[str, Any] = {
            "seconds_sending": plan.seconds,
            "rate_per_s": plan.rate,
            "readers": plan.readers,
            "phases": self.timeline.offsets(),
            "cmdb_events": self.cmdb,
            "drain_s": self.drain_s,
        }
        failures = [] if self.drain_s is not None else ["not drained in time"]
        for figures, found in parts:
            result.update(figures)
            failures += found
        read_figures, read_problems = reading
        result.update(read_figures)
        result["read_problems"] = "; ".join(read_problems) or "none"
        result["verdict"] = report.verdict(failures)
        result["ok"] = not failures and not read_problems
        return result

    def _stored(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM events")).scalar_one())

    def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                print(f"  gave up waiting for {what} after {timeout:.0f} s", flush=True)
                return False
            time.sleep(1)
        return True
