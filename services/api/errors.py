"""Typed errors → the JSON error body `{"error": {"code", "message", "details"}}` (SPEC §7)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.db import describe_db_error, unreachable
from shared.errors import DatabaseUnavailable, ItsmError

# What a 503 (the broker or the database unavailable) tells a client to wait before it sends the
# same request again (RFC 9110 §10.2.3): a POST /v1/events that was not answered 202 is safe to
# send again, the collector dedupes by (source, id).
RETRY_AFTER_SECONDS = 5


def error_response(status: int, code: str, message: str, details: object = None) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"error": {"code": code, "message": message, "details": details}},
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None,
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
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "http_error")
        return error_response(err.status_code, code, str(err.detail))
