"""Plain ASGI middlewares around every request (as `_Observed` in app.py: Starlette's
`BaseHTTPMiddleware` costs a task and a body stream per request): the body size limit and the
headers every answer carries."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.errors import error_response


class BodyLimit:
    """413 with the error body for a request body over `limit` bytes (`limits` by path: the
    ingest routes take more), declared or as it is read, before any route holds it: a body is
    never read into memory unbounded (FastAPI reads a model's body before the route's token is
    checked). Starlette's own limit answers a declared oversize in plain text."""

    def __init__(self, app: ASGIApp, limit: int, limits: Mapping[str, int]) -> None:
        self.app = app
        self.limit = limit
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.limit)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            too_large = error_response(
                413,
                "payload_too_large",
                f"request body is {declared} bytes, over the {limit}-byte limit",
            )
            await too_large(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException: FastAPI passes it on from reading a body (any other
                    # error there becomes a 400), to the error body's handler.
                    raise HTTPException(413, f"request body over the {limit}-byte limit")
            return message

        await self.app(scope, receive_within_limit, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class Headers:
    """`headers` on every answer (an error's too)."""

    def __init__(self, app: ASGIApp, headers: Mapping[str, str]) -> None:
        self.app = app
        self.raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.raw]
            await send(message)

        await self.app(scope, receive, sending)
