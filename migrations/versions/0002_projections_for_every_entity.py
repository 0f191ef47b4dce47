"""projections for every entity

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 03:24:17.080621
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.Text(), nullable=False),
        sa.Column("ci_id", sa.Text(), nullable=True),
        sa.Column("service", sa.Text(), nullable=True),
        sa.Column("check", sa.Text(), nullable=True),
        sa.Column("severity", sa.Text(), nullable=True),
        sa.Column("outage", sa.Boolean(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sequence", sa.BigInteger(), nullable=True),
        sa.Column("last_event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("snapshot", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_alerts")),
    )
    op.create_index(
        op.f("ix_alerts_ci_id_started_at"), "alerts", ["ci_id", "started_at"], unique=False
    )
    op.create_table(
        "calls",
        sa.Column("call_id", sa.Text(), nullable=False),
        sa.Column("answered", sa.Boolean(), nullable=False),
        sa.Column("wait_seconds", sa.Float(), nullable=True),
        sa.Column("handle_seconds", sa.Float(), nullable=True),
        sa.Column("ticket_id", sa.Text(), nullable=True),
        sa.Column("agent", sa.Text(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=True),
        sa.Column("last_event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("snapshot", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_calls")),
    )
    op.create_index(op.f("ix_calls_completed_at"), "calls", ["completed_at"], unique=False)
    op.create_table(
        "changes",
        sa.Column("change_id", sa.Text(), nullable=False),
        sa.Column("change_type", sa.Text(), nullable=True),
        sa.Column("service", sa.Text(), nullable=True),
        sa.Column("ci_ids", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("risk", sa.Text(), nullable=True),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("planned_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("planned_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("actual_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("actual_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("implemented_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("release_id", sa.Text(), nullable=True),
        sa.Column("approved", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=True),
        sa.Column("last_event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("snapshot", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("change_id", name=op.f("pk_changes")),
    )
    op.create_index(op.f("ix_changes_implemented_at"), "changes", ["implemented_at"], unique=False)
    op.create_table(
        "cmdb_audits",
        sa.Column("audit_id", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=True),
        sa.Column("cis_checked", sa.Integer(), nullable=False),
        sa.Column("discrepancies", sa.Integer(), nullable=False),
        sa.Column(
            "ci_ids_with_discrepancy",
            postgresql.ARRAY(sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=True),
        sa.Column("last_event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("snapshot", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("audit_id", name=op.f("pk_cmdb_audits")),
    )
    op.create_index(
        op.f("ix_cmdb_audits_completed_at"), "cmdb_audits", ["completed_at"], unique=False
    )
    op.create_table(
        "config_items",
        sa.Column("ci_id", sa.Text(), nullable=False),
        sa.Column("ci_type", sa.Text(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("services", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("depends_on", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("critical", sa.Boolean(), server_default="false", nullable=False),
        sa.Column(
            "attributes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sequence", sa.BigInteger(), nullable=True),
        sa.Column("last_event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("snapshot", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("ci_id", name=op.f("pk_config_items")),
    )
    op.create_table(
        "knowledge_articles",
        sa.Column("article_id", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sequence", sa.BigInteger(), nullable=True),
        sa.Column("last_event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("snapshot", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("article_id", name=op.f("pk_knowledge_articles")),
    )
    op.create_table(
        "measurements",
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("indicator", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=True),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("unit", sa.Text(), nullable=True),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "id", name=op.f("pk_measurements")),
    )
    op.create_index(
        op.f("ix_measurements_indicator_period_start"),
        "measurements",
        ["indicator", "period_start"],
        unique=False,
    )
    op.create_table(
        "monitor_checks",
        sa.Column("check_id", sa.Text(), nullable=False),
        sa.Column("ci_id", sa.Text(), nullable=True),
        sa.Column("metric", sa.Text(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sequence", sa.BigInteger(), nullable=True),
        sa.Column("last_event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("snapshot", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("check_id", name=op.f("pk_monitor_checks")),
    )
    op.create_table(
        "surveys",
        sa.Column("survey_id", sa.Text(), nullable=False),
        sa.Column("ticket_id", sa.Text(), nullable=True),
        sa.Column("service", sa.Text(), nullable=True),
        sa.Column("score", sa.SmallInteger(), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=True),
        sa.Column("last_event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("snapshot", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("survey_id", name=op.f("pk_surveys")),
    )
    op.create_index(op.f("ix_surveys_completed_at"), "surveys", ["completed_at"], unique=False)
    op.create_index(op.f("ix_events_type_time"), "events", ["type", "time"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_events_type_time"), table_name="events")
    op.drop_index(op.f("ix_surveys_completed_at"), table_name="surveys")
    op.drop_table("surveys")
    op.drop_table("monitor_checks")
    op.drop_index(op.f("ix_measurements_indicator_period_start"), table_name="measurements")
    op.drop_table("measurements")
    op.drop_table("knowledge_articles")
    op.drop_table("config_items")
    op.drop_index(op.f("ix_cmdb_audits_completed_at"), table_name="cmdb_audits")
    op.drop_table("cmdb_audits")
    op.drop_index(op.f("ix_changes_implemented_at"), table_name="changes")
    op.drop_table("changes")
    op.drop_index(op.f("ix_calls_completed_at"), table_name="calls")
    op.drop_table("calls")
    op.drop_index(op.f("ix_alerts_ci_id_started_at"), table_name="alerts")
    op.drop_table("alerts")
