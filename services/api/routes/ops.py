from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.api.exposition import ExpositionStatus
from services.api.schemas import Health
from shared.db import check_migrated
from shared.errors import ItsmError
from shared.kafka import check_reachable

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


def _readiness(request: Request) -> tuple[bool, dict[str, str]]:
    state = request.app.state
    checks: dict[str, str] = {}
    try:
        check_migrated(state.engine)
        checks["database"] = "ok"
    except ItsmError as err:
        checks["database"] = err.message
    try:
        check_reachable(state.settings.require_kafka(), timeout=1.0)
        checks["broker"] = "ok"
    except ItsmError as err:
        checks["broker"] = err.message
    return all(v == "ok" for v in checks.values()), checks


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(request: Request) -> JSONResponse:
    """Database reachable and migrated to head, broker reachable."""
    ready, checks = await run_in_threadpool(_readiness, request)
    body = Health(status="ready" if ready else "not ready", checks=checks)
    return JSONResponse(status_code=200 if ready else 503, content=body.model_dump())


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """The process' own metrics and the snapshot's state, then the snapshot of indicator values,
    objectives and drift the aggregator rendered (absent when stale or unreadable). The two
    texts name different families (the snapshot's are indicator ids, which may not start with
    an operational prefix, `itsm_objective_*`, `itsm_indicator_*`, `itsm_exposition_series_*`)."""
    state = request.app.state
    served = await run_in_threadpool(state.exposition.read)
    own = generate_latest(state.registry) + generate_latest(ExpositionStatus(served))
    return Response(content=own + served.body, media_type=CONTENT_TYPE_LATEST)
