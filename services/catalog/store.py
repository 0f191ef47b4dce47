"""The active catalog, shared by every process through PostgreSQL (`catalog_versions`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import Connection

from services.catalog.load import parse_catalog
from services.catalog.model import Catalog, CatalogError, ReviewSchedule
from shared.db import catalog_versions
from shared.dirty import mark_dirty

# How far back a changed review schedule recomputes `review_completion_ratio` (its dirty scope
# `review`): the current and the previous window of every kind, which objectives and /metrics
# read (two quarters are at most 184 days, plus a time zone's offset). Older windows keep the
# schedule they were computed with (the one straddling the bound adds up days of both) until
# `itsm-metrics recompute --since`, as after any other catalog change.
SCHEDULE_CHANGE_RECOMPUTES = timedelta(days=186)


@dataclass(frozen=True)
class CatalogVersion:
    id: int
    applied_at: datetime
    source: str
    sha256: str
    active: bool


_VERSION_COLUMNS = (
    catalog_versions.c.id,
    catalog_versions.c.applied_at,
    catalog_versions.c.source,
    catalog_versions.c.sha256,
    catalog_versions.c.active,
)


def apply_catalog(
    conn: Connection,
    text_: str,
    source: str,
    now: datetime | None = None,
    *,
    timezone: str | None = None,
) -> tuple[Catalog, bool]:
    """Validate, then store as the active version unless the same text already is. The caller
    owns the transaction; an invalid catalog raises `CatalogError` and changes nothing. A changed
    review schedule marks the recent windows of `review_completion_ratio` dirty (as of `now`).
    `timezone`: the reporting time zone in force, which the catalog may only repeat (every
    command applying a file passes it; tests may leave it out)."""
    catalog = parse_catalog(text_, source, timezone=timezone)
    digest = hashlib.sha256(text_.encode("utf-8")).hexdigest()
    # Two appliers at once: the second waits, then sees the first's version (readers never wait).
    conn.execute(text("LOCK TABLE catalog_versions IN SHARE ROW EXCLUSIVE MODE"))
    active = active_version(conn)
    if active is not None and active.sha256 == digest:
        return catalog, False
    before = _schedule_before(conn, active)
    conn.execute(update(catalog_versions).where(catalog_versions.c.active).values(active=False))
    conn.execute(
        insert(catalog_versions).values(source=source, sha256=digest, content=text_, active=True)
    )
    if catalog.review_schedule() != before:
        now = now or datetime.now(UTC)
        mark_dirty(conn, {"review": (set(), [(now - SCHEDULE_CHANGE_RECOMPUTES, now)])}, now)
    return catalog, True


def _schedule_before(conn: Connection, active: CatalogVersion | None) -> ReviewSchedule | None:
    """The review schedule of the active catalog (the default's when none is), or None when it
    no longer validates (any schedule is then a change)."""
    if active is None:
        return Catalog.default().review_schedule()
    try:
        return active_catalog(conn).review_schedule()
    except CatalogError:
        return None


def active_version(conn: Connection) -> CatalogVersion | None:
    row = conn.execute(select(*_VERSION_COLUMNS).where(catalog_versions.c.active)).one_or_none()
    return CatalogVersion(*row) if row is not None else None


def active_catalog(conn: Connection) -> Catalog:
    """The active catalog, or the built-in default when none was ever applied."""
    row = conn.execute(
        select(catalog_versions.c.id, catalog_versions.c.source, catalog_versions.c.content).where(
            catalog_versions.c.active
        )
    ).one_or_none()
    if row is None:
        return Catalog.default()
    try:
        return parse_catalog(row.content, row.source)
    except CatalogError as err:  # valid when applied, refused by a stricter release since
        raise CatalogError(
            f"the active catalog (version {row.id}) no longer validates: {err.message}; "
            "fix it and run `itsm-metrics catalog apply`",
            details=err.details,
        ) from None


DEFAULT_SHA = "built-in default"


class CatalogCache:
    """The active catalog for a long-lived process: parsed again only when another version
    became active (one indexed lookup per call otherwise)."""

    def __init__(self) -> None:
        self._catalog = Catalog.default()
        self._sha = DEFAULT_SHA

    def get(self, conn: Connection) -> tuple[Catalog, str]:
        version = active_version(conn)
        sha = version.sha256 if version is not None else DEFAULT_SHA
        if sha != self._sha:
            self._catalog, self._sha = active_catalog(conn), sha
        return self._catalog, sha


def catalog_history(conn: Connection, limit: int = 20) -> list[CatalogVersion]:
    """Applied versions, newest first."""
    rows = conn.execute(
        select(*_VERSION_COLUMNS).order_by(catalog_versions.c.id.desc()).limit(limit)
    )
    return [CatalogVersion(*row) for row in rows]
