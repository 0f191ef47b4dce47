"""`itsm-metrics simulate`: produces the simulated organisation's event stream
(`services.local.simulation`, pure) to Kafka as CloudEvents, each when it comes due."""

from __future__ import annotations

import json
import logging
import random
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

# The systems a company's events come from (SPEC §3: `source`), by event type: monitoring,
# the contact centre's telephony and the team leads' own figures beside the ITSM tool, which
# sends tickets, changes, the CMDB and its audits, knowledge and surveys.
SOURCES = {
    "itsm.monitor.": "zabbix://sim-monitoring",
    "itsm.servicedesk.": "telephony://sim-contact-centre",
    "itsm.measurement.": "workforce://sim-team-leads",
}
ITSM_TOOL = "servicenow://sim-itsm"


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
    *, rate: float, seed: int | None, catalog: Catalog | None, start: datetime
) -> Iterator[tuple[datetime, dict[str, Any]]]:
    """(time, CloudEvent) of the simulated company from `start` on, endless, in time order. The
    ids carry a run id, which keeps two runs with the same seed apart in one database (ids are
    the dedup key)."""
    run = uuid.uuid4().hex[:6].upper()
    sim = Simulation(random.Random(seed), company(catalog), start=start, rate=rate, run=run)
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
) -> int:
    """Produce simulated events to Kafka until `stop` or `duration`; returns events produced."""
    from kafka import KafkaProducer

    from shared.kafka import check_reachable, producer_config

    check_reachable(settings.require_kafka())
    producer = KafkaProducer(**producer_config(settings))
    stop = stop or threading.Event()
    start = datetime.now(UTC)
    produced = 0
    next_report = time.monotonic() + 30
    try:
        for at, value in company_events(rate=rate, seed=seed, catalog=catalog, start=start):
            wait = (at - datetime.now(UTC)).total_seconds()
            if duration is not None:
                wait = min(wait, duration - (datetime.now(UTC) - start).total_seconds())
            if wait > 0 and stop.wait(wait):
                break
            if duration is not None and (at - start).total_seconds() >= duration:
                break
            producer.send(
                settings.topic(EVENT_TYPES[value["type"]].topic),
                key=value["subject"].encode(),
                value=json.dumps(value).encode(),
            )
            produced += 1
            if time.monotonic() >= next_report:
                log.info("simulating", extra={"events": produced})
                next_report = time.monotonic() + 30
    finally:
        producer.flush(timeout=10)
        producer.close(timeout=5)
    return produced


def past_events(
    *,
    rate: float,
    seconds: float,
    seed: int | None = None,
    catalog: Catalog | None = None,
    now: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """The CloudEvents of the simulated company's last `seconds` up to `now`, in time order, at
    once (no waiting): a history to inspect or to load with `itsm-metrics replay`."""
    end = now or datetime.now(UTC)
    start = end - timedelta(seconds=seconds)
    for at, value in company_events(rate=rate, seed=seed, catalog=catalog, start=start):
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
