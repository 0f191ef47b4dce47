"""Headless Chromium (Debian `chromium`, installed by `make test`) rendering a printable page the
way a user's browser would: served over HTTP by a local server that is also the browser's proxy
for everything, so any request the page makes — a script, a font, an image, a stylesheet, on
any host — reaches that server and is counted. Screenshots are kept in build/test-artifacts/."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ARTIFACTS = Path(__file__).resolve().parent.parent / "build" / "test-artifacts"
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip(
            "SKIPPED LOUDLY: Debian chromium is not installed (make test installs it with "
            "scripts/ensure-chromium.sh); the printable pages were not rendered"
        )
    return found


@dataclass
class Rendered:
    png: bytes
    pdf: bytes
    requests: list[str]  # the page's request and every request it made (those naming it as referer)
    browser: list[str]  # what Chromium asked for on its own behalf (updates, time, accounts)


@contextlib.contextmanager
def _serving(page: bytes) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    seen: list[tuple[str, str]] = []  # (request line, referer)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.requestline, self.headers.get("Referer", "")))
            # through the proxy the request names the whole URL: its path alone decides
            if urlsplit(self.path).path == "/page.html":
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
            else:
                self.send_error(404)

        def do_CONNECT(self) -> None:
            seen.append((self.requestline, self.headers.get("Referer", "")))
            self.send_error(403)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def render(page: str, name: str) -> Rendered:
    """Screenshot (A4-ish 1240×1754) and PDF of `page`; the screenshot is kept as
    build/test-artifacts/`name`.png."""
    binary = chromium()
    with _serving(page.encode()) as (base, seen), tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        proxy = (f"--proxy-server={base}", "--proxy-bypass-list=<-loopback>")
        for flag in (f"--screenshot={out / 'page.png'}", f"--print-to-pdf={out / 'page.pdf'}"):
            subprocess.run(
                [
                    binary,
                    *_FLAGS,
                    *proxy,
                    f"--user-data-dir={out / 'profile'}",
                    "--window-size=1240,1754",
                    "--no-pdf-header-footer",
                    flag,
                    f"{base}/page.html",
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
        png, pdf = (out / "page.png").read_bytes(), (out / "page.pdf").read_bytes()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{name}.png").write_bytes(png)
    mine = [line for line, referer in seen if "/page.html" in line or "/page.html" in referer]
    return Rendered(png, pdf, mine, [line for line, _ in seen if line not in mine])
