"""Projections of every entity kind other than tickets (SPEC §3.2–3.5), hand-computed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.collector.projections import Record
from services.collector.projections.changes import project_change
from services.collector.projections.config import project_audit, project_ci
from services.collector.projections.monitoring import project_alert, project_check
from services.collector.projections.servicedesk import (
    project_article,
    project_call,
    project_survey,
)
from shared.dirty import changed_spans

T0 = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)


def rec(minutes: float, event_type: str, **data: Any) -> Record:
    return Record(
        "src",
        f"{event_type}@{minutes}",
        event_type,
        T0 + timedelta(minutes=minutes),
        data.pop("sequence", None),
        data,
    )


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# --- changes ------------------------------------------------------------------------------------
def test_change_lifecycle_is_implemented_when_the_work_ended() -> None:
    row = project_change(
        [
            rec(0, "itsm.change.requested", change_id="C1", change_type="normal", ci_ids=["db1"]),
            rec(60, "itsm.change.approved", change_id="C1"),
            rec(
                120,
                "itsm.change.scheduled",
                change_id="C1",
                planned_start=at(600).isoformat(),
                planned_end=at(660).isoformat(),
            ),
            rec(
                700,
                "itsm.change.implemented",
                change_id="C1",
                actual_start=at(605).isoformat(),
                actual_end=at(650).isoformat(),
                outcome="successful",
            ),
        ]
    )
    assert row["state"] == "implemented"  # no `state` field: the latest verb
    assert (row["requested_at"], row["approved_at"]) == (T0, at(60))
    assert row["approved"] is True
    assert row["implemented_at"] == at(650)  # actual_end, not the event time
    assert (row["planned_start"], row["planned_end"]) == (at(600), at(660))
    assert row["ci_ids"] == ["db1"]


def test_change_without_actual_end_is_implemented_when_reported() -> None:
    row = project_change(
        [
            rec(0, "itsm.change.requested", change_id="C2"),
            rec(30, "itsm.change.implemented", change_id="C2"),
        ]
    )
    assert row["implemented_at"] == at(30)
    assert row["approved"] is False  # never approved: an unauthorised change


def test_rejected_change_is_not_approved_nor_implemented() -> None:
    row = project_change(
        [
            rec(0, "itsm.change.requested", change_id="C3"),
            rec(5, "itsm.change.rejected", change_id="C3"),
        ]
    )
    assert (row["state"], row["approved"], row["implemented_at"]) == ("rejected", False, None)
    assert row["rejected_at"] == at(5)


def test_source_state_wins_over_the_verb() -> None:
    row = project_change([rec(0, "itsm.change.requested", change_id="C4", state="assessment")])
    assert row["state"] == "assessment"


# --- configuration ------------------------------------------------------------------------------
def test_ci_snapshot_merge_and_deletion() -> None:
    row = project_ci(
        [
            rec(
                0,
                "itsm.config.ci.upserted",
                ci_id="db1",
                ci_type="database",
                services=["erp"],
                depends_on=["host1"],
                critical=True,
            ),
            rec(10, "itsm.config.ci.upserted", ci_id="db1", name="ERP database", change_id="CHG1"),
        ]
    )
    assert (row["name"], row["services"], row["depends_on"], row["critical"]) == (
        "ERP database",
        ["erp"],
        ["host1"],
        True,
    )
    assert (row["created_at"], row["deleted_at"]) == (T0, None)
    gone = project_ci(
        [
            rec(0, "itsm.config.ci.upserted", ci_id="db1"),
            rec(20, "itsm.config.ci.deleted", ci_id="db1"),
        ]
    )
    assert gone["deleted_at"] == at(20)


def test_audit_projection() -> None:
    row = project_audit(
        [
            rec(
                5,
                "itsm.config.audit.completed",
                audit_id="A1",
                cis_checked=200,
                discrepancies=7,
                ci_ids_with_discrepancy=["x", "y"],
            )
        ]
    )
    assert (row["cis_checked"], row["discrepancies"], row["completed_at"]) == (200, 7, at(5))


# --- monitoring ---------------------------------------------------------------------------------
def test_critical_alert_is_an_outage_interval() -> None:
    row = project_alert(
        [
            rec(0, "itsm.monitor.alert.firing", alert_id="AL1", ci_id="db1", severity="critical"),
            rec(45, "itsm.monitor.alert.resolved", alert_id="AL1"),
        ]
    )
    assert (row["outage"], row["state"]) == (True, "resolved")
    assert (row["started_at"], row["ended_at"]) == (T0, at(45))


def test_warning_alert_is_no_outage_unless_the_source_says_so() -> None:
    warn = project_alert([rec(0, "itsm.monitor.alert.firing", alert_id="AL2", severity="warning")])
    assert (warn["outage"], warn["state"], warn["ended_at"]) == (False, "firing", None)
    said = project_alert(
        [rec(0, "itsm.monitor.alert.firing", alert_id="AL3", severity="warning", outage=True)]
    )
    assert said["outage"] is True


def test_alert_source_times_win_and_never_go_negative() -> None:
    row = project_alert(
        [
            rec(10, "itsm.monitor.alert.firing", alert_id="AL4", started_at=at(2).isoformat()),
            rec(20, "itsm.monitor.alert.resolved", alert_id="AL4", ended_at=at(1).isoformat()),
        ]
    )
    assert (row["started_at"], row["ended_at"]) == (at(2), at(2))


def test_check_registration_and_removal() -> None:
    row = project_check(
        [
            rec(0, "itsm.monitor.check.registered", check_id="K1", ci_id="db1"),
            rec(30, "itsm.monitor.check.removed", check_id="K1"),
        ]
    )
    assert (row["registered_at"], row["removed_at"], row["ci_id"]) == (T0, at(30), "db1")


# --- service desk, feedback, knowledge ----------------------------------------------------------
def test_call_survey_article() -> None:
    call = project_call(
        [
            rec(
                3,
                "itsm.servicedesk.call.completed",
                call_id="K",
                answered=True,
                handle_seconds=240,
                ticket_id="INC1",
            )
        ]
    )
    assert (call["answered"], call["handle_seconds"], call["completed_at"]) == (True, 240, at(3))
    survey = project_survey(
        [rec(4, "itsm.feedback.survey.completed", survey_id="S", score=4, service="email")]
    )
    assert (survey["score"], survey["service"]) == (4, "email")
    art = project_article(
        [
            rec(0, "itsm.knowledge.article.published", article_id="KB1", title="Reset password"),
            rec(50, "itsm.knowledge.article.updated", article_id="KB1"),
            rec(90, "itsm.knowledge.article.retired", article_id="KB1"),
        ]
    )
    assert (art["published_at"], art["last_updated_at"], art["retired_at"]) == (T0, at(50), at(90))


# --- changed spans ------------------------------------------------------------------------------
NOW = at(1000)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # unchanged interval: nothing to mark
        ((at(0), at(10)), (at(0), at(10)), []),
        # a new interval marks all of itself; open ones until now
        (None, (at(0), at(10)), [(at(0), at(10))]),
        (None, (at(0), None), [(at(0), NOW)]),
        # open → closed: from the close to now
        ((at(0), None), (at(0), at(600)), [(at(0), at(0)), (at(600), NOW)]),
        # a late correction of the start
        ((at(5), at(10)), (at(2), at(10)), [(at(2), at(5)), (at(10), at(10))]),
        # no start: no interval
        ((None, None), (None, None), []),
    ],
)
def test_changed_spans(old: Any, new: Any, expected: list[Any]) -> None:
    assert changed_spans(old, new, NOW) == expected


def test_a_ticket_moved_to_another_dimension_value_marks_its_whole_open_span() -> None:
    """Every dimension a ticket state (the backlog) is grouped by is a `dims` column of the
    ticket projection: a ticket whose channel changed moves in the backlog of every hour it was
    open (found by tests/aggregator/test_merge.py: a late creation event bringing the channel
    left the backlog's hours under `unknown`)."""
    from services.aggregator.indicators import CUSTOMER, all_indicators
    from services.collector.projections.registry import PROJECTIONS

    grouped = {
        d
        for i in all_indicators()
        if "ticket" in i.scopes and i.span_sensitive
        for d in i.dimensions
        if d != CUSTOMER  # derived from the service
    }
    assert grouped and grouped <= set(PROJECTIONS["ticket"].dims)
