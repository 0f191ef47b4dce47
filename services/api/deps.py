"""FastAPI dependencies as Annotated aliases, so routes read like their signature. Those that do
no I/O are `async`: FastAPI runs a plain function in a worker thread, a hop per dependency."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import Depends, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy import Connection

from services.api.indicators import Reading
from services.api.schemas import ErrorBody
from services.catalog import CatalogCache
from shared.errors import Forbidden, InvalidRequest, Unauthorized
from shared.settings import Settings


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _db(request: Request) -> Iterator[Connection]:
    with request.app.state.engine.connect() as conn:
        yield conn


async def _catalogs(request: Request) -> CatalogCache:
    cache: CatalogCache = request.app.state.catalogs
    return cache


SettingsDep = Annotated[Settings, Depends(_settings)]
Db = Annotated[Connection, Depends(_db)]
Catalogs = Annotated[CatalogCache, Depends(_catalogs)]


async def _now(request: Request) -> datetime:
    """What "now" is for baselines, periods, schedules and the objectives' current windows
    (create_app's clock)."""
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


async def _reading(settings: SettingsDep) -> Reading:
    return Reading(ZoneInfo(settings.reporting_timezone), settings.hour_retention_days)


Now = Annotated[datetime, Depends(_now)]
ReadingDep = Annotated[Reading, Depends(_reading)]
# The error answers of the register routes (improvements, reviews), for the OpenAPI document.
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 409, 422)
}


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _matches(token: str, *configured: str | None) -> bool:
    return any(c and hmac.compare_digest(token.encode(), c.encode()) for c in configured)


async def require_ingest(request: Request, settings: SettingsDep) -> None:
    """Write scope (SPEC §7.1): the ingest or admin token; refused when neither is configured."""
    if not (settings.ingest_token or settings.admin_token):
        raise Forbidden("ingest is disabled: no ITSM_INGEST_TOKEN or ITSM_ADMIN_TOKEN configured")
    token = _bearer(request)
    if token is None:
        raise Unauthorized("missing bearer token: send `Authorization: Bearer <ingest token>`")
    if not _matches(token, settings.ingest_token, settings.admin_token):
        if _matches(token, settings.read_token):
            raise Forbidden("the read token cannot write")
        raise Unauthorized("invalid bearer token")


async def require_admin(request: Request, settings: SettingsDep) -> None:
    """Admin scope: only the admin token; refused when none is configured. Guards what may
    carry personal data, such as the raw payloads of dead letters (SPEC §3.6)."""
    if not settings.admin_token:
        raise Forbidden("admin endpoints are disabled: no ITSM_ADMIN_TOKEN configured")
    token = _bearer(request)
    if token is None:
        raise Unauthorized("missing bearer token: send `Authorization: Bearer <admin token>`")
    if not _matches(token, settings.admin_token):
        if _matches(token, settings.ingest_token, settings.read_token):
            raise Forbidden("this endpoint needs the admin token")
        raise Unauthorized("invalid bearer token")


async def require_manage(request: Request, settings: SettingsDep) -> None:
    """Manage scope (improvements, SPEC §7.4): the manage or the admin token; refused when
    neither is configured. Its own token, so whoever runs the register need not hold the admin
    token, which also reads dead letters' raw payloads."""
    if not (settings.manage_token or settings.admin_token):
        raise Forbidden("managing is disabled: no ITSM_MANAGE_TOKEN or ITSM_ADMIN_TOKEN configured")
    token = _bearer(request)
    if token is None:
        raise Unauthorized("missing bearer token: send `Authorization: Bearer <manage token>`")
    if not _matches(token, settings.manage_token, settings.admin_token):
        if _matches(token, settings.ingest_token, settings.read_token):
            raise Forbidden("this endpoint needs the manage or the admin token")
        raise Unauthorized("invalid bearer token")


async def require_read(request: Request, settings: SettingsDep) -> None:
    """Read endpoints are open unless ITSM_READ_TOKEN is configured."""
    if not settings.read_token:
        return
    token = _bearer(request)
    if token is None:
        raise Unauthorized("missing bearer token: send `Authorization: Bearer <read token>`")
    if not _matches(
        token,
        settings.read_token,
        settings.admin_token,
        settings.ingest_token,
        settings.manage_token,
    ):
        raise Unauthorized("invalid bearer token")


# `?format=html` for the printable pages (reviews, improvement reports); without it, a client
# whose Accept names text/html (a browser) gets the page too.
Format = Annotated[Literal["json", "html"] | None, Query(description="json or html")]


def wants_html(request: Request, format: str | None) -> bool:
    if format is not None:
        return format == "html"
    return "text/html" in request.headers.get("accept", "")


def _query_names(dependant: Dependant) -> set[str]:
    """The query parameters a route declares: its own and its dependencies' (`format`)."""
    names = {f.alias for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def refuse_unknown_query(request: Request) -> None:
    """A query parameter the route does not declare is a 422 naming those it does, never
    ignored: a misspelt filter (`servcie=`) would otherwise answer for everything. The routes'
    own signatures are the list (tokens come only in the Authorization header)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed = _query_names(route.dependant)
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        takes = ", ".join(sorted(allowed)) or "no query parameter"
        raise InvalidRequest(
            f"unknown query parameter {', '.join(unknown)}: {route.path} takes {takes}",
            details={"unknown": unknown, "allowed": sorted(allowed)},
        )


Ingest = Depends(require_ingest)
Admin = Depends(require_admin)
Manage = Depends(require_manage)
Read = Depends(require_read)
# On every read or register route (routers' `dependencies`); not on ingest, whose senders
# (webhooks) are configured elsewhere, nor on probes and /metrics.
KnownQuery = Depends(refuse_unknown_query)
