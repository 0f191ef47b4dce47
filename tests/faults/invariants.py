"""What must hold after any fault, once the services are stopped (SPEC §4): every event sent is
stored once; every projection row is what a re-fold of its entity's stored events gives; every
stored indicator value is what a full `itsm-metrics recompute --since` gives. The checks are
benchmarks/invariants.py's (the soak reports them); a test asserts they found no difference."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine

from benchmarks.invariants import projection_differences, recompute_differences, storage
from shared.settings import Settings


def assert_nothing_lost_nor_doubled(
    engine: Engine, settings: Settings, sent: set[tuple[str, str]], since: datetime
) -> None:
    """What every fault test ends with: the events sent stored once (the events table holds
    exactly the distinct events sent, and each projection counts each of its entity's events
    once), the projections as a re-fold gives them, the indicator points as a full recompute
    from `since` gives them."""
    problems = storage(engine, sent).problems()
    assert not problems, "; ".join(problems)
    mismatches = projection_differences(engine)
    assert not mismatches, f"projections differ from a re-fold of their events: {mismatches}"
    recomputed = recompute_differences(engine, settings, since)
    assert recomputed.compared > 0, "no indicator point was computed"
    assert not recomputed.differences, "stored points differ from a full recompute:\n" + "\n".join(
        str(r) for r in recomputed.differences
    )
