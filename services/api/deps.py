"""FastAPI dependencies as Annotated aliases, so routes read like their signature. Those that do
no I/O are `async`: FastAPI runs a plain function in a worker thread, a hop per dependency."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated, Literal, NoReturn
from zoneinfo import ZoneInfo

from fastapi import Depends, Query, Request, params
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from services.api.indicators import Reading
from services.api.schemas import ErrorBody
from services.catalog import CatalogCache
from shared.db import unreachable
from shared.errors import Forbidden, InvalidRequest, Unauthorized, UnsupportedMediaType
from shared.settings import Settings

log = logging.getLogger("itsm.api")


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _db(request: Request) -> Iterator[Connection]:
    """A connection for the request, closed once it is answered. Closing rolls back what the
    request left open: when PostgreSQL went away meanwhile (the answer may already be on its
    way), that rollback fails, and the connection is dropped from the pool instead of the
    error reaching the server, which would cut the client's keep-alive connection."""
    conn = request.app.state.engine.connect()
    try:
        yield conn
    finally:
        try:
            conn.close()
        except DBAPIError as err:
            if not unreachable(err):
                raise
            if not conn.closed:  # SQLAlchemy invalidates a connection it saw disconnected
                conn.invalidate()
            log.warning(
                "database connection lost while a request was answered",
                extra={"path": request.url.path, "error": str(err.orig).splitlines()[0][:200]},
            )


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


def _scheme(scope: str, what: str) -> HTTPBearer:
    """The `Authorization: Bearer` header as one of the OpenAPI document's token schemes: the
    document lists those a route's guard depends on as its alternatives. Refuses nothing itself
    (the guard does, with the error body)."""
    description = f"ITSM_{scope.upper()}_TOKEN: {what}"
    return HTTPBearer(scheme_name=f"{scope}Token", description=description, auto_error=False)


Credentials = HTTPAuthorizationCredentials | None
IngestToken = Annotated[Credentials, Depends(_scheme("ingest", "events and webhooks"))]
AdminToken = Annotated[Credentials, Depends(_scheme("admin", "every endpoint; dead letters"))]
ManageToken = Annotated[Credentials, Depends(_scheme("manage", "improvements and reviews"))]
ReadToken = Annotated[Credentials, Depends(_scheme("read", "reads, when one is configured"))]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _matches(token: str, *configured: str | None) -> bool:
    """Whether `token` is one of the configured tokens, compared in constant time (digests of
    equal length: not even the length of a token is told by the time taken)."""
    presented = _digest(token)
    return any(c and hmac.compare_digest(presented, _digest(c)) for c in configured)


def _tokens(settings: Settings) -> tuple[str | None, ...]:
    return (settings.ingest_token, settings.admin_token, settings.manage_token, settings.read_token)


def _presented(credentials: Credentials, scope: str) -> str:
    if credentials is None:
        raise Unauthorized(f"missing bearer token: send `Authorization: Bearer <{scope} token>`")
    return credentials.credentials


def _refuse(token: str, settings: Settings, needs: str) -> NoReturn:
    """401 for a token this api does not know (not authenticated), 403 for one of its tokens
    without this endpoint's scope (authenticated, not allowed)."""
    if _matches(token, *_tokens(settings)):
        raise Forbidden(f"this endpoint needs {needs}")
    raise Unauthorized("invalid bearer token")


async def require_ingest(settings: SettingsDep, ingest: IngestToken, _: AdminToken) -> None:
    """Write scope (SPEC §7.1): the ingest or admin token; refused when neither is configured."""
    if not (settings.ingest_token or settings.admin_token):
        raise Forbidden("ingest is disabled: no ITSM_INGEST_TOKEN or ITSM_ADMIN_TOKEN configured")
    token = _presented(ingest, "ingest")
    if not _matches(token, settings.ingest_token, settings.admin_token):
        _refuse(token, settings, "the ingest or the admin token")


async def require_admin(settings: SettingsDep, admin: AdminToken) -> None:
    """Admin scope: only the admin token; refused when none is configured. Guards what may
    carry personal data, such as the raw payloads of dead letters (SPEC §3.6)."""
    if not settings.admin_token:
        raise Forbidden("admin endpoints are disabled: no ITSM_ADMIN_TOKEN configured")
    token = _presented(admin, "admin")
    if not _matches(token, settings.admin_token):
        _refuse(token, settings, "the admin token")


async def require_manage(settings: SettingsDep, manage: ManageToken, _: AdminToken) -> None:
    """Manage scope (improvements, SPEC §7.4): the manage or the admin token; refused when
    neither is configured. Its own token, so whoever runs the register need not hold the admin
    token, which also reads dead letters' raw payloads."""
    if not (settings.manage_token or settings.admin_token):
        raise Forbidden("managing is disabled: no ITSM_MANAGE_TOKEN or ITSM_ADMIN_TOKEN configured")
    token = _presented(manage, "manage")
    if not _matches(token, settings.manage_token, settings.admin_token):
        _refuse(token, settings, "the manage or the admin token")


async def require_read(
    settings: SettingsDep, read: ReadToken, _i: IngestToken, _m: ManageToken, _a: AdminToken
) -> None:
    """Read endpoints are open unless ITSM_READ_TOKEN is configured; then any token reads.
    (Each guard takes the schemes of the tokens it accepts, read or not: they are the OpenAPI
    document's alternatives; all are the same header.)"""
    if not settings.read_token:
        return
    token = _presented(read, "read")
    if not _matches(token, *_tokens(settings)):
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


def accepts(*media_types: str) -> params.Depends:
    """A body of one of these media types, else 415: a body of another type is never read as
    JSON (a form, text or XML posted by mistake). Parameters such as `charset` are ignored."""

    async def media_type(request: Request) -> None:
        given = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if given not in media_types:
            raise UnsupportedMediaType(
                f"unsupported Content-Type: send the body as {' or '.join(media_types)}",
                details={"accepted": list(media_types)},
            )

    guard: params.Depends = Depends(media_type)
    return guard


# The media types of a route's body; a JSON-bodied write route takes JsonBody.
CLOUDEVENTS = ("application/cloudevents+json", "application/cloudevents-batch+json")
JsonBody = accepts("application/json")

Ingest = Depends(require_ingest)
Admin = Depends(require_admin)
Manage = Depends(require_manage)
Read = Depends(require_read)
# On every read or register route (routers' `dependencies`); not on ingest, whose senders
# (webhooks) are configured elsewhere, nor on probes and /metrics.
KnownQuery = Depends(refuse_unknown_query)
