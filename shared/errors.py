"""One exception hierarchy, mapped to exit codes in the CLI and to the error body in the api."""

from __future__ import annotations

from typing import Any


class ItsmError(Exception):
    """Base of every error a user or operator can act on.

    `str(err)` is one line saying what is wrong and how to fix it."""

    code = "error"
    exit_code = 1
    http_status = 500

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigError(ItsmError):
    code = "config_error"
    exit_code = 2
    http_status = 500


class DatabaseUnavailable(ItsmError):
    code = "database_unavailable"
    exit_code = 3
    http_status = 503


class NotMigrated(ItsmError):
    code = "database_not_migrated"
    exit_code = 4
    http_status = 503


class BrokerUnavailable(ItsmError):
    code = "broker_unavailable"
    exit_code = 5
    http_status = 503


class PortInUse(ItsmError):
    code = "port_in_use"
    exit_code = 6


class NotFound(ItsmError):
    code = "not_found"
    http_status = 404


class InvalidRequest(ItsmError):
    code = "invalid_request"
    http_status = 422


class Conflict(ItsmError):
    """The request is valid but not in the resource's current state (an improvement's
    transition that its state does not allow): `details` says what is allowed."""

    code = "conflict"
    http_status = 409


class QueryTooExpensive(ItsmError):
    """A read that is computed at query time ran past its time limit."""

    code = "query_timeout"
    http_status = 503


class Unauthorized(ItsmError):
    code = "unauthorized"
    http_status = 401


class Forbidden(ItsmError):
    code = "forbidden"
    http_status = 403


class PayloadTooLarge(ItsmError):
    code = "payload_too_large"
    http_status = 413


class UnsupportedMediaType(ItsmError):
    """A request body of a media type the endpoint does not read (it reads JSON)."""

    code = "unsupported_media_type"
    http_status = 415
