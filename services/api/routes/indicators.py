from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State

from services.aggregator.indicators import all_indicators
from services.api import indicators
from services.api.deps import Catalogs, Db, KnownQuery, Read, SettingsDep
from services.api.params import Instant
from services.api.schemas import ErrorBody, IndicatorList, IndicatorSeries
from shared.settings import Settings

router = APIRouter(prefix="/v1", tags=["indicators"], dependencies=[Read])


def _dimension_parameters() -> list[dict[str, object]]:
    """The dimension filters for the OpenAPI document, from the registry: the route reads them
    from the query string as they come, and `indicators.plan` accepts those of the indicator
    asked for (custom measurements too) and refuses any other name."""
    every = dict.fromkeys(d for ind in all_indicators() for d in ind.all_dimensions)
    return [
        {
            "name": d,
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": f"only points whose {d} is this value; for an indicator listing "
            f"`{d}` among its `dimensions` (GET /v1/indicators), any other refuses it (422)",
        }
        for d in every
    ]


@router.get("/indicators", response_model=IndicatorList, dependencies=[KnownQuery])
def list_indicators(db: Db, catalogs: Catalogs) -> IndicatorList:
    """The indicator catalog: id, family, unit, direction, definition, dimensions; custom
    measurement indicators (family `custom`) included."""
    return IndicatorList(indicators=indicators.catalog(db, catalogs.get(db)[0]))


@router.get(
    "/indicators/{indicator_id}",
    response_model=IndicatorSeries,
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    openapi_extra={"parameters": _dimension_parameters()},
)
async def get_indicator(
    request: Request,
    indicator_id: str,
    settings: SettingsDep,
    window: str = "day",
    start: Instant | None = None,
    end: Instant | None = None,
    group_by: Annotated[list[str] | None, Query()] = None,
) -> Response:
    """Points of one indicator per window, filtered by dimensions and grouped by `group_by`
    (repeat it or comma-separate: `group_by=service,priority`). Answers are cached: the same
    request within `ITSM_READ_CACHE_SECONDS` gets the same answer without a database read, and
    answers of stored groupings are kept, validated against the stored rows; gzipped when the
    client accepts it."""
    # Every other parameter is a dimension filter; plan refuses one the indicator lacks, naming
    # its parameters (a misspelt `servcie=` or `assignee=`, never silently ignored). This route
    # has no KnownQuery: what it accepts depends on the indicator.
    filters = {k: v for k, v in request.query_params.items() if k not in indicators.PARAMETERS}
    groups = [g.strip() for item in group_by or [] for g in item.split(",") if g.strip()]
    state = request.app.state
    cache: indicators.SeriesCache = state.series_cache
    asked = (indicator_id, window, start, end, tuple(sorted(filters.items())), tuple(groups))
    answer = cache.recent(asked)
    if answer is None:  # not fresh in memory: read in a worker thread (the event loop never waits)
        read: indicators.Answer | None = None
        try:
            read = await run_in_threadpool(
                _answer, state, settings, indicator_id, window, start, end, filters, groups
            )
        finally:
            cache.remember(asked, read)
        answer = read
    if answer.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        headers = {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
        return Response(answer.gzipped, media_type="application/json", headers=headers)
    return Response(answer.body, media_type="application/json", headers={"Vary": "Accept-Encoding"})


def _answer(
    state: State,
    settings: Settings,
    indicator_id: str,
    window: str,
    start: datetime | None,
    end: datetime | None,
    filters: dict[str, str],
    groups: list[str],
) -> indicators.Answer:
    with state.engine.connect() as db:
        active, sha = state.catalogs.get(db)
        query = indicators.plan(
            db,
            active,
            indicator_id,
            window=window,
            start=start,
            end=end,
            filters=filters,
            group_by=groups,
            tz=ZoneInfo(settings.reporting_timezone),
            hour_retention_days=settings.hour_retention_days,
        )
        answer: indicators.Answer = state.series_cache.answer(db, active, sha, query)
        return answer
