from __future__ import annotations

from zoneinfo import ZoneInfo

from fastapi import APIRouter

from services.api import objectives
from services.api.deps import Catalogs, Db, KnownQuery, Now, Read, SettingsDep
from services.api.schemas import ErrorBody, ObjectiveList

router = APIRouter(prefix="/v1", tags=["objectives"], dependencies=[Read, KnownQuery])


@router.get("/objectives", response_model=ObjectiveList, responses={422: {"model": ErrorBody}})
def list_objectives(
    db: Db,
    settings: SettingsDep,
    catalogs: Catalogs,
    now: Now,
    service: str | None = None,
    customer: str | None = None,
    window: str | None = None,
) -> ObjectiveList:
    """Each objective per service, per customer (`*` expanded) and of the organisation: target,
    the current and previous window's value and status, and the drift of its series' last
    complete window (SPEC §6.3, §6.4, §7.2). `service` keeps a service's objectives, `customer`
    a customer's own (not its services'); neither, all of them."""
    return objectives.objectives(
        db,
        catalogs.get(db)[0],
        service=service,
        customer=customer,
        window=window,
        tz=ZoneInfo(settings.reporting_timezone),
        now=now,
    )
