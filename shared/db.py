"""The tables (SQLAlchemy Core metadata, the source Alembic migrations are checked against) and
engine helpers. The schema itself is created only by migrations (`itsm-metrics migrate`)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSTZMULTIRANGE
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from shared.errors import DatabaseUnavailable, NotMigrated

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _ts(name: str, **kw: object) -> Column[object]:
    return Column(name, DateTime(timezone=True), **kw)  # type: ignore[arg-type]


# Raw event store: every accepted event once, keyed by (source, id) — SPEC §3, §4.
events = Table(
    "events",
    metadata,
    Column("source", Text, primary_key=True),  # (source, id): the dedup key (SPEC §3)
    Column("id", Text, primary_key=True),
    Column("type", Text, nullable=False),
    _ts("time", nullable=False),
    Column("subject", Text),
    Column("entity_kind", Text, nullable=False),
    Column("entity_id", Text, nullable=False),
    Column("sequence", BigInteger),
    Column("data", JSONB, nullable=False),
    Column("topic", Text),
    Column("partition", Integer),
    Column("offset", BigInteger),
    _ts("received_at", nullable=False, server_default=func.now()),
    Index(None, "entity_kind", "entity_id"),
    # CI upserts by window (change_unauthorized_count): the only per-event facts read by time.
    Index(
        "ix_events_ci_upserts", "time", postgresql_where=text("type = 'itsm.config.ci.upserted'")
    ),
)

# Dead letters: bad input kept with its reason and raw bytes — SPEC §3.6.
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    _ts("received_at", nullable=False, server_default=func.now()),
    Column("reason", Text, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("topic", Text),
    Column("partition", Integer),
    Column("offset", BigInteger),
    Column("event_source", Text),
    Column("event_id", Text),
    Column("event_type", Text),
    _ts("replayed_at"),
    # A message redelivered after a crash must not be dead-lettered twice.
    UniqueConstraint("topic", "partition", "offset"),
)

# Ticket projection: the current state of each ticket, derived facts included — SPEC §3.1.
tickets = Table(
    "tickets",
    metadata,
    Column("ticket_id", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("service", Text),
    Column("priority", SmallInteger),
    Column("impact", SmallInteger),
    Column("urgency", SmallInteger),
    Column("channel", Text),
    Column("assignment_group", Text),
    Column("assignee", Text),
    Column("ci_ids", ARRAY(Text), nullable=False, server_default="{}"),
    _ts("opened_at", nullable=False),
    _ts("responded_at"),
    _ts("resolved_at"),
    _ts("closed_at"),
    Column("major", Boolean, nullable=False, server_default="false"),
    Column("problem_id", Text),
    Column("caused_by_change_id", Text),
    Column("knowledge_article_ids", ARRAY(Text), nullable=False, server_default="{}"),
    Column("reassignments", Integer, nullable=False, server_default="0"),
    Column("reopens", Integer, nullable=False, server_default="0"),
    Column("paused_seconds", Float, nullable=False, server_default="0"),
    Column("first_contact_resolution", Boolean),
    # [[time, state], ...] at every change of state: the SLA clock's pauses come from these.
    Column("transitions", JSONB, nullable=False, server_default="[]"),
    # When the ticket was open (from its transitions): the backlog at any instant, reopens and
    # cancellations included, is `open_periods @> instant` (GiST-indexed).
    Column("open_periods", TSTZMULTIRANGE, nullable=False, server_default="{}"),
    Column("sequence", BigInteger),
    _ts("last_event_time", nullable=False),
    Column("event_count", Integer, nullable=False),
    Column("snapshot", JSONB, nullable=False),
    _ts("updated_at", nullable=False, server_default=func.now()),
    Index(None, "opened_at"),
    Index(None, "responded_at"),
    Index(None, "resolved_at"),
    Index(None, "open_periods", postgresql_using="gist"),
)


def _projection_columns() -> list[Column[object]]:
    """What every entity projection carries besides its own fields."""
    return [
        Column("sequence", BigInteger),
        _ts("last_event_time", nullable=False),
        Column("event_count", Integer, nullable=False),
        Column("snapshot", JSONB, nullable=False),
        _ts("updated_at", nullable=False, server_default=func.now()),
    ]


# Each incident's SLA under the active catalog (SPEC §6.2), kept by the aggregator: a target is
# decided when met (at the response or resolution) or breached (at the deadline, even while
# the ticket is still open); undecided while it can still be met.
ticket_sla = Table(
    "ticket_sla",
    metadata,
    Column("ticket_id", Text, primary_key=True),
    Column("policy_id", Text),  # NULL: no policy applies, excluded from the SLA ratios
    Column("response_target_seconds", Float),
    Column("resolution_target_seconds", Float),
    _ts("response_due"),
    _ts("resolution_due"),
    Column("response_met", Boolean),
    Column("resolution_met", Boolean),
    _ts("response_decided_at"),
    _ts("resolution_decided_at"),
    _ts("ticket_updated_at", nullable=False),  # the projection version evaluated
    Column("catalog_sha", Text, nullable=False),
    _ts("evaluated_at", nullable=False),
    Index(None, "response_decided_at"),
    Index(None, "resolution_decided_at"),
    Index(None, "resolution_due"),
    # the deadlines still open, for the SLA job's passes (services/aggregator/sla.py)
    Index(
        "ix_ticket_sla_response_due_open",
        "response_due",
        postgresql_where=text("response_met IS NULL"),
    ),
    Index(
        "ix_ticket_sla_resolution_due_open",
        "resolution_due",
        postgresql_where=text("resolution_met IS NULL"),
    ),
)

# Changes and releases — SPEC §3.2. `implemented_at` places a change in its window.
changes = Table(
    "changes",
    metadata,
    Column("change_id", Text, primary_key=True),
    Column("change_type", Text),
    Column("service", Text),
    Column("ci_ids", ARRAY(Text), nullable=False, server_default="{}"),
    Column("risk", Text),
    Column("state", Text, nullable=False),
    _ts("requested_at"),
    _ts("approved_at"),
    _ts("rejected_at"),
    _ts("planned_start"),
    _ts("planned_end"),
    _ts("actual_start"),
    _ts("actual_end"),
    _ts("implemented_at"),
    Column("outcome", Text),
    Column("release_id", Text),
    Column("approved", Boolean, nullable=False, server_default="false"),
    *_projection_columns(),
    Index(None, "implemented_at"),
)

# Configuration items — SPEC §3.3. `depends_on` and `services` are the CMDB's edges.
config_items = Table(
    "config_items",
    metadata,
    Column("ci_id", Text, primary_key=True),
    Column("ci_type", Text),
    Column("name", Text),
    Column("services", ARRAY(Text), nullable=False, server_default="{}"),
    Column("owner", Text),
    Column("depends_on", ARRAY(Text), nullable=False, server_default="{}"),
    Column("critical", Boolean, nullable=False, server_default="false"),
    Column("attributes", JSONB, nullable=False, server_default="{}"),
    _ts("created_at", nullable=False),
    _ts("deleted_at"),
    *_projection_columns(),
)

cmdb_audits = Table(
    "cmdb_audits",
    metadata,
    Column("audit_id", Text, primary_key=True),
    Column("scope", Text),
    Column("cis_checked", Integer, nullable=False),
    Column("discrepancies", Integer, nullable=False),
    Column("ci_ids_with_discrepancy", ARRAY(Text), nullable=False, server_default="{}"),
    _ts("completed_at", nullable=False),
    *_projection_columns(),
    Index(None, "completed_at"),
)

# Monitoring alerts as intervals — SPEC §3.4: [started_at, ended_at), open while firing.
alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", Text, primary_key=True),
    Column("ci_id", Text),
    Column("service", Text),
    Column("check", Text),
    Column("severity", Text),
    Column("outage", Boolean, nullable=False),
    Column("threshold", Float),
    Column("value", Float),
    Column("state", Text, nullable=False),
    _ts("started_at", nullable=False),
    _ts("ended_at"),
    *_projection_columns(),
    Index(None, "ci_id", "started_at"),
)

# Registered monitoring checks: the monitoring points and thresholds inventory.
monitor_checks = Table(
    "monitor_checks",
    metadata,
    Column("check_id", Text, primary_key=True),
    Column("ci_id", Text),
    Column("metric", Text),
    Column("threshold", Float),
    _ts("registered_at", nullable=False),
    _ts("removed_at"),
    *_projection_columns(),
    # A CI's checks (monitoring coverage asks per CI and window).
    Index(None, "ci_id"),
)

calls = Table(
    "calls",
    metadata,
    Column("call_id", Text, primary_key=True),
    Column("answered", Boolean, nullable=False),
    Column("wait_seconds", Float),
    Column("handle_seconds", Float),
    Column("ticket_id", Text),
    Column("agent", Text),
    _ts("completed_at", nullable=False),
    *_projection_columns(),
    Index(None, "completed_at"),
)

surveys = Table(
    "surveys",
    metadata,
    Column("survey_id", Text, primary_key=True),
    Column("ticket_id", Text),
    Column("service", Text),
    Column("score", SmallInteger, nullable=False),
    _ts("completed_at", nullable=False),
    *_projection_columns(),
    Index(None, "completed_at"),
)

knowledge_articles = Table(
    "knowledge_articles",
    metadata,
    Column("article_id", Text, primary_key=True),
    Column("service", Text),
    Column("title", Text),
    _ts("published_at"),
    _ts("last_updated_at"),
    _ts("retired_at"),
    *_projection_columns(),
)

# Custom measurements — SPEC §3.5: facts, one row per event, not entity snapshots.
measurements = Table(
    "measurements",
    metadata,
    Column("source", Text, primary_key=True),
    Column("id", Text, primary_key=True),
    Column("indicator", Text, nullable=False),
    Column("service", Text),
    Column("value", Float, nullable=False),
    Column("unit", Text),
    _ts("period_start", nullable=False),
    _ts("period_end", nullable=False),
    _ts("recorded_at", nullable=False),
    Index(None, "indicator", "period_start"),
)

# Time ranges whose windows must be recomputed. Append-only marks: collectors never block on the
# aggregator, which claims marks with SKIP LOCKED, expands them into `window_queue` and deletes
# exactly the marks it read. The lane says what moved: `point` an instant (an event's time, a
# ticket's resolution: every indicator of the scope), `span` an interval (an open ticket, an
# outage, a CI's life: the indicators of a state or a time share).
dirty_windows = Table(
    "dirty_windows",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("scope", Text, nullable=False),
    Column("lane", Text, nullable=False, server_default="point"),
    _ts("range_start", nullable=False),
    _ts("range_end", nullable=False),
    _ts("marked_at", nullable=False, server_default=func.now()),
    # Earliest receipt time of an event behind this mark: event-to-indicator freshness.
    _ts("first_received_at", nullable=False),
)

# Windows waiting to be recomputed, one row per window and lane (`point`, `span`, and
# `percentiles`: the exact p50/p90 of a merged window, on a slower cadence). `scopes` are the
# entity kinds whose indicators to recompute ('*': all). A failing window is retried after
# `due_at` with backoff and parked after a few attempts, with its error, until retried by hand.
window_queue = Table(
    "window_queue",
    metadata,
    Column("window_kind", Text, primary_key=True),
    _ts("window_start", primary_key=True),
    Column("lane", Text, primary_key=True),
    _ts("window_end", nullable=False),
    Column("scopes", ARRAY(Text), nullable=False),
    _ts("first_received_at", nullable=False),
    _ts("marked_at", nullable=False),
    _ts("due_at", nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    _ts("parked_at"),
    Index(None, "due_at", postgresql_where=text("parked_at IS NULL")),
)

# Hour partials of the recent days: each hour's additive points at the day's groupings, so a
# new event costs the recompute of its hour, and its day, week and month change by the
# difference (services/aggregator/merge.py). A day has all its hours here or none
# (`partial_days`); days older than a few days have none.
indicator_partials = Table(
    "indicator_partials",
    metadata,
    Column("indicator", Text, primary_key=True),
    _ts("window_start", primary_key=True),
    Column("dimensions", JSONB, primary_key=True),
    Column("dim_keys", Text, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("sum_v", Numeric),
    Column("sum_w", Numeric),
    Index(None, "window_start"),
)

partial_days = Table(
    "partial_days",
    metadata,
    _ts("day_start", primary_key=True),
    _ts("created_at", nullable=False, server_default=func.now()),
)

# Every write to a tracked projection (tickets), as the row was before it (`old`, NULL for a
# new row), with the writing transaction (`writer`, its xid8 as a number): written by triggers
# (migration 0013), whoever writes. An hour partial computed at a snapshot adds what changed
# since, new minus old, instead of being recomputed from all its rows
# (services/aggregator/changes.py); changes every kept snapshot sees are deleted.
row_changes = Table(
    "row_changes",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("entity_kind", Text, nullable=False),
    Column("entity_id", Text, nullable=False),
    Column(
        "writer",
        BigInteger,
        nullable=False,
        server_default=text("(pg_current_xact_id())::text::bigint"),
    ),
    Column("old", JSONB),
    Index(None, "entity_kind", "writer"),
)

# The snapshot (pg_snapshot as text) each indicator's hour partial reflects.
partial_snapshots = Table(
    "partial_snapshots",
    metadata,
    Column("indicator", Text, primary_key=True),
    _ts("window_start", primary_key=True),
    Column("snap", Text, nullable=False),
    _ts("taken_at", nullable=False),
)

# Computed indicator points — SPEC §5. `dimensions` holds only the grouped dimensions; the
# all-dimensions total has `{}`. `dim_keys` (sorted, comma-joined names) selects a grouping.
indicator_values = Table(
    "indicator_values",
    metadata,
    Column("indicator", Text, primary_key=True),
    Column("window_kind", Text, primary_key=True),
    _ts("window_start", primary_key=True),
    Column("dimensions", JSONB, primary_key=True),
    _ts("window_end", nullable=False),
    Column("dim_keys", Text, nullable=False),
    Column("value", Float),
    Column("count", BigInteger, nullable=False),
    # Σ of the samples (and of their weights) in exact numeric: what a week or a month adds up
    # from its days for the indicators placed by an instant (counts, sums, means, ratios).
    Column("sum_v", Numeric),
    Column("sum_w", Numeric),
    Column("p50", Float),
    Column("p90", Float),
    _ts("computed_at", nullable=False, server_default=func.now()),
    Index(None, "indicator", "window_kind", "dim_keys", "window_start"),
    Index(None, "window_kind", "window_start"),
)


# What the point lane's passes changed the running windows' points by (day and longer), appended
# rather than updated in place, one row per difference naming the day (none when the day itself
# was replaced), week, month and quarter it adds to; the aggregator's `fold` job adds them to
# `indicator_values` every few seconds (services/aggregator/pending.py). Readers read both
# through `indicator_points`, which places each difference in its windows.
indicator_pending = Table(
    "indicator_pending",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("indicator", Text, nullable=False),
    Column("dimensions", JSONB, nullable=False),
    Column("dim_keys", Text, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("sum_v", Numeric),
    Column("sum_w", Numeric),
    _ts("day_start"),
    _ts("day_end"),
    _ts("week_start", nullable=False),
    _ts("week_end", nullable=False),
    _ts("month_start", nullable=False),
    _ts("month_end", nullable=False),
    _ts("quarter_start", nullable=False),
    _ts("quarter_end", nullable=False),
    _ts("added_at", nullable=False, server_default=func.now()),
    Index(None, "indicator", "dim_keys"),
)

# The view every reader of points uses (migrations 0016, 0017): a stored point plus its pending
# differences, its value recomputed from the sums when it has any; a point whose differences
# bring its count to 0 is gone. `version` (the row's transaction id plus its differences' ids)
# and `pending` change whenever the point does (an answer cache's key). Declared apart from
# `metadata`: it is not a table the migrations create as one.
views = MetaData()
indicator_points = Table(
    "indicator_points",
    views,
    Column("indicator", Text),
    Column("window_kind", Text),
    _ts("window_start"),
    Column("dimensions", JSONB),
    _ts("window_end"),
    Column("dim_keys", Text),
    Column("value", Float),
    Column("count", BigInteger),
    Column("sum_v", Numeric),
    Column("sum_w", Numeric),
    Column("p50", Float),
    Column("p90", Float),
    _ts("computed_at"),
    Column("version", BigInteger),
    Column("pending", BigInteger),  # how many pending differences it holds
)


# Objective status per service and window (SPEC §6.3), written by the aggregator right after the
# window's indicator values. `window_end` with `window_start` identifies the window kind, so the
# service indicators' SQL (which sees only a window's bounds) reads the right rows.
objective_status = Table(
    "objective_status",
    metadata,
    # A service's objective names its service, a customer's its customer; the organisation's
    # neither ('' where not named: a key column cannot be NULL).
    Column("service", Text, primary_key=True),
    Column("customer", Text, primary_key=True, server_default=""),
    Column("indicator", Text, primary_key=True),
    Column("window_kind", Text, primary_key=True),
    _ts("window_start", primary_key=True),
    _ts("window_end", nullable=False),
    Column("value", Float),
    Column("target", Float, nullable=False),
    Column("warning", Float),
    Column("comparator", Text, nullable=False),
    Column("weight", Float, nullable=False),
    Column("status", Text, nullable=False),
    _ts("evaluated_at", nullable=False),
    # the indicator point's `count` behind `value` (0 for a count with nothing to count; null
    # when there is no point), so an alert can wait for enough samples
    Column("samples", Integer),
    Index(None, "window_start", "window_end"),
)

# Drift of each series' last complete window against the complete windows before it (SPEC
# §6.4); `window_start` is the scored window's: a partial current window is never scored.
indicator_drift = Table(
    "indicator_drift",
    metadata,
    Column("indicator", Text, primary_key=True),
    Column("window_kind", Text, primary_key=True),
    Column("dimensions", JSONB, primary_key=True),
    _ts("window_start", primary_key=True),
    Column("value", Float, nullable=False),
    Column("score", Float, nullable=False),
    Column("baseline_mean", Float),
    Column("baseline_stddev", Float),
    Column("windows", Integer, nullable=False),
    Column("drifting", Boolean, nullable=False),
    _ts("computed_at", nullable=False),
)

# The /metrics snapshot (SPEC §8): the aggregator renders the indicator, objective and drift
# series every ITSM_EXPOSITION_INTERVAL_SECONDS and stores the text here, gzipped (a month of a
# million tickets: 9 MB of text, 0.7 MB gzipped, fetched by the api once per rendering); the
# api serves it and never computes a series. `rendered_at` is the database's clock when the
# rendering read its data, so the api judges staleness on the same clock whatever host it runs on.
exposition_snapshot = Table(
    "exposition_snapshot",
    metadata,
    Column("name", Text, primary_key=True),
    _ts("rendered_at", nullable=False),
    Column("body_gzip", LargeBinary, nullable=False),
    Column("series", Integer, nullable=False),
    Column("dropped", Integer, nullable=False),
    Column("render_seconds", Float, nullable=False),
)
# The one snapshot there is: indicators, objectives and drift.
INDICATORS_SNAPSHOT = "indicators"

# Applied service catalogs — SPEC §6.1: every version kept, at most one active (the partial
# unique index), so every process reads the same catalog and a bad file never replaces it.
catalog_versions = Table(
    "catalog_versions",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    _ts("applied_at", nullable=False, server_default=func.now()),
    Column("source", Text, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("content", Text, nullable=False),
    Column("active", Boolean, nullable=False, server_default="false"),
    Index(None, "active", unique=True, postgresql_where=text("active")),
)

# The improvement register (SPEC §7.4): one row per improvement, its state, the baseline captured
# on approval, the automatic verification's evidence and a manual decision beside it (JSONB: each
# a small document the api returns as it was written), and every transition it went through.
improvements = Table(
    "improvements",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("service", Text),
    Column("customer", Text),
    Column("indicator", Text, nullable=False),
    Column("window_kind", Text, nullable=False),
    Column("target", Float, nullable=False),
    Column("elements", ARRAY(Text), nullable=False),
    Column("source", Text, nullable=False),
    Column("links", JSONB, nullable=False),
    Column("actions", JSONB, nullable=False),
    Column("owner", Text, nullable=False),
    Column("due_date", Date),
    Column("verification_windows", Integer, nullable=False),
    Column("state", Text, nullable=False),
    Column("baseline", JSONB),
    _ts("verify_from"),
    _ts("verify_until"),
    Column("evidence", JSONB),
    Column("decision", JSONB),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
    Index(None, "state", "verify_until"),
)

improvement_transitions = Table(
    "improvement_transitions",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column(
        "improvement_id",
        BigInteger,
        ForeignKey("improvements.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("from_state", Text),
    Column("to_state", Text, nullable=False),
    Column("by", Text, nullable=False),
    Column("note", Text, nullable=False, server_default=""),
    _ts("at", nullable=False),
    Index(None, "improvement_id", "id"),
)

# Service reviews that took place (SPEC §7.3): one row per review with its scope (`scope_kind`
# service | customer | assignment_group, and the id) and period (the label as given, canonical,
# and its bounds in the reporting time zone); participants and decisions are JSONB lists of text.
reviews = Table(
    "reviews",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("kind", Text, nullable=False),
    Column("level", SmallInteger, nullable=False),
    Column("scope_kind", Text, nullable=False),
    Column("scope_id", Text, nullable=False),
    Column("period", Text, nullable=False),
    Column("period_kind", Text, nullable=False),
    _ts("period_start", nullable=False),
    _ts("period_end", nullable=False),
    _ts("held_at", nullable=False),
    Column("participants", JSONB, nullable=False),
    Column("notes", Text, nullable=False, server_default=""),
    Column("decisions", JSONB, nullable=False),
    Column("recorded_by", Text, nullable=False),
    _ts("created_at", nullable=False),
    Index(None, "kind", "scope_kind", "scope_id", "held_at"),
    Index(None, "period"),
)

# A review's action items, with their current state, and every change of state (who, when, note).
review_action_items = Table(
    "review_action_items",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("review_id", BigInteger, ForeignKey("reviews.id", ondelete="CASCADE"), nullable=False),
    Column("title", Text, nullable=False),
    Column("owner", Text, nullable=False),
    Column("due_date", Date),
    Column("state", Text, nullable=False),
    Column("note", Text, nullable=False, server_default=""),
    _ts("updated_at", nullable=False),
    Column("updated_by", Text, nullable=False),
    Index(None, "review_id", "id"),
)

review_action_item_changes = Table(
    "review_action_item_changes",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column(
        "item_id",
        BigInteger,
        ForeignKey("review_action_items.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("from_state", Text),
    Column("to_state", Text, nullable=False),
    Column("by", Text, nullable=False),
    Column("note", Text, nullable=False, server_default=""),
    _ts("at", nullable=False),
    Index(None, "item_id", "id"),
)


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=5,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 5},
    )


def migrations_dir() -> Path:
    import migrations

    return Path(migrations.__file__).parent


def alembic_config(url: str) -> object:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("postgresql+psycopg://x/x"))  # type: ignore[arg-type]
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            exists = conn.execute(text("SELECT to_regclass('alembic_version')")).scalar()
            if exists is None:
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except OperationalError as err:
        raise DatabaseUnavailable(describe_db_error(engine, err)) from None


def unreachable(err: DBAPIError) -> bool:
    """A lost or refused connection (SQLSTATE class 08, a server shutting down or starting up),
    not a failure of the statement (which a statement timeout is): the database is away, the
    same work may succeed once it is back."""
    if err.connection_invalidated:
        return True
    sqlstate = getattr(err.orig, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in ("57P01", "57P02", "57P03")


def describe_db_error(engine: Engine, err: Exception) -> str:
    reason = str(getattr(err, "orig", err)).strip().splitlines()[0]
    where = engine.url.render_as_string(hide_password=True)
    return (
        f"PostgreSQL unreachable at {where} ({reason}): "
        "check ITSM_DATABASE_URL and that the server is running"
    )


def check_migrated(engine: Engine) -> None:
    """Raise unless the database schema is at the migrations' head (SPEC §7.5, issue 4)."""
    current = current_revision(engine)
    head = head_revision()
    if current != head:
        state = "has no schema" if current is None else f"is at revision {current}"
        raise NotMigrated(
            f"database {state}, code expects {head}: run `itsm-metrics migrate` first"
        )


def migrate(url: str) -> tuple[str | None, str]:
    """Run migrations to head; returns (revision before, revision after)."""
    from alembic import command

    engine = make_engine(url, pool_size=1)
    try:
        before = current_revision(engine)
    finally:
        engine.dispose()
    command.upgrade(alembic_config(url), "head")  # type: ignore[arg-type]
    return before, head_revision()


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def rows_json(rows: list[dict[str, Any]]) -> str:
    """Rows as one JSON array for PostgreSQL to map onto a table (datetimes in RFC 3339)."""
    try:
        return orjson.dumps(rows).decode()
    except TypeError:
        # An integer beyond 64 bits, which orjson cannot write, in a snapshot read back from
        # PostgreSQL (which keeps JSON numbers exactly): the standard library can.
        return json.dumps(rows, default=_json_default)
