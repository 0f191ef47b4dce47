"""`/v1/reviews` records and `/v1/reviews/schedule` (SPEC §7.3): writes need the manage or admin
token, reads the read token. Each write is one transaction, committed before the answer."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
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
    SettingsDep,
    wants_html,
)
from services.api.params import Instant, RowId
from services.api.reviews import customer as customer_review
from services.api.reviews import customer_html, team_html
from services.api.reviews import service as reviews
from services.api.reviews import team as team_review
from services.api.reviews.customer_schemas import CustomerReview
from services.api.reviews.schemas import (
    ActionItem,
    ActionItemPatch,
    Review,
    ReviewCreate,
    ReviewList,
    Schedule,
)
from services.api.reviews.team_schemas import TeamReview
from services.catalog.model import ReviewKind

router = APIRouter(prefix="/v1", tags=["reviews"])


async def _tz(settings: SettingsDep) -> ZoneInfo:
    return ZoneInfo(settings.reporting_timezone)


Tz = Annotated[ZoneInfo, Depends(_tz)]


@router.post(
    "/reviews",
    status_code=201,
    response_model=Review,
    responses=ERRORS,
    dependencies=[Manage, JsonBody],
)
def create_review(body: ReviewCreate, db: Db, catalogs: Catalogs, now: Now, tz: Tz) -> Review:
    """Record a review that took place, with its action items."""
    found = reviews.create(db, catalogs.get(db)[0], body, now, tz)
    db.commit()
    return found


@router.get(
    "/reviews", response_model=ReviewList, responses=ERRORS, dependencies=[Read, KnownQuery]
)
def list_reviews(
    db: Db,
    kind: ReviewKind | None = None,
    service: str | None = None,
    customer: str | None = None,
    assignment_group: str | None = None,
    period: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ReviewList:
    """Reviews, the most recently held first, with their action items."""
    scope = {"service": service, "customer": customer, "assignment_group": assignment_group}
    return reviews.list_all(db, kind=kind, scope=scope, period=period, limit=limit)


@router.get(
    "/reviews/schedule", response_model=Schedule, responses=ERRORS, dependencies=[Read, KnownQuery]
)
def review_schedule(
    db: Db,
    catalogs: Catalogs,
    now: Now,
    tz: Tz,
    at: Instant | None = None,
    periods: Annotated[int, Query(ge=1, le=24)] = 4,
) -> Schedule:
    """The catalog's review schedule at `at` (default now): for each scheduled review its
    current period and the `periods - 1` before it, `held`, `upcoming`, `due` or `overdue`."""
    return reviews.schedule(db, catalogs.get(db)[0], at or now, tz, periods)


@router.get(
    "/reviews/customer",
    response_model=CustomerReview,
    responses={**ERRORS, 200: {"content": {"text/html": {}}}},
    dependencies=[Read, KnownQuery],
)
def customer_review_of(
    request: Request,
    db: Db,
    catalogs: Catalogs,
    now: Now,
    reading: ReadingDep,
    period: Annotated[str, Query(max_length=20, examples=["2026-10", "2026-W41"])],
    customer: Annotated[str | None, Query(max_length=300)] = None,
    service: Annotated[str | None, Query(max_length=300)] = None,
    history: Annotated[
        int,
        Query(
            ge=1,
            le=customer_review.HISTORY_MAX,
            description="periods in each objective's and key figure's history, the reviewed "
            "one included",
        ),
    ] = customer_review.HISTORY,
    format: Format = None,
) -> CustomerReview | HTMLResponse:
    """The customer review of one `service` or `customer` for a month (`2026-10`), an ISO
    week (`2026-W41`) or a quarter (`2026-Q4`): SLA per objective with the previous period,
    trend and history (the last `history` periods), objectives met, service performance,
    satisfaction, workload, changes, problems, action items and improvements. Indicator numbers
    are those `GET /v1/indicators/{id}` answers for the same window and filter. As a printable
    page with charts (trend lines, bars) when asked for HTML (`?format=html` or
    `Accept: text/html`)."""
    found = customer_review.review(
        db,
        catalogs.get(db)[0],
        customer=customer,
        service=service,
        period_text=period,
        reading=reading,
        now=now,
        history=history,
    )
    if wants_html(request, format):
        return HTMLResponse(customer_html.render(found))
    return found


@router.get(
    "/reviews/team",
    response_model=TeamReview,
    responses={**ERRORS, 200: {"content": {"text/html": {}}}},
    dependencies=[Read, KnownQuery],
)
def team_review_of(
    request: Request,
    db: Db,
    catalogs: Catalogs,
    now: Now,
    reading: ReadingDep,
    assignment_group: Annotated[str, Query(max_length=300)],
    period: Annotated[str, Query(max_length=20, examples=["2026-10", "2026-W41"])],
    format: Format = None,
) -> TeamReview | HTMLResponse:
    """The team review of one `assignment_group` for a month or an ISO week: the previous
    plan's progress, the group's brief (as the indicator API answers it), difficult tickets
    (most reassigned, longest open, reopened) and unresolved ones with links, the problems it
    worked on, the next plan. As a printable page when asked for HTML."""
    found = team_review.review(
        db,
        catalogs.get(db)[0],
        assignment_group=assignment_group,
        period_text=period,
        reading=reading,
        now=now,
    )
    if wants_html(request, format):
        return HTMLResponse(team_html.render(found))
    return found


@router.get(
    "/reviews/{review_id:int}",
    response_model=Review,
    responses=ERRORS,
    dependencies=[Read, KnownQuery],
)
def get_review(review_id: RowId, db: Db) -> Review:
    """One review with its action items, the previous review of the same kind and scope with
    its items' progress, and the items still open from earlier reviews."""
    return reviews.get(db, review_id)


@router.patch(
    "/reviews/{review_id:int}/action-items/{item_id:int}",
    response_model=ActionItem,
    responses=ERRORS,
    dependencies=[Manage, JsonBody],
)
def patch_action_item(
    review_id: RowId, item_id: RowId, body: ActionItemPatch, db: Db, now: Now
) -> ActionItem:
    """Change an action item's state, note, owner or due date: `open ↔ in_progress → done |
    dropped`; a done or dropped item is final (409 with the allowed states)."""
    found = reviews.update_item(db, review_id, item_id, body, now)
    db.commit()
    return found
