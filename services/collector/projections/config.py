"""Configuration item and CMDB audit projections (SPEC §3.3)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.collector.projections import Record, bookkeeping, fold, verb


def project_ci(history: Iterable[Record]) -> dict[str, Any]:
    events, snap = fold(history)
    deleted = verb(events[-1].type) == "deleted"
    return {
        "ci_id": snap["ci_id"],
        "ci_type": snap.get("ci_type"),
        "name": snap.get("name"),
        "services": list(snap.get("services") or []),
        "owner": snap.get("owner"),
        "depends_on": list(snap.get("depends_on") or []),
        "critical": bool(snap.get("critical") or False),
        "attributes": snap.get("attributes") or {},
        "created_at": events[0].time,
        "deleted_at": events[-1].time if deleted else None,
        **bookkeeping(events, snap),
    }


def project_audit(history: Iterable[Record]) -> dict[str, Any]:
    events, snap = fold(history)
    return {
        "audit_id": snap["audit_id"],
        "scope": snap.get("scope"),
        "cis_checked": snap["cis_checked"],
        "discrepancies": snap["discrepancies"],
        "ci_ids_with_discrepancy": list(snap.get("ci_ids_with_discrepancy") or []),
        "completed_at": events[-1].time,
        **bookkeeping(events, snap),
    }
