from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from services.api import ingest
from services.api.deps import CLOUDEVENTS, Ingest, SettingsDep, accepts
from services.api.schemas import ErrorBody, IngestResult
from shared.events import example_events

router = APIRouter(prefix="/v1", tags=["ingest"])

# One named example per event type, from the contract's models (SPEC §3).
_EXAMPLES = {etype: {"summary": etype, "value": ev} for etype, ev in example_events().items()}


@router.post(
    "/events",
    dependencies=[Ingest, accepts("application/json", *CLOUDEVENTS)],
    status_code=202,
    response_model=IngestResult,
    responses={
        207: {"model": IngestResult, "description": "some events accepted, some rejected"},
        401: {"model": ErrorBody},
        403: {"model": ErrorBody},
        413: {"model": ErrorBody},
        422: {
            "model": IngestResult | ErrorBody,
            "description": "no event accepted (the result), or the body is not JSON",
        },
        503: {"model": ErrorBody},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/cloudevents+json": {"examples": _EXAMPLES},
                "application/cloudevents-batch+json": {"example": list(example_events().values())},
                "application/json": {"examples": _EXAMPLES},
            },
        }
    },
)
async def post_events(request: Request, settings: SettingsDep) -> JSONResponse:
    """One CloudEvent or a batch (up to 10,000): valid events are produced to Kafka (acks=all)
    before the answer; 202 all accepted, 207 some, 422 none."""
    body = await ingest.read_body(request)
    items, is_batch = ingest.decode_body(body, request.headers.get("content-type", ""))
    result = await run_in_threadpool(
        ingest.ingest,
        request.app.state.publisher,
        items,
        max_event_bytes=settings.max_event_bytes,
        single=not is_batch,
    )
    return JSONResponse(status_code=ingest.status_code(result), content=result.model_dump())
