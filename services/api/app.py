"""The app factory: settings, engine and publisher in, a FastAPI app out."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api import errors, middleware, openapi
from services.api.exposition import SnapshotReader
from services.api.improvements import routes as improvements
from services.api.indicators import SeriesCache
from services.api.params import refuse_control_characters
from services.api.reviews import routes as reviews
from services.api.routes import (
    alertmanager,
    dead_letters,
    entities,
    indicators,
    ingest,
    objectives,
    ops,
)
from services.catalog import CatalogCache
from shared import kafka
from shared.kafka import Publisher
from shared.settings import Settings

# The most a request body may hold: an improvement's or a review's; the ingest routes take
# batches up to shared.kafka.MAX_BODY.
MAX_BODY = 1024 * 1024
INGEST_BODIES = {"/v1/events": kafka.MAX_BODY, "/v1/ingest/alertmanager": kafka.MAX_BODY}


def create_app(
    settings: Settings,
    engine: Engine,
    publisher: Publisher | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FastAPI:
    """`clock` says what "now" is for the improvements' baselines and verification periods,
    the reviews' schedule and the objectives' current windows (a test or a replay sets it)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.publisher.close()

    app = FastAPI(
        title="itsm-metrics",
        version="0.1.0",
        description="Continual service improvement metrics from ITSM events.",
        lifespan=lifespan,
        # Every route, declared parameters or not (the indicator's dimension filters).
        dependencies=[Depends(refuse_control_characters)],
    )
    registry = CollectorRegistry()
    app.state.catalogs = CatalogCache()
    app.state.series_cache = SeriesCache(fresh_seconds=settings.read_cache_seconds)
    # /metrics serves the snapshot the aggregator renders (SPEC §8); the api computes no series.
    app.state.exposition = SnapshotReader(engine, settings.exposition_stale_seconds)
    app.state.settings = settings
    app.state.engine = engine
    app.state.publisher = publisher or Publisher(settings)
    app.state.registry = registry
    app.state.clock = clock  # what "now" is for improvements and the review schedule
    # Innermost first: the request metrics count a 413, and every answer gets the headers.
    app.add_middleware(middleware.BodyLimit, limit=MAX_BODY, limits=INGEST_BODIES)
    _http_metrics(app, registry)
    app.add_middleware(middleware.Headers, headers=errors.SECURITY_HEADERS)
    errors.install(app)
    openapi.install(app)
    app.include_router(ops.router)
    app.include_router(ingest.router)
    app.include_router(alertmanager.router)
    app.include_router(dead_letters.router)
    app.include_router(indicators.router)
    app.include_router(objectives.router)
    app.include_router(entities.router)
    app.include_router(improvements.router)
    app.include_router(reviews.router)
    return app


def http_metrics(registry: CollectorRegistry) -> tuple[Counter, Histogram]:
    """The api's own HTTP metrics (SPEC §8), registered in `registry`."""
    requests = Counter(
        "itsm_http_requests", "HTTP requests", ["method", "route", "status"], registry=registry
    )
    latency = Histogram(
        "itsm_http_request_seconds", "HTTP request latency", ["route"], registry=registry
    )
    return requests, latency


# The methods a label may name; any other is `other`, so a client cannot add series by making
# methods up (SPEC §8: labels from known routes and methods only).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in METHODS else "other"


def _http_metrics(app: FastAPI, registry: CollectorRegistry) -> None:
    requests, latency = http_metrics(registry)
    app.add_middleware(_Observed, requests=requests, latency=latency)


class _Observed:
    """HTTP request metrics labelled by the matched route's template (never the raw path), as
    plain ASGI: Starlette's `BaseHTTPMiddleware` costs a task and a body stream per request,
    a third of a cached answer's time."""

    def __init__(self, app: ASGIApp, requests: Counter, latency: Histogram) -> None:
        self.app = app
        self.requests = requests
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.requests.labels(method_label(scope["method"]), path, str(status)).inc()
            self.latency.labels(path).observe(time.perf_counter() - started)
