"""Read endpoints over the projections and the catalog: tickets, services, changes, CIs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query

from services.api import entities
from services.api.deps import Catalogs, Db, KnownQuery, Read, SettingsDep
from services.api.entities import StateFilter
from services.api.schemas import (
    ChangeInfo,
    ConfigItemInfo,
    ErrorBody,
    ServiceInfo,
    ServiceList,
    TicketInfo,
    TicketList,
)
from shared.events import TicketKind

router = APIRouter(prefix="/v1", dependencies=[Read, KnownQuery])


def request_time() -> datetime:
    """The instant SLA time left and current windows are computed at (a dependency, so a test
    can freeze it with `app.dependency_overrides`)."""
    return datetime.now(UTC)


Now = Annotated[datetime, Depends(request_time)]

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}}
INVALID: dict[int | str, dict[str, Any]] = {422: {"model": ErrorBody}}


@router.get("/tickets", tags=["tickets"], response_model=TicketList, responses=INVALID)
def list_tickets(
    db: Db,
    catalogs: Catalogs,
    now: Now,
    state: Annotated[
        StateFilter | None,
        Query(description="`open` (not resolved, closed or cancelled) or one ticket state"),
    ] = None,
    service: str | None = None,
    kind: TicketKind | None = None,
    priority: Annotated[int | None, Query(ge=1, le=4)] = None,
    assignment_group: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> TicketList:
    """Ticket projections (SPEC §3.1) matching every filter given, newest opened first, with
    each incident's SLA (SPEC §6.2) evaluated at the time of the request under the active
    catalog: targets, due instants, met, and for an open target the SLA-clock seconds left. The
    evaluation is the aggregator's own, so it does not wait for the aggregator's SLA job (which
    stores it in `ticket_sla` for the SLA indicators about once a minute)."""
    return entities.list_tickets(
        db,
        catalogs.get(db)[0],
        state=state,
        service=service,
        kind=kind,
        priority=priority,
        assignment_group=assignment_group,
        limit=limit,
        cursor=cursor,
        now=now,
    )


@router.get(
    "/tickets/{ticket_id:path}", tags=["tickets"], response_model=TicketInfo, responses=NOT_FOUND
)
def get_ticket(ticket_id: str, db: Db, catalogs: Catalogs, now: Now) -> TicketInfo:
    """One ticket projection with its SLA evaluated at the time of the request (see
    `GET /v1/tickets`); `sla` is null for a ticket that is not an incident, and has
    `policy_id: null` when no policy of the catalog applies."""
    return entities.get_ticket(db, catalogs.get(db)[0], ticket_id, now=now)


@router.get("/services", tags=["services"], response_model=ServiceList)
def list_services(db: Db, settings: SettingsDep, catalogs: Catalogs, now: Now) -> ServiceList:
    """The catalog's services (SPEC §6.1): customer, the SLA policies that govern them, their
    objectives' status and, for each window kind those use, the current window's
    `service_health_score` and `service_objectives_met_ratio` (null until computed)."""
    return entities.list_services(
        db, catalogs.get(db)[0], tz=ZoneInfo(settings.reporting_timezone), now=now
    )


@router.get(
    "/services/{service_id:path}",
    tags=["services"],
    response_model=ServiceInfo,
    responses=NOT_FOUND,
)
def get_service(
    service_id: str, db: Db, settings: SettingsDep, catalogs: Catalogs, now: Now
) -> ServiceInfo:
    """One service of the catalog and its current health (see `GET /v1/services`)."""
    return entities.get_service(
        db, catalogs.get(db)[0], service_id, tz=ZoneInfo(settings.reporting_timezone), now=now
    )


@router.get(
    "/changes/{change_id:path}", tags=["changes"], response_model=ChangeInfo, responses=NOT_FOUND
)
def get_change(change_id: str, db: Db) -> ChangeInfo:
    """One change projection (SPEC §3.2)."""
    return entities.get_change(db, change_id)


@router.get(
    "/cis/{ci_id:path}",
    tags=["configuration items"],
    response_model=ConfigItemInfo,
    responses=NOT_FOUND,
)
def get_ci(ci_id: str, db: Db) -> ConfigItemInfo:
    """One configuration item (SPEC §3.3): its services, what it depends on, whether it is
    critical; a deleted CI is still shown, with `deleted_at`."""
    return entities.get_ci(db, ci_id)
