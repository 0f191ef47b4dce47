"""The OpenAPI document (SPEC §7): FastAPI's, completed with what it cannot see of this api —
every error answer is the error body (FastAPI documents its own 422 body, which the api never
sends), reads need no token unless one is configured, and the characters string parameters
refuse. The token schemes and each operation's are FastAPI's, from the guards (deps.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI

from services.api.params import TEXT_PATTERN

ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
# The answers any operation may give beside those its route declares.
ANSWERS = {
    "400": "the body cannot be read as text (not UTF-8)",
    "413": "the body is over the operation's size limit",
    "415": "the body is not of a media type the operation reads",
    "500": "an unexpected error",
}
GUARDED = {
    "401": "no bearer token, or one this api does not know",
    "403": "a token without this operation's scope, or its scope has no token configured",
}
_FASTAPI_422 = "#/components/schemas/HTTPValidationError"


def install(app: FastAPI) -> None:
    """Serve the completed document at /openapi.json (built once, on the first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(doc: dict[str, Any]) -> dict[str, Any]:
    for item in doc["paths"].values():
        for operation in item.values():
            _complete_operation(operation)
    schemas = doc["components"]["schemas"]
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    return doc


def _complete_operation(operation: dict[str, Any]) -> None:
    responses = operation["responses"]
    for answer in responses.values():
        schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
        if schema.get("$ref") == _FASTAPI_422:
            answer["content"] = ERROR
    if "security" in operation:
        if {"readToken": []} in operation["security"]:
            operation["security"].append({})  # no token, while no read token is configured
        for status, description in GUARDED.items():
            responses.setdefault(status, {"description": description, "content": ERROR})
    if "requestBody" in operation:
        for status in ("400", "413", "415"):
            responses.setdefault(status, {"description": ANSWERS[status], "content": ERROR})
    responses.setdefault("500", {"description": ANSWERS["500"], "content": ERROR})
    for parameter in operation.get("parameters", []):
        for schema in _strings(parameter["schema"]):
            schema["pattern"] = TEXT_PATTERN


def _strings(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The free-text string schemas in a parameter's schema (not enums, formats or patterns)."""
    if schema.get("type") == "string" and not {"enum", "const", "format", "pattern"} & set(schema):
        yield schema
    for option in schema.get("anyOf", []):
        yield from _strings(option)
    if isinstance(schema.get("items"), dict):
        yield from _strings(schema["items"])
