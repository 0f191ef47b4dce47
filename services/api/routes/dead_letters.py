from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Query

from services.api.deps import Admin, Db, KnownQuery
from services.api.params import BIGINT_MAX
from services.api.schemas import DeadLetterItem, DeadLetterList, ErrorBody
from services.collector import dead_letters
from services.collector.dead_letters import StoredDeadLetter

# Raw payloads can carry personal data: admin token only.
router = APIRouter(prefix="/v1", tags=["dead letters"], dependencies=[Admin, KnownQuery])


def _text(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _item(d: StoredDeadLetter) -> DeadLetterItem:
    return DeadLetterItem(
        id=d.id,
        received_at=d.received_at,
        reason=d.reason,
        topic=d.topic,
        partition=d.partition,
        offset=d.offset,
        event_source=d.event_source,
        event_id=d.event_id,
        event_type=d.event_type,
        replayed_at=d.replayed_at,
        raw_text=_text(d.raw),
        raw_base64=base64.b64encode(d.raw).decode("ascii"),
    )


@router.get(
    "/dead-letters",
    response_model=DeadLetterList,
    responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
def list_dead_letters(
    db: Db,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[
        int | None, Query(ge=1, le=BIGINT_MAX, description="only ids below this one")
    ] = None,
    replayed: Annotated[bool | None, Query(description="replayed (true) or not (false)")] = None,
    reason: Annotated[str | None, Query(max_length=1000, description="reason substring")] = None,
) -> DeadLetterList:
    """Events the collector refused (SPEC §3.6), newest first, with their reason, where they
    were read and their raw bytes; replay them with `itsm-metrics dead-letters replay`."""
    page = dead_letters.list_dead_letters(
        db, limit=limit, before_id=before_id, replayed=replayed, reason_contains=reason
    )
    return DeadLetterList(items=[_item(d) for d in page.items], next_before_id=page.next_before_id)
