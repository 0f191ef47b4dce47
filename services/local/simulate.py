"""A simulated ITSM event stream: tickets opened at a steady rate that walk through realistic
lifecycles (assignment, work, pauses, reassignments, resolution, closure, the odd reopen), in
compressed time so that a few minutes of `make run` show every indicator moving.

`lifecycle()` is pure (seeded random in, timed snapshots out); `run_simulation` produces them."""

from __future__ import annotations

import heapq
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from shared.settings import Settings

log = logging.getLogger("itsm.simulate")

SOURCE = "simulator://itsm-metrics"
SERVICES = {  # service → relative ticket volume
    "email": 5,
    "erp": 3,
    "crm": 2,
    "network": 3,
    "hr-portal": 1,
    "vpn": 2,
}
GROUPS = ["service-desk", "network-ops", "apps-support", "infra"]
CHANNELS = ["portal", "email", "phone", "chat", "monitoring"]
PRIORITY_WEIGHTS = {1: 2, 2: 10, 3: 48, 4: 40}
KIND_WEIGHTS = {"incident": 70, "service_request": 27, "problem": 3}


def _pick(rng: random.Random, weights: dict[Any, int]) -> Any:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def lifecycle(rng: random.Random, ticket_id: str) -> Iterator[tuple[float, str, dict[str, Any]]]:
    """(seconds after opening, event type, data snapshot) for one ticket's life."""
    priority = _pick(rng, PRIORITY_WEIGHTS)
    base = {
        "ticket_id": ticket_id,
        "kind": _pick(rng, KIND_WEIGHTS),
        "service": _pick(rng, SERVICES),
        "priority": priority,
        "channel": rng.choice(CHANNELS),
        "major": priority == 1 and rng.random() < 0.3,
    }
    speed = {1: 0.3, 2: 0.6, 3: 1.0, 4: 1.5}[priority]
    t = 0.0
    yield t, "itsm.ticket.created", {**base, "state": "new"}
    t += rng.uniform(1, 15) * speed
    group = rng.choice(GROUPS)
    yield t, "itsm.ticket.updated", {**base, "state": "assigned", "assignment_group": group}
    if rng.random() < 0.15:  # dispatched to the wrong team first
        t += rng.uniform(2, 20)
        group = rng.choice([g for g in GROUPS if g != group])
        yield t, "itsm.ticket.updated", {**base, "state": "assigned", "assignment_group": group}
    t += rng.uniform(1, 10)
    yield t, "itsm.ticket.updated", {**base, "state": "in_progress", "assignment_group": group}
    if rng.random() < 0.2:  # waiting for the caller
        t += rng.uniform(5, 30)
        yield t, "itsm.ticket.updated", {**base, "state": "pending", "assignment_group": group}
        t += rng.uniform(10, 60)
        yield t, "itsm.ticket.updated", {**base, "state": "in_progress", "assignment_group": group}
    t += rng.expovariate(1 / 60) * speed + 5
    yield t, "itsm.ticket.resolved", {**base, "state": "resolved", "assignment_group": group}
    if rng.random() < 0.05:  # the fix did not hold
        t += rng.uniform(10, 60)
        yield t, "itsm.ticket.reopened", {**base, "state": "in_progress", "assignment_group": group}
        t += rng.uniform(20, 90)
        yield t, "itsm.ticket.resolved", {**base, "state": "resolved", "assignment_group": group}
    t += rng.uniform(30, 120)
    yield t, "itsm.ticket.closed", {**base, "state": "closed", "assignment_group": group}


def cloudevent(event_type: str, data: dict[str, Any], when: datetime, seq: int) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": SOURCE,
        "type": event_type,
        "time": when.isoformat(),
        "subject": data["ticket_id"],
        "datacontenttype": "application/json",
        "data": {**data, "sequence": seq},
    }


MEASURE_EVERY_S = 60.0


def measurements(rng: random.Random, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Custom measurements of [start, end) per service (SPEC §3.5): training hours delivered
    (a `sum` in the example catalog) and the staffing level (a `mean`)."""
    out = []
    for service in SERVICES:
        for indicator, unit, value in (
            ("training_hours", "hours", round(rng.uniform(0, 2), 2)),
            ("staffing_level", "people", rng.randint(3, 8)),
        ):
            out.append(
                {
                    "specversion": "1.0",
                    "id": str(uuid.uuid4()),
                    "source": SOURCE,
                    "type": "itsm.measurement.recorded",
                    "time": end.isoformat(),
                    "datacontenttype": "application/json",
                    "data": {
                        "indicator": indicator,
                        "value": value,
                        "unit": unit,
                        "service": service,
                        "period_start": start.isoformat(),
                        "period_end": end.isoformat(),
                    },
                }
            )
    return out


def run_simulation(
    settings: Settings,
    *,
    rate: float,
    duration: float | None = None,
    seed: int | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Produce simulated events to Kafka until `stop` or `duration`; returns events produced."""
    from kafka import KafkaProducer

    from shared.kafka import check_reachable, producer_config

    check_reachable(settings.require_kafka())
    producer = KafkaProducer(**producer_config(settings))
    rng = random.Random(seed)
    stop = stop or threading.Event()
    topic = settings.topic("tickets")
    started = time.monotonic()
    prefix = uuid.uuid4().hex[:6].upper()
    due: list[tuple[float, int, str, dict[str, Any], int]] = []
    opened = produced = 0
    next_open = started
    next_report = started + 30
    next_measure, measured_since = started + MEASURE_EVERY_S, datetime.now(UTC)
    try:
        while not stop.is_set():
            now = time.monotonic()
            if duration is not None and now - started >= duration:
                break
            while next_open <= now:
                opened += 1
                ticket_id = f"SIM-{prefix}-{opened:06d}"
                for step, (offset, etype, data) in enumerate(lifecycle(rng, ticket_id)):
                    heapq.heappush(
                        due, (next_open + offset, opened * 100 + step, etype, data, step)
                    )
                next_open += rng.expovariate(rate)
            while due and due[0][0] <= now:
                _, _, etype, data, step = heapq.heappop(due)
                event = cloudevent(etype, data, datetime.now(UTC), step + 1)
                producer.send(
                    topic, key=data["ticket_id"].encode(), value=json.dumps(event).encode()
                )
                produced += 1
            if now >= next_measure:
                until = datetime.now(UTC)
                for event in measurements(rng, measured_since, until):
                    producer.send(settings.topic("feedback"), value=json.dumps(event).encode())
                    produced += 1
                next_measure, measured_since = now + MEASURE_EVERY_S, until
            if now >= next_report:
                log.info("simulating", extra={"tickets_opened": opened, "events": produced})
                next_report = now + 30
            wake = min(next_open, due[0][0] if due else next_open) - time.monotonic()
            stop.wait(max(0.0, min(wake, 0.5)))
    finally:
        producer.flush(timeout=10)
        producer.close(timeout=5)
    return produced
