"""The api's server closes connections that do not deliver a request in time
(services/api/server.py): half a header line (slowloris) or a body that stops coming get a 408
with the error body and a closed connection, within the deadline; requests that arrive in time,
one after the other on a kept-alive connection, are answered as usual; what is not HTTP gets a
400 with the error body."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy.engine import Engine

from services.api.app import create_app
from shared.settings import Settings
from tests.fuzz.data import listening

HEADERS = 0.5  # seconds, the test server's deadlines
BODY = 1.0


@pytest.fixture
def address(settings: Settings, engine: Engine) -> Iterator[tuple[str, int]]:
    app = create_app(settings, engine)
    with listening(app, header_timeout=HEADERS, body_timeout=BODY) as url:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        yield parts.hostname, parts.port


def read_until_closed(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed (seconds
    from now); fails past `limit`."""
    started = time.monotonic()
    sock.settimeout(limit)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received, time.monotonic() - started


def timed_out(answer: bytes) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert b"x-content-type-options: nosniff" in head.lower()
    assert json.loads(body)["error"]["code"] == "request_timeout"


def test_a_connection_that_never_finishes_its_headers_is_closed(
    address: tuple[str, int],
) -> None:
    with socket.create_connection(address) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        answer, closed_after = read_until_closed(sock, limit=HEADERS + 5)
    timed_out(answer)
    assert closed_after < HEADERS + 1.5


def test_a_silent_connection_is_closed_after_the_header_deadline(
    address: tuple[str, int],
) -> None:
    with socket.create_connection(address) as sock:
        answer, closed_after = read_until_closed(sock, limit=HEADERS + 5)
    timed_out(answer)
    assert closed_after < HEADERS + 1.5


def test_dripping_header_bytes_does_not_extend_the_deadline(address: tuple[str, int]) -> None:
    with socket.create_connection(address) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        try:
            for _ in range(20):  # a byte every 0.2 s: 4 s if the server waited
                time.sleep(0.2)
                sock.sendall(b"X")
        except OSError:
            pass  # closed under the client's feet: the point
        answer, _ = read_until_closed(sock, limit=5)
        closed_after = time.monotonic() - started
    timed_out(answer)
    assert closed_after < HEADERS + 1.5


def test_a_body_that_stops_coming_is_answered_408_and_closed(address: tuple[str, int]) -> None:
    with socket.create_connection(address) as sock:
        sock.sendall(
            b"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ingest-secret\r\n"
            b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"specversion"'
        )
        answer, closed_after = read_until_closed(sock, limit=BODY + 5)
    timed_out(answer)
    assert closed_after < BODY + 1.5


def test_requests_in_time_are_answered_on_a_kept_alive_connection(
    address: tuple[str, int],
) -> None:
    host, port = address
    with httpx.Client(base_url=f"http://{host}:{port}") as client:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
            time.sleep(HEADERS * 0.6)  # idle, under the deadline each time
        body = json.dumps({"padding": "x" * 10_000}).encode()
        resp = client.post(
            "/v1/events",
            content=body,
            headers={"Authorization": "Bearer ingest-secret", "Content-Type": "application/json"},
        )
        assert resp.status_code == 422  # read whole, judged (not an event), answered


def test_a_request_that_is_not_http_is_400_with_the_error_body(address: tuple[str, int]) -> None:
    with socket.create_connection(address) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nContent-Length: many\r\n\r\n")
        answer, _ = read_until_closed(sock, limit=5)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert json.loads(body)["error"]["code"] == "bad_request"
