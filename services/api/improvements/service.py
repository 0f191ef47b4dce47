"""The improvement register's operations: plain functions over a connection (the caller owns
the transaction). `verify_due` is the aggregator's scheduled verification, wired in by the CLI
(the aggregator never imports the api)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, insert, select, update

from services.aggregator.indicators import Indicator
from services.aggregator.indicators.custom import find
from services.api.improvements import measure, states
from services.api.improvements.schemas import (
    Decision,
    Evidence,
    Improvement,
    ImprovementCreate,
    ImprovementList,
    ImprovementPatch,
    Report,
    Transition,
    TransitionRequest,
)
from services.api.indicators import Reading
from services.catalog import Catalog
from shared.db import improvement_transitions, improvements
from shared.errors import Conflict, InvalidRequest, NotFound
from shared.settings import Settings

log = logging.getLogger("itsm.improvements")
ELEMENTS = ("people", "resources", "technology", "process")
_SCOPE_FIELDS = ("service", "customer", "indicator", "window")


def create(
    conn: Connection, catalog: Catalog, body: ImprovementCreate, now: datetime
) -> Improvement:
    _check_target(conn, catalog, body.indicator, body.service, body.customer)
    values = _columns(body.model_dump(exclude={"by"}, mode="json"))
    new_id = conn.execute(
        insert(improvements)
        .values(**values, state="proposed", created_at=now, updated_at=now)
        .returning(improvements.c.id)
    ).scalar_one()
    _record(conn, new_id, None, "proposed", body.by or body.owner, "", now)
    return get(conn, new_id)


def get(conn: Connection, improvement_id: int) -> Improvement:
    row = _row(conn, improvement_id)
    t = improvement_transitions.c
    history = conn.execute(
        select(t.from_state, t.to_state, t.by, t.note, t.at)
        .where(t.improvement_id == improvement_id)
        .order_by(t.id)
    ).all()
    return _model(row, [Transition(**h._mapping) for h in history])


def list_all(
    conn: Connection, *, state: str | None, service: str | None, customer: str | None
) -> ImprovementList:
    c = improvements.c
    q = select(improvements).order_by(c.id)
    if state is not None:
        if state not in states.STATES:
            raise InvalidRequest(f"state must be one of {', '.join(states.STATES)}")
        q = q.where(c.state == state)
    if service is not None:
        q = q.where(c.service == service)
    if customer is not None:
        q = q.where(c.customer == customer)
    return ImprovementList(improvements=[_model(r, None) for r in conn.execute(q)])


def update_fields(
    conn: Connection,
    catalog: Catalog,
    improvement_id: int,
    patch: ImprovementPatch,
    now: datetime,
) -> Improvement:
    row = _row(conn, improvement_id, lock=True)
    given = patch.model_dump(exclude_unset=True, mode="json")
    if row.state not in states.EDITABLE:
        raise Conflict(
            f"an improvement {row.state} cannot be edited",
            details={"state": row.state, "editable_in": sorted(states.EDITABLE)},
        )
    scoped = sorted(set(given) & set(_SCOPE_FIELDS))
    if scoped and row.state not in states.SCOPE_EDITABLE:
        raise Conflict(
            f"{', '.join(scoped)} cannot change once approved: the baseline was captured for them",
            details={"state": row.state, "fields": scoped},
        )
    required = ("title", "indicator", "window", "target", "elements", "source", "owner")
    for key in (*required, "links", "actions", "description", "verification_windows"):
        if key in given and given[key] is None:
            raise InvalidRequest(f"{key} cannot be null")
    if scoped:
        merged = {"service": row.service, "customer": row.customer, **given}
        indicator = given.get("indicator") or row.indicator
        _check_target(conn, catalog, indicator, merged["service"], merged["customer"])
    if given:
        conn.execute(
            update(improvements)
            .where(improvements.c.id == improvement_id)
            .values(**_columns(given), updated_at=now)
        )
    return get(conn, improvement_id)


def transition(
    conn: Connection,
    catalog: Catalog,
    improvement_id: int,
    req: TransitionRequest,
    now: datetime,
    reading: Reading,
) -> Improvement:
    """Move an improvement to `req.to` if its state allows it (409 with the allowed ones
    otherwise): on `approved` the baseline is captured, on `implemented` the verification
    period is set, a decision on the outcome keeps its reason."""
    row = _row(conn, improvement_id, lock=True)
    allowed = states.allowed(row.state)
    if req.to not in allowed:
        raise Conflict(
            f"an improvement {row.state} cannot become {req.to}; "
            f"allowed: {', '.join(allowed) or 'none (final state)'}",
            details={"state": row.state, "allowed": list(allowed)},
        )
    if req.by == states.SYSTEM:
        raise InvalidRequest(f"{states.SYSTEM!r} is the automatic verification: say who you are")
    if states.is_manual_decision(req.to) and not req.note.strip():
        raise InvalidRequest(f"a decision that the improvement is {req.to} needs a reason in note")
    values: dict[str, Any] = {}
    if req.to == "approved":
        ind = _indicator(conn, catalog, row.indicator)
        filters = measure.scope(row.service, row.customer)
        base = measure.baseline(conn, catalog, ind, row.window_kind, filters, now, reading)
        values["baseline"] = base.model_dump(mode="json")
    elif req.to == "implemented":
        period = states.verification_period(
            row.window_kind, now, row.verification_windows, reading.tz
        )
        values["verify_from"], values["verify_until"] = period
    elif states.is_manual_decision(req.to):
        decision = Decision(state=req.to, by=req.by, reason=req.note, at=now)
        values["decision"] = decision.model_dump(mode="json")
    _move(conn, row, req.to, req.by, req.note, now, values)
    return get(conn, improvement_id)


def verify_due(conn: Connection, catalog: Catalog, now: datetime, reading: Reading) -> int:
    """Verify the improvements whose verification period has ended (at most 100 a call): an
    `implemented` one moves to the evidence's outcome (by `system`); one a person decided on
    already keeps its state, and the evidence is recorded beside the decision."""
    c = improvements.c
    due = conn.execute(
        select(improvements)
        .where(
            c.state.in_(("implemented", *states.DECISIONS)),
            c.evidence.is_(None),
            c.verify_until <= now,
        )
        .order_by(c.id)
        .limit(100)
        .with_for_update(skip_locked=True)
    ).all()
    for row in due:
        found = measure.evidence(conn, catalog, row, now, reading)
        values = {"evidence": found.model_dump(mode="json")}
        if row.state == "implemented":
            note = "; ".join(found.reasons)
            _move(conn, row, found.outcome, states.SYSTEM, note, now, values)
        else:
            conn.execute(update(improvements).where(c.id == row.id).values(**values))
        log.info(
            "improvement verified",
            extra={"improvement": row.id, "outcome": found.outcome, "state": row.state},
        )
    return len(due)


def verifier(settings: Settings) -> Callable[[Connection, Catalog, datetime], int]:
    """`verify_due` with the settings' way of reading indicators: the aggregator's job."""
    reading = Reading(ZoneInfo(settings.reporting_timezone), settings.hour_retention_days)

    def verify(conn: Connection, catalog: Catalog, now: datetime) -> int:
        return verify_due(conn, catalog, now, reading)

    return verify


def report(conn: Connection, catalog: Catalog, improvement_id: int) -> Report:
    found = get(conn, improvement_id)
    ind = find(conn, catalog, found.indicator)
    base = found.baseline.value if found.baseline else None
    observed = found.evidence.value if found.evidence else None
    change = None if base is None or observed is None else observed - base
    return Report(
        improvement=found,
        unit=ind.unit if ind else "",
        direction=ind.direction if ind else "",
        baseline=base,
        target=found.target,
        observed=observed,
        change=change,
        change_ratio=None if change is None or not base else change / abs(base),
        outcome=found.state,
    )


# --- helpers ---------------------------------------------------------------------------------


def _check_target(
    conn: Connection,
    catalog: Catalog,
    indicator: str,
    service: str | None,
    customer: str | None,
) -> Indicator:
    """What the improvement measures exists and can be measured at its scope."""
    ind = _indicator(conn, catalog, indicator)
    if ind.direction == "neutral":
        raise InvalidRequest(
            f"{indicator} has no better direction (it is neutral): an improvement needs an "
            "indicator that is better higher or lower"
        )
    if service is not None and customer is not None:
        raise InvalidRequest("give service or customer, not both: a service has one customer")
    for key, value, known in (
        ("service", service, [s.id for s in catalog.services]),
        ("customer", customer, [c.id for c in catalog.customers]),
    ):
        if value is None:
            continue
        if key not in ind.all_dimensions:
            raise InvalidRequest(
                f"{indicator} has no {key} dimension: leave {key} out to measure it for the "
                "whole organisation"
            )
        if known and value not in known:
            raise InvalidRequest(f"unknown {key} {value!r}: the catalog lists {', '.join(known)}")
    return ind


def _indicator(conn: Connection, catalog: Catalog, indicator: str) -> Indicator:
    ind = find(conn, catalog, indicator)
    if ind is None:
        raise InvalidRequest(f"unknown indicator {indicator!r}: see GET /v1/indicators")
    return ind


def _columns(values: dict[str, Any]) -> dict[str, Any]:
    """Request fields → table columns (`window` is `window_kind`)."""
    out = dict(values)
    if "elements" in out:  # each once, in the order of the four elements
        out["elements"] = [e for e in ELEMENTS if e in out["elements"]]
    if "window" in out:
        out["window_kind"] = out.pop("window")
    return out


def _row(conn: Connection, improvement_id: int, *, lock: bool = False) -> Any:
    q = select(improvements).where(improvements.c.id == improvement_id)
    row = conn.execute(q.with_for_update() if lock else q).first()
    if row is None:
        raise NotFound(f"no improvement {improvement_id}")
    return row


def _move(
    conn: Connection,
    row: Any,
    to: str,
    by: str,
    note: str,
    now: datetime,
    values: dict[str, Any],
) -> None:
    conn.execute(
        update(improvements)
        .where(improvements.c.id == row.id)
        .values(state=to, updated_at=now, **values)
    )
    _record(conn, row.id, row.state, to, by, note, now)


def _record(
    conn: Connection,
    improvement_id: int,
    from_state: str | None,
    to_state: str,
    by: str,
    note: str,
    now: datetime,
) -> None:
    conn.execute(
        insert(improvement_transitions).values(
            improvement_id=improvement_id,
            from_state=from_state,
            to_state=to_state,
            by=by,
            note=note,
            at=now,
        )
    )


def _model(row: Any, history: list[Transition] | None) -> Improvement:
    return Improvement(
        id=row.id,
        title=row.title,
        description=row.description,
        service=row.service,
        customer=row.customer,
        indicator=row.indicator,
        window=row.window_kind,
        target=row.target,
        elements=list(row.elements),
        source=row.source,
        links=row.links,
        actions=row.actions,
        owner=row.owner,
        due_date=row.due_date,
        verification_windows=row.verification_windows,
        state=row.state,
        allowed_transitions=list(states.allowed(row.state)),
        baseline=row.baseline,
        verify_from=row.verify_from,
        verify_until=row.verify_until,
        evidence=Evidence.model_validate(row.evidence) if row.evidence else None,
        decision=row.decision,
        created_at=row.created_at,
        updated_at=row.updated_at,
        transitions=history,
    )
