"""Per-engineer values (issue 11's team review; SPEC §8: never labels): `assignee` is a private
dimension, computed at query time by the same statement, never stored, never in /metrics,
hand-computed."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from services.aggregator.indicators import PRIVATE_DIMENSIONS, Indicator, all_indicators
from services.aggregator.per_engineer import TEAM_KPIS, per_engineer
from services.aggregator.policy import stored_groupings
from services.aggregator.snapshot import render
from services.catalog import CatalogCache, active_catalog, apply_catalog
from shared.errors import InvalidRequest
from shared.windows import WINDOW_KINDS
from tests.helpers import UTC_TZ, aggregate, store, ticket_event, utc

CATALOG = """
customers: [{id: acme}]
services: [{id: email, customer: acme}]
sla_policies:
  - {id: all, service: "*", priorities: [1, 2, 3, 4], response_target: 1h, resolution_target: 2h}
"""
DAY = (utc(2026, 10, 5), utc(2026, 10, 6))


def t(h: int, m: int = 0) -> object:
    return utc(2026, 10, 5, h, m)


@pytest.fixture
def team(engine: Engine) -> Engine:
    """Desk: alice resolves A1 (1 h) and A2 (resolved, reopened, resolved again: 1 h 45 min);
    bob resolves B1 (3 h, past its 2 h target) and leaves B2 open past its target. Carol, of
    the network group, resolves N1."""
    with engine.begin() as conn:
        apply_catalog(conn, CATALOG, "team.yaml")
    e = ticket_event
    desk = {"service": "email", "priority": 2, "assignment_group": "desk"}
    store(
        engine,
        [
            e("A1", t(9), "new", assignee="alice", **desk),
            e("A1", t(10), "resolved"),
            e("A2", t(9), "new", assignee="alice", **desk),
            e("A2", t(10), "resolved"),
            e("A2", t(10, 15), "in_progress", event_type="itsm.ticket.reopened"),
            e("A2", t(10, 45), "resolved"),
            e("B1", t(9), "new", assignee="bob", **desk),
            e("B1", t(12), "resolved"),
            e("B2", t(9, 30), "new", assignee="bob", **desk),
            e("N1", t(9), "new", assignee="carol", service="email", assignment_group="network"),
            e("N1", t(9, 30), "resolved"),
        ],
    )
    aggregate(engine)
    return engine


def test_per_engineer_summary_of_a_team(team: Engine) -> None:
    with team.connect() as conn:
        got = per_engineer(
            conn, active_catalog(conn), TEAM_KPIS, DAY, {"assignment_group": "desk"}, tz=UTC_TZ
        )
    assert set(got) == {"alice", "bob"}  # carol is of another group
    alice, bob = got["alice"], got["bob"]
    assert (alice["ticket_resolved_count"].value, bob["ticket_resolved_count"].value) == (2, 1)
    # alice: 3600 s and 6300 s (to the last resolution): mean 4950, p90 3600 + 0.9 × 2700
    res = alice["incident_resolution_time_seconds"]
    assert (res.value, res.count) == (4950.0, 2)
    assert (res.p50, res.p90) == (pytest.approx(4950.0), pytest.approx(6030.0))
    assert bob["incident_resolution_time_seconds"].value == 10800.0
    # SLA resolution (2 h): alice met both; bob breached B1 (resolved after 3 h) and B2 (open
    # past its target, decided where it passed)
    assert alice["incident_sla_resolution_met_ratio"].value == 1.0
    sla = bob["incident_sla_resolution_met_ratio"]
    assert (sla.value, sla.count) == (0.0, 2)
    # reopen ratio: A2 of alice's two; none of bob's one
    assert alice["incident_reopen_ratio"].value == 0.5
    assert bob["incident_reopen_ratio"].value == 0.0
    assert alice["ticket_resolved_count"].dimensions == {
        "assignee": "alice",
        "assignment_group": "desk",
    }


def test_per_engineer_refuses_what_it_cannot_answer(team: Engine) -> None:
    with team.connect() as conn:
        catalog = active_catalog(conn)
        with pytest.raises(InvalidRequest, match="no per-engineer values"):
            per_engineer(conn, catalog, ["change_count"], DAY, tz=UTC_TZ)
        with pytest.raises(InvalidRequest, match="has no dimension ci"):
            per_engineer(conn, catalog, ["ticket_resolved_count"], DAY, {"ci": "x"}, tz=UTC_TZ)


def private(ind: Indicator) -> set[str]:
    return set(ind.private_dimensions)


def test_assignee_is_never_a_stored_grouping() -> None:
    indicators = all_indicators()
    assert {i.id for i in indicators if "assignee" in private(i)} >= set(TEAM_KPIS)
    for ind in indicators:
        assert not PRIVATE_DIMENSIONS & set(ind.all_dimensions), ind.id
        for kind in WINDOW_KINDS:
            for grouping in stored_groupings(ind, kind):
                assert not PRIVATE_DIMENSIONS & set(grouping), (ind.id, kind, grouping)


def test_an_indicator_cannot_declare_another_private_dimension() -> None:
    [ind] = [i for i in all_indicators() if i.id == "ticket_resolved_count"]
    with pytest.raises(ValueError, match="private dimensions"):
        Indicator(**{**ind.__dict__, "private_dimensions": ("customer_email",)})
    with pytest.raises(ValueError, match="private dimensions"):
        Indicator(**{**ind.__dict__, "dimensions": ("assignee",), "private_dimensions": ()})


def test_per_engineer_values_are_neither_stored_nor_exposed(team: Engine) -> None:
    with team.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT count(*) FROM indicator_points "
                "WHERE dim_keys LIKE '%assignee%' OR dimensions ? 'assignee'"
            )
        ).scalar_one()
        partials = conn.execute(
            text("SELECT count(*) FROM indicator_partials WHERE dimensions ? 'assignee'")
        ).scalar_one()
    assert (stored, partials) == (0, 0)
    # the /metrics snapshot of that day: no assignee label, no engineer's name anywhere
    body = render(team, UTC_TZ, CatalogCache(), lambda: utc(2026, 10, 5, 18)).body.decode()
    assert "itsm_ticket_resolved_count{" in body
    assert "assignee" not in body
    assert not any(name in body for name in ("alice", "bob", "carol"))
