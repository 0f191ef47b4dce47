"""The service catalog (SPEC §6.1): its definition (`model`), reading a file with line-numbered
errors (`load`) and the active version shared through PostgreSQL (`store`)."""

from services.catalog.load import (
    load_catalog,
    parse_catalog,
    read_catalog_text,
    timezone_mismatch,
)
from services.catalog.model import (
    ANY_SERVICE,
    BUILTIN_CALENDAR,
    Catalog,
    CatalogError,
    SlaPolicy,
    parse_duration,
    policy_for,
)
from services.catalog.store import (
    CatalogCache,
    CatalogVersion,
    active_catalog,
    active_version,
    apply_catalog,
    catalog_history,
)

__all__ = [
    "ANY_SERVICE",
    "BUILTIN_CALENDAR",
    "Catalog",
    "CatalogCache",
    "CatalogError",
    "CatalogVersion",
    "SlaPolicy",
    "active_catalog",
    "active_version",
    "apply_catalog",
    "catalog_history",
    "load_catalog",
    "parse_catalog",
    "parse_duration",
    "policy_for",
    "read_catalog_text",
    "timezone_mismatch",
]
