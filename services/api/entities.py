"""Reading tickets (with their SLA time left), services, changes and CIs for the API (SPEC §7.2).

A ticket's SLA is evaluated when it is read, by the aggregator's own pure functions
(`services.aggregator.sla`) under the active catalog, rather than read from `ticket_sla`: that
table is brought up to date by the aggregator's job about once a minute, so it can lag behind
the projection, the catalog or a deadline that just passed; the live evaluation is what the
job will store on its next run, and time left needs the calendar and pauses in any case."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel
from sqlalchemy import Column, ColumnElement, Connection, Table, and_, or_, select, tuple_

from services.aggregator.sla import Target, evaluate, ticket_clock
from services.aggregator.sla_clock import open_intervals, time_left
from services.api.objectives import objectives
from services.api.schemas import (
    ChangeInfo,
    ConfigItemInfo,
    ObjectiveItem,
    ServiceHealth,
    ServiceInfo,
    ServiceList,
    ServicePolicy,
    SlaTarget,
    TicketInfo,
    TicketList,
    TicketSla,
)
from services.catalog import Catalog, policy_for
from services.catalog.model import PRIORITIES, Service
from services.collector.projections.tickets import OPEN_STATES
from shared.db import changes, config_items, indicator_points, tickets
from shared.errors import InvalidRequest, NotFound
from shared.events import TicketKind, TicketState
from shared.windows import window_end

Shown = TypeVar("Shown", bound=BaseModel)

# `open` (SPEC §3.1: not resolved, closed or cancelled) or one ticket state.
StateFilter = Literal["open"] | TicketState

HEALTH_INDICATORS = ("service_health_score", "service_objectives_met_ratio")

# Whether the calendar is open at an instant: is [now, now + 1 µs) inside its hours.
_INSTANT = timedelta(microseconds=1)


def _columns(table: Table, model: type[BaseModel]) -> list[Column[Any]]:
    """The table's columns a response model shows (its fields that name a column)."""
    return [table.c[name] for name in model.model_fields if name in table.c]


# What the SLA evaluation reads besides the columns shown.
_TICKET_COLUMNS = [*_columns(tickets, TicketInfo), tickets.c.transitions]


# --- tickets ------------------------------------------------------------------------------------


