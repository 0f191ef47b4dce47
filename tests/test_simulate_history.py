"""The simulated company's history (issue 13: `--history WEEKS`): weeks before the live stream
at a quieter, realistic pace with stretched lifecycles, one company throughout, only at the first
start of `up`; and a simulation whose memory does not grow with time (long-running incidents
capped, recent problems and published articles bounded)."""

from __future__ import annotations

import itertools
import random
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from statistics import median

import pytest
from sqlalchemy.engine import Engine

from services.catalog import load_catalog
from services.local import simulation
from services.local.company import cmdb, company
from services.local.simulate import (
    first_start_weeks,
    past_events,
)
from services.local.simulation import HISTORY, TRAINING_PER_HOUR, SimEvent, Simulation
from tests.helpers import store, ticket_event, utc

EXAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "catalog.example.yaml"
LIVE = utc(2026, 10, 19, 9)  # a Monday, 11:00 in Berlin
DAY = 86400.0


def simulated(
    history: float, until: datetime, *, seed: int = 7, rate: float = 0.5
) -> tuple[Simulation, list[SimEvent]]:
    sim = Simulation(
        random.Random(seed),
        company(load_catalog(EXAMPLE)),
        start=LIVE,
        rate=rate,
        run="H",
        history=history,
    )
    events = []
    for event in sim.events():
        if event.time >= until:
            break
        events.append(event)
    return sim, events


def test_the_history_runs_at_the_quieter_pace_then_live_at_the_rate_from_start() -> None:
    _, events = simulated(14 * DAY, LIVE + timedelta(hours=1))
    assert events[0].time == LIVE - timedelta(days=14)
    created = [e.time for e in events if e.type == "itsm.ticket.created"]
    per_day = sum(t < LIVE for t in created) / 14
    assert 120 < per_day < 180, per_day  # HISTORY: ~150 tickets a day
    # the live hour, at 0.5 a second on a Monday morning (busier than the week's mean)
    assert sum(t >= LIVE for t in created) > 0.5 * 3600
    # one company throughout: the CMDB is announced once, when the history begins
    # the live stream's first outage comes within a minute (the first look shows MTTR, MTBF)
    assert any(
        e.type == "itsm.monitor.alert.firing" and e.data["outage"]
        for e in events
        if LIVE <= e.time < LIVE + timedelta(minutes=1)
    )
    upserts = [e.time for e in events if e.type == "itsm.config.ci.upserted"]
    assert upserts.count(events[0].time) == len(cmdb(company(load_catalog(EXAMPLE)).services))
    assert LIVE not in upserts


def test_the_history_s_tickets_and_changes_live_longer_than_the_compressed_live_ones() -> None:
    _, events = simulated(7 * DAY, LIVE + timedelta(hours=2))
    opened: dict[str, datetime] = {}
    took: dict[bool, list[float]] = defaultdict(list)  # history? → seconds to resolve
    for e in events:
        tid = e.data.get("ticket_id")
        if e.type == "itsm.ticket.created" and "opened_at" not in e.data:
            opened[tid] = e.time
        elif e.type == "itsm.ticket.resolved" and tid in opened:
            took[opened[tid] < LIVE].append((e.time - opened.pop(tid)).total_seconds())
    # lifecycles of seconds to minutes, stretched HISTORY.lifecycle (12) times in the history
    assert median(took[True]) > 10 * median(took[False]) > 0
    assert 10 * 60 < median(took[True]) < 3 * 3600


def test_the_same_seed_gives_the_same_history() -> None:
    def stream(seed: int) -> list[SimEvent]:
        return simulated(2 * DAY, LIVE, seed=seed)[1]

    assert stream(3) == stream(3)
    assert stream(3) != stream(4)


def test_a_seed_gives_the_same_changes_and_cmdb_whatever_day_the_history_ends() -> None:
    # Office hours thin the tickets differently from another start; the other processes draw
    # from streams of their own, which that does not move.
    def changes(live: datetime) -> list[tuple[float, str, str]]:
        sim = Simulation(
            random.Random(5),
            company(load_catalog(EXAMPLE)),
            start=live,
            rate=0.5,
            run="D",
            history=3 * DAY,
        )
        return [
            ((e.time - sim.start).total_seconds(), e.type, e.data.get("outcome", ""))
            for e in itertools.takewhile(lambda e: e.time < live, sim.events())
            if e.type.startswith(("itsm.change.", "itsm.config.ci.deleted"))
        ]

    assert changes(LIVE) == changes(LIVE + timedelta(days=3, hours=7)) != []


