"""The store on real PostgreSQL: every entity kind projected, dirty marks placed, and the same
events in any order, batching and duplication giving identical results (SPEC §4)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.engine import Engine

from services.collector.projections.registry import PROJECTIONS
from shared.db import make_engine
from shared.dirty import merge_spans
from shared.windows import windows_overlapping
from tests.conftest import Postgres
from tests.helpers import FIXTURES_NOW, aggregate, store, ticket_event, utc

T0 = utc(2026, 10, 5, 9)
# The property test runs close to the aggregator's (fixed) now: open tickets and outages count in
# every window until now, and a short way to now keeps each example fast. Only relations between
# runs are checked.
RECENT = FIXTURES_NOW - timedelta(days=1)


def event(
    event_type: str, minutes: float, event_id: str, *, base: datetime = T0, **data: Any
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "test://store",
        "type": event_type,
        "time": (base + timedelta(minutes=minutes)).isoformat(),
        "data": data,
    }


def rows(engine: Engine, table: str, order: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        result = conn.execute(text(f"SELECT * FROM {table} ORDER BY {order}"))
        return [
            {
                k: v
                for k, v in r._mapping.items()
                if k not in ("updated_at", "computed_at", "version", "pending")
            }
            for r in result
        ]


def test_every_kind_lands_in_its_projection(engine: Engine) -> None:
    store(
        engine,
        [
            event("itsm.change.requested", 0, "c1", change_id="CHG1", change_type="emergency"),
            event(
                "itsm.config.ci.upserted", 1, "ci1", ci_id="db1", services=["erp"], critical=True
            ),
            event(
                "itsm.config.audit.completed",
                2,
                "au1",
                audit_id="AU1",
                cis_checked=10,
                discrepancies=1,
            ),
            event(
                "itsm.monitor.alert.firing",
                3,
                "al1",
                alert_id="AL1",
                ci_id="db1",
                severity="critical",
            ),
            event("itsm.monitor.check.registered", 4, "k1", check_id="K1", ci_id="db1"),
            event("itsm.servicedesk.call.completed", 5, "call1", call_id="CALL1", answered=False),
            event("itsm.feedback.survey.completed", 6, "s1", survey_id="S1", score=5),
            event("itsm.knowledge.article.published", 7, "kb1", article_id="KB1"),
            event(
                "itsm.measurement.recorded",
                8,
                "m1",
                indicator="training_hours",
                value=12.5,
                period_start="2026-10-01T00:00:00Z",
                period_end="2026-10-03T00:00:00Z",
            ),
            ticket_event("INC1", T0, "new"),
        ],
    )
    for kind, proj in PROJECTIONS.items():
        assert len(rows(engine, proj.table.name, proj.key)) == 1, kind
    [m] = rows(engine, "measurements", "id")
    assert (m["indicator"], m["value"], m["recorded_at"]) == (
        "training_hours",
        12.5,
        T0 + timedelta(minutes=8),
    )
    [al] = rows(engine, "alerts", "alert_id")
    assert (al["outage"], al["ended_at"]) == (True, None)


def dirty_days(engine: Engine) -> set[str]:
    """The day windows the pending dirty marks stand for (as the aggregator expands them)."""
    with engine.connect() as conn:
        ranges = conn.execute(text("SELECT range_start, range_end FROM dirty_windows")).all()
    return {
        start.date().isoformat()
        for a, b in merge_spans([(r.range_start, r.range_end) for r in ranges])
        for _, start in windows_overlapping(a, b, ZoneInfo("UTC"), ("day",))
    }


def test_a_measurement_marks_every_day_of_its_period(engine: Engine) -> None:
    store(
        engine,
        [
            event(
                "itsm.measurement.recorded",
                0,
                "m2",
                indicator="staffing",
                value=3,
                period_start="2026-09-29T12:00:00Z",
                period_end="2026-10-01T12:00:00Z",
            )
        ],
    )
    # the period overlaps 09-29, 09-30 and 10-01; the event itself is on 10-05
    assert dirty_days(engine) == {"2026-09-29", "2026-09-30", "2026-10-01", "2026-10-05"}


def test_a_resolved_outage_marks_the_days_it_spans(engine: Engine) -> None:
    store(
        engine,
        [
            event(
                "itsm.monitor.alert.firing",
                0,
                "a1",
                alert_id="A",
                severity="critical",
                started_at="2026-10-03T22:00:00Z",
                ended_at="2026-10-05T01:00:00Z",
            ),
            event("itsm.monitor.alert.resolved", 1, "a2", alert_id="A"),
        ],
    )
    assert dirty_days(engine) == {"2026-10-03", "2026-10-04", "2026-10-05"}


# --- any order, any duplicates, any batching: same projections ---------------------------------
ENTITY_EVENTS = st.one_of(
    st.builds(
        lambda tid, state, minute, group, prio: (
            "itsm.ticket.updated",
            minute,
            {
                "ticket_id": tid,
                "state": state,
                **({"assignment_group": group} if group else {}),
                **({"priority": prio} if prio else {}),
            },
        ),
        st.sampled_from(["T1", "T2", "T3"]),
        st.sampled_from(["new", "assigned", "in_progress", "pending", "resolved", "closed"]),
        st.integers(0, 600),
        st.sampled_from([None, "desk", "network"]),
        st.sampled_from([None, 1, 3]),
    ),
    st.builds(
        lambda verb, minute: (f"itsm.change.{verb}", minute, {"change_id": "C1"}),
        st.sampled_from(["requested", "approved", "implemented", "closed"]),
        st.integers(0, 600),
    ),
    st.builds(
        lambda verb, minute: (
            f"itsm.monitor.alert.{verb}",
            minute,
            {"alert_id": "AL1", "severity": "critical"},
        ),
        st.sampled_from(["firing", "resolved"]),
        st.integers(0, 600),
    ),
    st.builds(
        lambda verb, minute, crit: (
            f"itsm.config.ci.{verb}",
            minute,
            {"ci_id": "CI1", "critical": crit},
        ),
        st.sampled_from(["upserted", "upserted", "deleted"]),
        st.integers(0, 600),
        st.booleans(),
    ),
    st.builds(
        lambda verb, minute, svc: (
            f"itsm.knowledge.article.{verb}",
            minute,
            {"article_id": "KB1", "service": svc},
        ),
        st.sampled_from(["published", "updated", "retired"]),
        st.integers(0, 600),
        st.sampled_from(["email", "erp"]),
    ),
    st.builds(
        lambda sid, minute, score: (
            "itsm.feedback.survey.completed",
            minute,
            {"survey_id": sid, "ticket_id": "T1", "service": "email", "score": score},
        ),
        st.sampled_from(["S1", "S2"]),
        st.integers(0, 600),
        st.integers(1, 5),
    ),
    st.builds(
        lambda minute, length, value: (
            "itsm.measurement.recorded",
            minute,
            {
                "indicator": "training_hours",
                "value": value,
                "service": "email",
                "period_start": (RECENT + timedelta(minutes=minute)).isoformat(),
                "period_end": (RECENT + timedelta(minutes=minute + length)).isoformat(),
            },
        ),
        st.integers(0, 600),
        st.integers(1, 3000),
        st.integers(0, 10),
    ),
)


@st.composite
def arrivals(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    specs = draw(st.lists(ENTITY_EVENTS, min_size=1, max_size=14))
    events = [
        event(t, minute, f"e{i}", base=RECENT, **data) for i, (t, minute, data) in enumerate(specs)
    ]
    shuffled = draw(st.permutations(events))
    dupes = draw(st.lists(st.sampled_from(events), max_size=5))
    stream = list(shuffled)
    for d in dupes:
        stream.insert(draw(st.integers(0, len(stream))), d)
    cuts = sorted(draw(st.lists(st.integers(1, len(stream)), max_size=4, unique=True)))
    batches = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    return events, [b for b in batches if b]


TABLES = {p.table.name: p.key for p in PROJECTIONS.values()} | {
    "measurements": "source, id",
    # the points as every reader sees them: stored rows plus pending differences
    "indicator_points": "indicator, window_kind, window_start, dimensions",
}


@pytest.fixture(scope="module")
def scratch(postgres: Postgres) -> Iterator[Engine]:
    eng = make_engine(postgres.fresh())
    yield eng
    eng.dispose()


def snapshot(engine: Engine) -> dict[str, Any]:
    aggregate(engine)
    return {t: rows(engine, t, order) for t, order in TABLES.items()}


def reset(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "TRUNCATE events, dirty_windows, window_queue, indicator_partials, partial_days, "
                "indicator_values, indicator_pending, "
                + ", ".join(t for t in TABLES if t != "indicator_points")
            )
        )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrivals())
def test_any_arrival_order_and_duplicates_give_identical_projections(
    scratch: Engine, case: tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]
) -> None:
    events, batches = case
    reset(scratch)
    store(scratch, events)  # in order, once, one batch
    expected = snapshot(scratch)
    reset(scratch)
    for batch in batches:  # shuffled, duplicated, in several batches, aggregated after each
        store(scratch, batch)
        aggregate(scratch)  # on the same fixed clock as the single run: nothing moved meanwhile
    assert snapshot(scratch) == expected
