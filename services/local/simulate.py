"""`itsm-metrics simulate`: produces the simulated organisation's event stream
(`services.local.simulation`, pure) to Kafka as CloudEvents, each when it comes due; its weeks
of history (`--history`) at once, first, with progress on stderr."""

from __future__ import annotations

import json
import logging
import random
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from services.catalog import Catalog
from services.local.company import company
from services.local.simulation import SimEvent, Simulation
from shared.events import EVENT_TYPES
from shared.settings import Settings

log = logging.getLogger("itsm.simulate")

WEEK_SECONDS = 7 * 86400.0
# The systems a company's events come from (SPEC §3: `source`), by event type: monitoring,
# the contact centre's telephony and the team leads' own figures beside the ITSM tool, which
# sends tickets, changes, the CMDB and its audits, knowledge and surveys.
SOURCES = {
    "itsm.monitor.": "zabbix://sim-monitoring",
    "itsm.servicedesk.": "telephony://sim-contact-centre",
    "itsm.measurement.": "workforce://sim-team-leads",
}
ITSM_TOOL = "servicenow://sim-itsm"
PROGRESS_SECONDS = 5.0
HISTORY_BATCHES = {"batch_size": 256 * 1024, "linger_ms": 50}


def source_of(event_type: str) -> str:
    return next((s for p, s in SOURCES.items() if event_type.startswith(p)), ITSM_TOOL)


def cloudevent(event: SimEvent, event_id: str) -> dict[str, Any]:
    """The structured-mode CloudEvent of a simulated event (SPEC §3)."""
    id_field = EVENT_TYPES[event.type].id_field
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": source_of(event.type),
        "type": event.type,
        "time": event.time.isoformat(),
        "subject": str(event.data[id_field]),
        "datacontenttype": "application/json",
        "data": event.data,
    }


def company_events(
    *,
    rate: float,
    seed: int | None,
    catalog: Catalog | None,
    start: datetime,
    history: float = 0.0,
) -> Iterator[tuple[datetime, dict[str, Any]]]:
    """(time, CloudEvent) of the simulated company from `start` on, endless, in time order,
    after `history` seconds before `start` at the quieter history pace. The ids carry a run id,
    which keeps two runs with the same seed apart in one database (ids are the dedup key)."""
    run = uuid.uuid4().hex[:6].upper()
    sim = Simulation(
        random.Random(seed), company(catalog), start=start, rate=rate, run=run, history=history
    )
    for n, event in enumerate(sim.events(), start=1):
        yield event.time, cloudevent(event, f"{run}-{n}")


def run_simulation(
    settings: Settings,
    *,
    rate: float,
    duration: float | None = None,
    seed: int | None = None,
    catalog: Catalog | None = None,
    stop: threading.Event | None = None,
    history: float = 0.0,
    out: IO[str] = sys.stderr,
) -> int:
    """Produce simulated events to Kafka until `stop` or `duration` (seconds of the live
    stream); returns events produced. `history` seconds before now are produced first, at
    once, with progress on `out`; when the settings name the database, how far the collector
    has stored them and the aggregator computed their windows is reported too."""
    from kafka import KafkaProducer

    from shared.kafka import check_reachable, producer_config

    check_reachable(settings.require_kafka())
    # Larger batches, a little longer: the history's weeks go out in a few hundred requests
    producer = KafkaProducer(**{**producer_config(settings), **HISTORY_BATCHES})
    stop = stop or threading.Event()
    start = datetime.now(UTC)
    produced = 0
    backfill = History(out, history) if history > 0 else None
    next_report = time.monotonic() + 30
    try:
        events = company_events(rate=rate, seed=seed, catalog=catalog, start=start, history=history)
        for at, value in events:
            if backfill is not None and at < start:
                _send(producer, settings, value).add_callback(backfill.acked)
                backfill.produced()
                if stop.is_set():
                    break
                continue
            if backfill is not None:  # the first live event: the history is out
                producer.flush(timeout=60)
                backfill.done(settings, start, stop)
                backfill = None
            wait = (at - datetime.now(UTC)).total_seconds()
            if duration is not None:
                wait = min(wait, duration - (datetime.now(UTC) - start).total_seconds())
            if wait > 0 and stop.wait(wait):
                break
            if duration is not None and (at - start).total_seconds() >= duration:
                break
            _send(producer, settings, value)
            produced += 1
            if time.monotonic() >= next_report:
                log.info("simulating", extra={"events": produced})
                next_report = time.monotonic() + 30
    finally:
        producer.flush(timeout=10)
        producer.close(timeout=5)
    return produced


def _send(producer: Any, settings: Settings, value: dict[str, Any]) -> Any:
    return producer.send(
        settings.topic(EVENT_TYPES[value["type"]].topic),
        key=value["subject"].encode(),
        value=json.dumps(value).encode(),
    )