def test_training_hours_add_up_by_the_hour_whatever_the_cadence_and_periods_join() -> None:
    _, events = simulated(7 * DAY, LIVE + timedelta(days=1), rate=0.02)
    hours: Counter[bool] = Counter()
    last_end: dict[tuple[str, str], str] = {}
    for e in events:
        if e.type != "itsm.measurement.recorded":
            continue
        key = (e.data["indicator"], e.data["service"])
        assert last_end.get(key, e.data["period_start"]) == e.data["period_start"]
        last_end[key] = e.data["period_end"]
        if e.data["indicator"] == "training_hours":
            hours[e.time <= LIVE] += e.data["value"]
    services = len(company(load_catalog(EXAMPLE)).services)
    # 6 services × 24 h × 0.07 h an hour ≈ 10 h a day, in the history (every 6 h) and live (every
    # minute) alike
    per_day = services * 24 * TRAINING_PER_HOUR
    assert abs(hours[True] / 7 - per_day) < 0.2 * per_day
    assert abs(hours[False] - per_day) < 0.2 * per_day
    assert HISTORY.measure_every == 6 * 3600


def test_long_running_incidents_open_at_once_stay_under_the_cap_and_memory_stays_flat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Half the incidents long-running, at most 5 open per priority: a P4 one stays open for two
    # weeks (its 100 office hours), so without the cap they would pile up by the hundred.
    monkeypatch.setattr(simulation, "LONG_SHARE", 0.5)
    monkeypatch.setattr(simulation, "LONG_OPEN_MAX", 5)
    monkeypatch.setattr(simulation, "ARTICLES_MAX", 6)
    sim = Simulation(
        random.Random(2), company(load_catalog(EXAMPLE)), start=LIVE, rate=0.05, run="M"
    )
    pending: dict[int, int] = {}
    for n, event in enumerate(sim.events()):
        at = (event.time - LIVE).total_seconds()
        if at >= 6 * DAY:
            break
        if n % 50:
            continue
        for closing in sim.long_open.values():
            assert sum(c > at for c in closing) <= 5
        pending[int(at // DAY)] = max(pending.get(int(at // DAY), 0), sim.pending)
        assert all(len(a) <= 6 for a in sim.articles.values())
        assert all(len(p) <= simulation.PROBLEMS_KEPT for p in sim.problems.values())
    assert sum(len(c) for c in sim.long_open.values()) >= 5  # the cap was reached
    assert pending[5] < 1.5 * pending[1], pending  # flat, not growing by the day


def test_past_events_hold_the_history_then_the_last_seconds_up_to_now() -> None:
    now = utc(2026, 10, 5, 12)
    events = list(past_events(rate=1, seconds=60, seed=1, now=now, history=DAY))
    times = [datetime.fromisoformat(e["time"]) for e in events]
    assert times[0] == now - timedelta(seconds=60 + DAY) and times[-1] < now
    assert sum(t >= now - timedelta(seconds=60) for t in times) > 30  # the live minute


def test_up_simulates_history_only_on_a_database_without_events(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    assert first_start_weeks(url, 8) == 8
    assert first_start_weeks(url, 0) == 0
    store(engine, [ticket_event("INC-1", utc(2026, 10, 5, 9), "new")])
    assert first_start_weeks(url, 8) == 0  # a restart: its data has its own history


def test_simulate_out_with_history_writes_those_weeks_at_once(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    out = tmp_path / "week.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "simulate", "--out", str(out), "--history", "0.2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = out.read_text().splitlines()
    assert f"{len(lines)} events of the last 0.2 weeks written to {out}" in done.stderr
    first, last = (datetime.fromisoformat(json.loads(x)["time"]) for x in (lines[0], lines[-1]))
    # 0.2 weeks = 33.6 h at ~150 tickets a day, up to now
    assert timedelta(hours=33) < last - first <= timedelta(hours=33.6)
    assert 1000 < len(lines) < 3000
