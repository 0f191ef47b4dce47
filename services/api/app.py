"""The app factory: settings, engine and publisher in, a FastAPI app out."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy.engine import Engine

from services.api import errors
from services.api.exposition import CachedExposition, IndicatorCollector, ObjectiveCollector
from services.api.indicators import SeriesCache
from services.api.ingest import Publisher
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
from shared.settings import Settings


def create_app(
    settings: Settings,
    engine: Engine,
    publisher: Publisher | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> FastAPI:
    """`clock` says which windows are current for /metrics (a replay or a benchmark sets it)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.publisher.close()

    app = FastAPI(
        title="itsm-metrics",
        version="0.1.0",
        description="Continual service improvement metrics from ITSM events.",
        lifespan=lifespan,
    )
    registry = CollectorRegistry()
    tz = ZoneInfo(settings.reporting_timezone)
    app.state.catalogs = CatalogCache()
    app.state.series_cache = SeriesCache()
    stored = CollectorRegistry()
    stored.register(
        IndicatorCollector(
            engine, tz, app.state.catalogs, clock, max_series=settings.metrics_max_series
        )
    )
    stored.register(ObjectiveCollector(engine, tz, clock))
    app.state.exposition = CachedExposition(stored, settings.metrics_max_age_seconds)
    Gauge(
        "itsm_exposition_age_seconds",
        "Age of the indicator values served by /metrics (rendered in the background)",
        registry=registry,
    ).set_function(app.state.exposition.age)
    app.state.settings = settings
    app.state.engine = engine
    app.state.publisher = publisher or Publisher(settings)
    app.state.registry = registry
    _http_metrics(app, registry)
    errors.install(app)
    app.include_router(ops.router)
    app.include_router(ingest.router)
    app.include_router(alertmanager.router)
    app.include_router(dead_letters.router)
    app.include_router(indicators.router)
    app.include_router(objectives.router)
    app.include_router(entities.router)
    return app


def _http_metrics(app: FastAPI, registry: CollectorRegistry) -> None:
    requests = Counter(
        "itsm_http_requests", "HTTP requests", ["method", "route", "status"], registry=registry
    )
    latency = Histogram(
        "itsm_http_request_seconds", "HTTP request latency", ["route"], registry=registry
    )

    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        requests.labels(request.method, path, str(response.status_code)).inc()
        latency.labels(path).observe(time.perf_counter() - started)
        return response
