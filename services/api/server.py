"""How the api is served: uvicorn over h11, with a deadline for each request's headers and one
for its body. uvicorn's own `timeout_keep_alive` runs only while a connection is idle between
requests and stops at the first byte of the next one, so a client sending half a request line,
or a body a byte at a time, would otherwise hold a connection (and its slot) for ever."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import h11
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from services.api.errors import SECURITY_HEADERS


def _closing_answer(status: str, code: str, message: str) -> bytes:
    """A whole HTTP/1.1 answer with the error body, after which the connection is closed."""
    error = {"code": code, "message": message, "details": None}
    body = json.dumps({"error": error}).encode()
    head = [
        f"HTTP/1.1 {status}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{k.lower()}: {v}" for k, v in SECURITY_HEADERS.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


TIMEOUT = _closing_answer("408 Request Timeout", "request_timeout", "the request came too slowly")
NOT_HTTP = _closing_answer("400 Bad Request", "bad_request", "the request is not valid HTTP/1.1")


class DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with two deadlines: the headers of a request must have arrived
    `header_timeout` seconds after the connection opened or the previous answer was sent, its
    body `body_timeout` seconds after its headers. Past one, the client gets a 408 with the
    error body (unless an answer was already begun) and the connection is closed. A request
    that is not HTTP gets a 400 with the error body (uvicorn's is plain text)."""

    header_timeout = 10.0
    body_timeout = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._phase: Literal["headers", "body"] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._follow()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._set(None)
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        # What h11 cannot parse: uvicorn answers in plain text, the api with its error body.
        self.transport.write(NOT_HTTP)
        self.transport.close()

    def _follow(self) -> None:
        """Arm the deadline of what is being read from the client now, keeping a running one."""
        state = self.conn.their_state
        if self.transport.is_closing():
            self._set(None)
        elif state is h11.IDLE:
            self._set("headers")
        elif state is h11.SEND_BODY:
            self._set("body")
        else:  # the request is read (or the connection is ending): no deadline
            self._set(None)

    def _set(self, phase: Literal["headers", "body"] | None) -> None:
        if phase == self._phase:
            return
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase = phase
        if phase is not None:
            seconds = self.header_timeout if phase == "headers" else self.body_timeout
            self._deadline = self.loop.call_later(seconds, self._expired)

    def _expired(self) -> None:
        self._deadline = None
        self._phase = None
        if self.transport.is_closing():
            return
        answering = self.cycle if self.cycle and not self.cycle.response_complete else None
        if answering is None or not answering.response_started:
            self.transport.write(TIMEOUT)
        if answering is not None:
            # The app waiting for the rest of the body reads a disconnect, and whatever it
            # answers is dropped (as after the client went away).
            answering.disconnected = True
            answering.message_event.set()
        self.transport.close()


def protocol(header_timeout: float, body_timeout: float) -> type[DeadlineProtocol]:
    """DeadlineProtocol with these deadlines, for uvicorn's `http` (it makes one per
    connection)."""
    return type(
        "DeadlineProtocol",
        (DeadlineProtocol,),
        {"header_timeout": header_timeout, "body_timeout": body_timeout},
    )


def serve(app: ASGIApp, host: str, port: int, header_timeout: float, body_timeout: float) -> None:
    """Serve `app` until SIGINT or SIGTERM (uvicorn's graceful shutdown)."""
    import uvicorn

    uvicorn.run(
        app,
        host=host,
        port=port,
        http=protocol(header_timeout, body_timeout),
        log_level="warning",
        access_log=False,
    )
