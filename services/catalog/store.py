"""The active catalog, shared by every process through PostgreSQL (`catalog_versions`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import Connection

from services.catalog.load import parse_catalog
from services.catalog.model import Catalog, CatalogError
from shared.db import catalog_versions


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


def apply_catalog(conn: Connection, text_: str, source: str) -> tuple[Catalog, bool]:
    """Validate, then store as the active version unless the same text already is. The caller
    owns the transaction; an invalid catalog raises `CatalogError` and changes nothing."""
    catalog = parse_catalog(text_, source)
    digest = hashlib.sha256(text_.encode("utf-8")).hexdigest()
    # Two appliers at once: the second waits, then sees the first's version (readers never wait).
    conn.execute(text("LOCK TABLE catalog_versions IN SHARE ROW EXCLUSIVE MODE"))
    active = active_version(conn)
    if active is not None and active.sha256 == digest:
        return catalog, False
    conn.execute(update(catalog_versions).where(catalog_versions.c.active).values(active=False))
    conn.execute(
        insert(catalog_versions).values(source=source, sha256=digest, content=text_, active=True)
    )
    return catalog, True


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
