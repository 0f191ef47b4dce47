"""What the event contract, the catalog and the aggregator share about indicators (SPEC §3.5, §5):
their ids and the direction that is better for each."""

from __future__ import annotations

import re
from typing import Literal

Direction = Literal["higher_is_better", "lower_is_better", "neutral"]

# A custom indicator id becomes the Prometheus metric `itsm_<id>` (SPEC §8).
METRIC_ID = re.compile(r"[a-z][a-z0-9_]{0,99}")
# Operational metric names (SPEC §8) a custom id must not shadow: the snapshot of indicators
# and the api's own metrics are served as one text, where a family may appear only once.
RESERVED_PREFIXES = (
    "collector_",
    "aggregator_",
    "api_",
    "http_",
    "event_to_indicator",
    "objective_",
    "indicator_",
    "exposition_",
)


def custom_id_problem(value: str) -> str | None:
    """Why `value` cannot name a custom indicator, or None when it can."""
    if not METRIC_ID.fullmatch(value):
        return (
            f"bad indicator id {value[:120]!r}: use lower_snake_case, at most 100 characters "
            "(it becomes the metric itsm_<id>)"
        )
    if value.startswith(RESERVED_PREFIXES):
        return f"indicator id {value!r} would shadow an operational metric itsm_{value}…"
    if value in SPEC_INDICATOR_IDS:
        return f"{value} is a built-in indicator computed from events; use another id"
    return None


# Every indicator id of SPEC §5.1 (technical), 5.2 (process), 5.3 (service) and the one of §7.3
# (reviews). The aggregator's registry says how each is computed; this list lets a catalog name
# those not implemented yet.

SPEC_INDICATOR_IDS: frozenset[str] = frozenset(
    {
        # 5.1 technical
        "ci_availability_ratio",
        "ci_outage_count",
        "ci_mtbf_seconds",
        "ci_mttr_seconds",
        "monitor_alerts_count",
        "monitoring_coverage_ratio",
        "monitoring_checks_count",
        # 5.2 process
        "ticket_opened_count",
        "ticket_resolved_count",
        "incident_backlog_count",
        "incident_response_time_seconds",
        "incident_resolution_time_seconds",
        "incident_sla_response_met_ratio",
        "incident_sla_resolution_met_ratio",
        "incident_reassignment_ratio",
        "incident_dispatch_accuracy_ratio",
        "incident_reopen_ratio",
        "incident_first_contact_resolution_ratio",
        "incident_knowledge_usage_ratio",
        "major_incident_count",
        "problem_resolution_time_seconds",
        "incident_problem_linked_ratio",
        "change_count",
        "change_success_ratio",
        "change_failure_ratio",
        "change_emergency_ratio",
        "change_lead_time_seconds",
        "change_unauthorized_count",
        "cmdb_accuracy_ratio",
        "call_answer_ratio",
        "call_abandon_ratio",
        "call_handle_time_seconds",
        "call_logging_ratio",
        "knowledge_articles_count",
        "knowledge_update_ratio",
        "csat_score",
        # 5.3 service
        "service_availability_ratio",
        "service_objectives_met_ratio",
        "service_health_score",
        # 7.3 reviews
        "review_completion_ratio",
    }
)