class History:
    """The history's progress on `out`: events produced and acknowledged, then (in a thread of
    its own, when the database is known) stored by the collector and computed by the
    aggregator."""

    def __init__(self, out: IO[str], seconds: float) -> None:
        weeks = seconds / WEEK_SECONDS
        self.out, self.weeks = out, f"{weeks:g} week{'' if weeks == 1 else 's'}"
        self.started = self.last = time.monotonic()
        self.sent = self.acks = 0
        self._lock = threading.Lock()
        self.say(f"history: generating {self.weeks} of the simulated company ...")

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def produced(self) -> None:
        self.sent += 1
        if time.monotonic() - self.last >= PROGRESS_SECONDS:
            self.last = time.monotonic()
            self.say(f"history: {self.sent:,} events produced")

    def acked(self, _metadata: Any) -> None:  # the producer's I/O thread
        with self._lock:
            self.acks += 1

    def done(self, settings: Settings, live: datetime, stop: threading.Event) -> None:
        took = time.monotonic() - self.started
        self.say(
            f"history: {self.weeks}, {self.acks:,} of {self.sent:,} events produced "
            f"and acknowledged in {took:.1f} s; the simulation goes on live"
        )
        if settings.database_url:
            watch = threading.Thread(
                target=self.watch, args=(settings.database_url, live, stop), daemon=True
            )
            watch.start()

    def watch(self, db_url: str, live: datetime, stop: threading.Event) -> None:
        """Report until every history event is stored and no window of the history (ending
        by `live`) that they marked waits in the aggregator's queue."""
        from shared.db import make_engine

        engine = make_engine(db_url, pool_size=1)
        stored_at: datetime | None = None  # the database's clock when all were stored
        try:
            while not stop.wait(1.0):
                with engine.connect() as conn:
                    stored, left, now = history_state(conn, live, stored_at)
                took = time.monotonic() - self.started
                if stored_at is None and stored >= self.acks:
                    stored_at = now
                    self.say(f"history: all {stored:,} events stored {took:.0f} s after start")
                elif stored_at is not None and left == 0:
                    self.say(f"history: its windows computed {took:.0f} s after start")
                    return
                if time.monotonic() - self.last >= PROGRESS_SECONDS:
                    self.last = time.monotonic()
                    self.say(
                        f"history: {stored:,} of {self.acks:,} events stored, "
                        f"{left:,} windows to compute"
                    )
        except Exception as err:  # progress only: never stop the simulation for it
            log.warning("history progress unavailable", extra={"error": str(err)})
        finally:
            engine.dispose()


def history_state(conn: Any, live: datetime, stored_at: datetime | None) -> tuple[int, int, Any]:
    """(events before `live` stored, windows of the history still to compute, the database's
    clock). Before `stored_at`, every queued window ending by `live` counts; after, only those
    marked by events received by then (a live ticket recorded late marks past windows anew)."""
    from sqlalchemy import text

    row = conn.execute(
        text(
            """
            SELECT (SELECT count(*) FROM events WHERE time < :live),
                   (SELECT count(*) FROM window_queue
                    WHERE parked_at IS NULL AND window_end <= :live
                      AND first_received_at <= coalesce(CAST(:stored_at AS timestamptz),
                                                        'infinity'))
                   + (SELECT count(*) FROM dirty_windows
                      WHERE first_received_at <= coalesce(CAST(:stored_at AS timestamptz),
                                                          'infinity')),
                   now()
            """
        ),
        {"live": live, "stored_at": stored_at},
    ).one()
    return int(row[0]), int(row[1]), row[2]


def first_start_weeks(db_url: str, weeks: float) -> float:
    """Weeks of history for `up` to simulate: `weeks` on a database without any event (the
    first start), none on a restart (its data has a history of its own)."""
    from sqlalchemy import text

    from shared.db import make_engine

    if weeks <= 0:
        return 0.0
    engine = make_engine(db_url, pool_size=1)
    try:
        with engine.connect() as conn:
            has_events = conn.execute(text("SELECT EXISTS (SELECT 1 FROM events)")).scalar()
    finally:
        engine.dispose()
    return 0.0 if has_events else weeks


def past_events(
    *,
    rate: float,
    seconds: float,
    seed: int | None = None,
    catalog: Catalog | None = None,
    now: datetime | None = None,
    history: float = 0.0,
) -> Iterator[dict[str, Any]]:
    """The CloudEvents of the simulated company's last `seconds` (at `rate`) up to `now`, after
    `history` seconds before them at the history pace, in time order, at once (no waiting): a
    history to inspect or to load with `itsm-metrics replay`."""
    end = now or datetime.now(UTC)
    start = end - timedelta(seconds=seconds)
    events = company_events(rate=rate, seed=seed, catalog=catalog, start=start, history=history)
    for at, value in events:
        if at >= end:
            return
        yield value


def write_simulation(out: IO[str], events: Iterator[dict[str, Any]]) -> int:
    """Write events as JSON Lines (what `itsm-metrics replay` reads); returns how many, with a
    progress line every 100,000."""
    written = 0
    for value in events:
        out.write(json.dumps(value, separators=(",", ":")) + "\n")
        written += 1
        if written % 100_000 == 0:
            log.info("simulating to a file", extra={"events": written})
    return written
