"""The simulated event stream of `make run` keeps to the contract (SPEC §3)."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy.engine import Engine

from services.local.simulate import SERVICES, cloudevent, lifecycle, measurements
from shared.events import validate_event
from tests.helpers import aggregate, points, store, utc


def test_every_simulated_ticket_event_validates() -> None:
    rng = random.Random(7)
    start = utc(2026, 10, 5, 9)
    for n in range(200):
        for step, (offset, etype, data) in enumerate(lifecycle(rng, f"SIM-{n}")):
            event = cloudevent(etype, data, start + timedelta(seconds=offset), step + 1)
            assert validate_event(event).type == etype


def test_simulated_measurements_validate_and_become_custom_indicators(engine: Engine) -> None:
    rng = random.Random(3)
    events = measurements(rng, utc(2026, 10, 5, 9), utc(2026, 10, 5, 9, 1))
    assert len(events) == 2 * len(SERVICES)
    for e in events:
        validate_event(e)
    store(engine, events)
    aggregate(engine)
    hours = sum(e["data"]["value"] for e in events if e["data"]["indicator"] == "training_hours")
    got = points(engine, "training_hours", "hour", utc(2026, 10, 5, 9))
    assert got is not None
    assert round(got["value"], 6) == round(hours, 6)
    assert got["count"] == len(SERVICES)
