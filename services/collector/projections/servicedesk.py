"""Service desk call, satisfaction survey and knowledge article projections (SPEC §3.5)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.collector.projections import Record, bookkeeping, first_time, fold, last_time, verb


def project_call(history: Iterable[Record]) -> dict[str, Any]:
    events, snap = fold(history)
    return {
        "call_id": snap["call_id"],
        "answered": snap["answered"],
        "wait_seconds": snap.get("wait_seconds"),
        "handle_seconds": snap.get("handle_seconds"),
        "ticket_id": snap.get("ticket_id"),
        "agent": snap.get("agent"),
        "completed_at": events[-1].time,
        **bookkeeping(events, snap),
    }


def project_survey(history: Iterable[Record]) -> dict[str, Any]:
    events, snap = fold(history)
    return {
        "survey_id": snap["survey_id"],
        "ticket_id": snap.get("ticket_id"),
        "service": snap.get("service"),
        "score": snap["score"],
        "completed_at": events[-1].time,
        **bookkeeping(events, snap),
    }


def project_article(history: Iterable[Record]) -> dict[str, Any]:
    events, snap = fold(history)
    retired = verb(events[-1].type) == "retired"
    return {
        "article_id": snap["article_id"],
        "service": snap.get("service"),
        "title": snap.get("title"),
        "published_at": first_time(events, "published"),
        "last_updated_at": last_time(events, "published", "updated"),
        "retired_at": events[-1].time if retired else None,
        **bookkeeping(events, snap),
    }
