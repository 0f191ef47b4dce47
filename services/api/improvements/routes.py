"""`/v1/improvements` (SPEC §7.4): writes need the manage or admin token, reads the read token.
Each write is one transaction, committed before the answer."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from services.api.deps import (
    ERRORS,
    Catalogs,
    Db,
    Format,
    JsonBody,
    KnownQuery,
    Manage,
    Now,
    Read,
    ReadingDep,
    wants_html,
)
from services.api.improvements import report_html
from services.api.improvements import service as improvements
from services.api.improvements.schemas import (
    Improvement,
    ImprovementCreate,
    ImprovementList,
    ImprovementPatch,
    Report,
    TransitionRequest,
)
from services.api.params import RowId

router = APIRouter(prefix="/v1", tags=["improvements"])


@router.post(
    "/improvements",
    status_code=201,
    response_model=Improvement,
    responses=ERRORS,
    dependencies=[Manage, JsonBody],
)
def create_improvement(
    body: ImprovementCreate, db: Db, catalogs: Catalogs, now: Now
) -> Improvement:
    """Propose an improvement (state `proposed`)."""
    found = improvements.create(db, catalogs.get(db)[0], body, now)
    db.commit()
    return found


@router.get(
    "/improvements",
    response_model=ImprovementList,
    responses=ERRORS,
    dependencies=[Read, KnownQuery],
)
def list_improvements(
    db: Db, state: str | None = None, service: str | None = None, customer: str | None = None
) -> ImprovementList:
    """Improvements, oldest first, filtered by state, service or customer."""
    return improvements.list_all(db, state=state, service=service, customer=customer)


@router.get(
    "/improvements/{improvement_id}",
    response_model=Improvement,
    responses=ERRORS,
    dependencies=[Read, KnownQuery],
)
def get_improvement(improvement_id: RowId, db: Db) -> Improvement:
    """One improvement with its baseline, evidence, decision and every transition."""
    return improvements.get(db, improvement_id)


@router.patch(
    "/improvements/{improvement_id}",
    response_model=Improvement,
    responses=ERRORS,
    dependencies=[Manage, JsonBody],
)
def patch_improvement(
    improvement_id: RowId, body: ImprovementPatch, db: Db, catalogs: Catalogs, now: Now
) -> Improvement:
    """Change fields while the improvement is open (409 otherwise); not its state."""
    found = improvements.update_fields(db, catalogs.get(db)[0], improvement_id, body, now)
    db.commit()
    return found


@router.post(
    "/improvements/{improvement_id}/transitions",
    response_model=Improvement,
    responses=ERRORS,
    dependencies=[Manage, JsonBody],
)
def transition_improvement(
    improvement_id: RowId,
    body: TransitionRequest,
    db: Db,
    catalogs: Catalogs,
    now: Now,
    reading: ReadingDep,
) -> Improvement:
    """Move the improvement along `proposed → approved → in_progress → implemented →
    verified | not_achieved`, or to `cancelled` from an open state; 409 lists the allowed
    states. Approval captures the baseline; `implemented` starts the verification period."""
    found = improvements.transition(db, catalogs.get(db)[0], improvement_id, body, now, reading)
    db.commit()
    return found


@router.get(
    "/improvements/{improvement_id}/report",
    response_model=Report,
    responses={**ERRORS, 200: {"content": {"text/html": {}}}},
    dependencies=[Read, KnownQuery],
)
def improvement_report(
    improvement_id: RowId, request: Request, db: Db, catalogs: Catalogs, format: Format = None
) -> Report | HTMLResponse:
    """The improvement's outcome in numbers: baseline, target, observed, change, evidence. As a
    printable page with its chart when asked for HTML (`?format=html` or `Accept: text/html`)."""
    found = improvements.report(db, catalogs.get(db)[0], improvement_id)
    if wants_html(request, format):
        return HTMLResponse(report_html.render(found))
    return found