def get_ticket(conn: Connection, catalog: Catalog, ticket_id: str, *, now: datetime) -> TicketInfo:
    row = conn.execute(
        select(*_TICKET_COLUMNS).where(tickets.c.ticket_id == ticket_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"unknown ticket {ticket_id!r}")
    return ticket_info(row._mapping, catalog, now)


def list_tickets(
    conn: Connection,
    catalog: Catalog,
    *,
    state: StateFilter | None = None,
    service: str | None = None,
    kind: TicketKind | None = None,
    priority: int | None = None,
    assignment_group: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
    now: datetime,
) -> TicketList:
    """Tickets matching every filter given, newest opened first; a page of `limit` and the
    cursor of the next one (keyset: stable while tickets arrive)."""
    t = tickets.c
    where: list[ColumnElement[bool]] = []
    if state == "open":
        where.append(t.state.in_(sorted(OPEN_STATES)))
    elif state is not None:
        where.append(t.state == state)
    for column, value in (
        (t.service, service),
        (t.kind, kind),
        (t.priority, priority),
        (t.assignment_group, assignment_group),
    ):
        if value is not None:
            where.append(column == value)
    if cursor is not None:
        opened_at, after_id = _decode_cursor(cursor)
        where.append(tuple_(t.opened_at, t.ticket_id) < tuple_(opened_at, after_id))
    rows = conn.execute(
        select(*_TICKET_COLUMNS)
        .where(*where)
        .order_by(t.opened_at.desc(), t.ticket_id.desc())
        .limit(limit + 1)
    ).all()
    page = rows[:limit]
    last = page[-1] if len(rows) > limit else None
    return TicketList(
        tickets=[ticket_info(r._mapping, catalog, now) for r in page],
        next_cursor=None if last is None else _encode_cursor(last.opened_at, last.ticket_id),
    )


def ticket_info(row: Mapping[Any, Any], catalog: Catalog, now: datetime) -> TicketInfo:
    """A ticket row as the API shows it, its SLA as of `now`. Pure."""
    return TicketInfo.model_validate({**row, "sla": incident_sla(row, catalog, now)})


def incident_sla(ticket: Mapping[Any, Any], catalog: Catalog, now: datetime) -> TicketSla | None:
    """An incident's SLA under `catalog` as of `now` (SPEC §6.2): the aggregator's evaluation of
    each target plus, while the ticket is open and the target's work not done, the SLA-clock
    seconds left (≤ 0 once breached). None for other kinds: the aggregator evaluates no SLA for
    them. Pure."""
    if ticket["kind"] != "incident":
        return None
    clock = ticket_clock(ticket, catalog)
    if clock is None:
        return TicketSla(
            policy_id=None,
            calendar=None,
            paused=None,
            clock_running=None,
            response=None,
            resolution=None,
        )
    ev = evaluate(ticket, catalog, now)
    is_open = ticket["state"] in OPEN_STATES
    paused = is_open and ticket["state"] in clock.policy.pause_states
    in_hours = bool(open_intervals(clock.calendar, now, now + _INSTANT))

    def view(target: Target, done_at: datetime | None) -> SlaTarget:
        assert target.seconds is not None  # a policy applies: both targets have seconds
        left = None
        if is_open and done_at is None:
            left = time_left(clock.calendar, ticket["opened_at"], target.seconds, now, clock.pauses)
        return SlaTarget(
            target_seconds=target.seconds,
            due=target.due,
            met=target.met,
            decided_at=target.decided_at,
            seconds_left=left,
        )

    return TicketSla(
        policy_id=clock.policy.id,
        calendar=clock.policy.calendar,
        paused=paused,
        clock_running=is_open and not paused and in_hours,
        response=view(ev.response, ticket["responded_at"]),
        resolution=view(ev.resolution, ticket["resolved_at"]),
    )


def _encode_cursor(opened_at: datetime, ticket_id: str) -> str:
    raw = json.dumps([opened_at.isoformat(), ticket_id]).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        opened, ticket_id = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
        at = datetime.fromisoformat(opened)
        if at.tzinfo is None or not isinstance(ticket_id, str):
            raise ValueError("not a cursor")
    except (ValueError, TypeError, UnicodeError, binascii.Error):
        raise InvalidRequest(
            "invalid cursor: pass the `next_cursor` of the previous page unchanged"
        ) from None
    return at, ticket_id


# --- services -----------------------------------------------------------------------------------


def list_services(
    conn: Connection, catalog: Catalog, *, tz: ZoneInfo, now: datetime
) -> ServiceList:
    return ServiceList(services=_services(conn, catalog, catalog.services, None, tz, now))


def get_service(
    conn: Connection, catalog: Catalog, service_id: str, *, tz: ZoneInfo, now: datetime
) -> ServiceInfo:
    svc = catalog.service(service_id)
    if svc is None:
        raise NotFound(f"unknown service {service_id!r}: see GET /v1/services")
    return _services(conn, catalog, [svc], service_id, tz, now)[0]


def _services(
    conn: Connection,
    catalog: Catalog,
    services: Sequence[Service],
    only: str | None,
    tz: ZoneInfo,
    now: datetime,
) -> list[ServiceInfo]:
    """Each service with its policies, objectives and the health of their current windows."""
    objs = objectives(conn, catalog, service=only, window=None, tz=tz, now=now).objectives
    windows = {(o.window, o.current.window_start) for o in objs}
    health = _health(conn, [s.id for s in services], windows)
    customers = {c.id: c.name for c in catalog.customers}
    out = []
    for svc in services:
        own = [o for o in objs if o.service == svc.id]
        out.append(
            ServiceInfo(
                id=svc.id,
                name=svc.name,
                customer=svc.customer,
                customer_name=customers.get(svc.customer),
                sla_policies=service_policies(catalog, svc.id),
                health=_service_health(svc.id, own, health, tz),
                objectives=own,
            )
        )
    return out


def service_policies(catalog: Catalog, service_id: str) -> list[ServicePolicy]:
    """The policies that govern the service's tickets, each with the priorities it governs for
    it (a policy naming the service beats a `*` one: `policy_for`). Pure."""
    governs: dict[str, list[int]] = {}
    for priority in PRIORITIES:
        policy = policy_for(catalog, service_id, priority)
        if policy is not None:
            governs.setdefault(policy.id, []).append(priority)
    return [
        ServicePolicy(
            id=p.id,
            priorities=governs[p.id],
            response_target_seconds=p.response_target.total_seconds(),
            resolution_target_seconds=p.resolution_target.total_seconds(),
            calendar=p.calendar,
            pause_states=list(p.pause_states),
        )
        for p in catalog.sla_policies
        if p.id in governs
    ]


def _service_health(
    service_id: str,
    own: Iterable[ObjectiveItem],
    health: Mapping[tuple[str, str, datetime, str], float | None],
    tz: ZoneInfo,
) -> list[ServiceHealth]:
    current = sorted({(o.window, o.current.window_start) for o in own})
    return [
        ServiceHealth(
            window=kind,
            window_start=start,
            window_end=window_end(kind, start, tz),
            service_health_score=health.get((service_id, kind, start, "service_health_score")),
            service_objectives_met_ratio=health.get(
                (service_id, kind, start, "service_objectives_met_ratio")
            ),
        )
        for kind, start in current
    ]


def _health(
    conn: Connection, service_ids: list[str], windows: set[tuple[str, datetime]]
) -> dict[tuple[str, str, datetime, str], float | None]:
    """(service, window kind, window start, indicator) → value of the health indicators."""
    if not windows or not service_ids:
        return {}
    iv = indicator_points.c
    service = iv.dimensions["service"].astext
    rows = conn.execute(
        select(
            service.label("service"), iv.window_kind, iv.window_start, iv.indicator, iv.value
        ).where(
            iv.indicator.in_(HEALTH_INDICATORS),
            iv.dim_keys == "service",
            service.in_(service_ids),
            or_(*(and_(iv.window_kind == k, iv.window_start == s) for k, s in windows)),
        )
    )
    return {(r.service, r.window_kind, r.window_start, r.indicator): r.value for r in rows}


# --- changes and configuration items ------------------------------------------------------------


def get_change(conn: Connection, change_id: str) -> ChangeInfo:
    return _one(conn, changes, ChangeInfo, change_id, "change")


def get_ci(conn: Connection, ci_id: str) -> ConfigItemInfo:
    """A configuration item, deleted ones included (with `deleted_at`)."""
    return _one(conn, config_items, ConfigItemInfo, ci_id, "configuration item")


def _one(conn: Connection, table: Table, model: type[Shown], key: str, what: str) -> Shown:
    """The row of `table` with this primary key, as `model`; NotFound naming `what`."""
    [pk] = table.primary_key.columns
    row = conn.execute(select(*_columns(table, model)).where(pk == key)).one_or_none()
    if row is None:
        raise NotFound(f"unknown {what} {key!r}")
    return model.model_validate(row._mapping)
