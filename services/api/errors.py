"""Typed errors → the JSON error body `{"error": {"code", "message", "details"}}` (SPEC §7), and
an unexpected exception → the same body with 500, never a plain-text page."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from shared.db import describe_db_error, unreachable
from shared.errors import DatabaseUnavailable, ItsmError

# What a 503 (the broker or the database unavailable) tells a client to wait before it sends the
# same request again (RFC 9110 §10.2.3): a POST /v1/events that was not answered 202 is safe to
# send again, the collector dedupes by (source, id).
RETRY_AFTER_SECONDS = 5

log = logging.getLogger("itsm.api")

# What every answer carries (services/api/app.py adds them to the others): a browser never
# guesses another type than the one declared (a JSON body holding markup is not a page).
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff"}

_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(
    status: int,
    code: str,
    message: str,
    details: object = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"error": {"code": code, "message": message, "details": details}},
        headers={
            **({"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else {}),
            **(headers or {}),
        },
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(ItsmError)
    async def _itsm(_: Request, err: ItsmError) -> JSONResponse:
        return error_response(err.http_status, err.code, err.message, err.details)

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, err: DBAPIError) -> JSONResponse:
        # The database away (down, restarting, unreachable) is a 503 to retry, as /readyz says;
        # any other database error is a bug, left to the server's 500.
        if not unreachable(err):
            raise err
        return await _itsm(
            request, DatabaseUnavailable(describe_db_error(request.app.state.engine, err))
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, err: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg")} for e in err.errors()
        ]
        return error_response(422, "validation_error", "request is invalid", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        code = _CODES.get(err.status_code, "http_error")
        # The headers Starlette sets, such as a 405's `Allow`.
        return error_response(err.status_code, code, str(err.detail), headers=err.headers)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, _: ClientDisconnect) -> JSONResponse:
        # The client went away (or the server cut it off past its body deadline) while the
        # body was read: nobody reads this answer, and it is no server error.
        log.info("client gone before its request body was read", extra={"route": _route(request)})
        return error_response(400, "client_disconnected", "the request body did not arrive")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        # Starlette's outermost middleware answers with this and re-raises for the server to
        # log; the line here names the route, never the request's headers (tokens) or body.
        log.error(
            "unexpected error answering a request",
            extra={"route": _route(request), "error": type(err).__name__},
        )
        # Outside the other middlewares: the security headers are set here.
        return error_response(
            500, "internal_error", "internal server error", headers=SECURITY_HEADERS
        )


def _route(request: Request) -> str:
    """The route template (never the raw path, which may hold anything)."""
    return str(getattr(request.scope.get("route"), "path", "unmatched"))
