from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from services.api import alertmanager, ingest
from services.api.deps import Ingest, JsonBody, SettingsDep
from services.api.schemas import ErrorBody, IngestResult

router = APIRouter(prefix="/v1", tags=["ingest"])


@router.post(
    "/ingest/alertmanager",
    dependencies=[Ingest, JsonBody],
    status_code=202,
    response_model=IngestResult,
    responses={
        207: {"model": IngestResult, "description": "some alerts accepted, some rejected"},
        401: {"model": ErrorBody},
        403: {"model": ErrorBody},
        413: {"model": ErrorBody},
        422: {
            "model": IngestResult | ErrorBody,
            "description": "no alert accepted, or the body is not an Alertmanager payload",
        },
        503: {"model": ErrorBody},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": alertmanager.payload_schema(),
                    "example": alertmanager.example_payload(),
                }
            },
        }
    },
)
async def post_alertmanager(request: Request, settings: SettingsDep) -> JSONResponse:
    """Prometheus Alertmanager webhook (version 4; `send_resolved: true`): each alert becomes an
    `itsm.monitor.alert.firing|resolved` event, produced to the monitoring topic keyed by its
    alert id before the answer; rejections are indexed by position in `alerts`.
    202 all accepted, 207 some, 422 none."""
    body = await ingest.read_body(request)
    events = alertmanager.to_events(alertmanager.decode(body))
    result = await run_in_threadpool(
        ingest.ingest,
        request.app.state.publisher,
        events,
        max_event_bytes=settings.max_event_bytes,
        single=False,
    )
    return JSONResponse(status_code=ingest.status_code(result), content=result.model_dump())
