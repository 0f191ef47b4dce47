"""raw events, dead letters, ticket projection, indicator values

Revision ID: 0001
Revises:
Create Date: 2026-11-25 03:02:33.664971
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=True),
        sa.Column("partition", sa.Integer(), nullable=True),
        sa.Column("offset", sa.BigInteger(), nullable=True),
        sa.Column("event_source", sa.Text(), nullable=True),
        sa.Column("event_id", sa.Text(), nullable=True),
        sa.Column("event_type", sa.Text(), nullable=True),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
        sa.UniqueConstraint(
            "topic", "partition", "offset", name=op.f("uq_dead_letters_topic_partition_offset")
        ),
    )
    op.create_table(
        "dirty_windows",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("window_kind", sa.Text(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "marked_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("first_received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dirty_windows")),
    )
    op.create_index(
        op.f("ix_dirty_windows_window_kind_window_start"),
        "dirty_windows",
        ["window_kind", "window_start"],
        unique=False,
    )
    op.create_table(
        "events",
        sa.Column("seq", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("entity_kind", sa.Text(), nullable=False),
        sa.Column("entity_id", sa.Text(), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=True),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("topic", sa.Text(), nullable=True),
        sa.Column("partition", sa.Integer(), nullable=True),
        sa.Column("offset", sa.BigInteger(), nullable=True),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_events")),
        sa.UniqueConstraint("source", "id", name=op.f("uq_events_source_id")),
    )
    op.create_index(
        op.f("ix_events_entity_kind_entity_id"),
        "events",
        ["entity_kind", "entity_id"],
        unique=False,
    )
    op.create_table(
        "indicator_values",
        sa.Column("indicator", sa.Text(), nullable=False),
        sa.Column("window_kind", sa.Text(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dimensions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dim_keys", sa.Text(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("p50", sa.Float(), nullable=True),
        sa.Column("p90", sa.Float(), nullable=True),
        sa.Column(
            "computed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint(
            "indicator",
            "window_kind",
            "window_start",
            "dimensions",
            name=op.f("pk_indicator_values"),
        ),
    )
    op.create_index(
        op.f("ix_indicator_values_indicator_window_kind_dim_keys_window_start"),
        "indicator_values",
        ["indicator", "window_kind", "dim_keys", "window_start"],
        unique=False,
    )
    op.create_table(
        "tickets",
        sa.Column("ticket_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("service", sa.Text(), nullable=True),
        sa.Column("priority", sa.SmallInteger(), nullable=True),
        sa.Column("impact", sa.SmallInteger(), nullable=True),
        sa.Column("urgency", sa.SmallInteger(), nullable=True),
        sa.Column("channel", sa.Text(), nullable=True),
        sa.Column("assignment_group", sa.Text(), nullable=True),
        sa.Column("assignee", sa.Text(), nullable=True),
        sa.Column("ci_ids", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("major", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("problem_id", sa.Text(), nullable=True),
        sa.Column("caused_by_change_id", sa.Text(), nullable=True),
        sa.Column(
            "knowledge_article_ids",
            postgresql.ARRAY(sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("reassignments", sa.Integer(), server_default="0", nullable=False),
        sa.Column("reopens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("paused_seconds", sa.Float(), server_default="0", nullable=False),
        sa.Column("first_contact_resolution", sa.Boolean(), nullable=True),
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
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_tickets")),
    )
    op.create_index(op.f("ix_tickets_opened_at"), "tickets", ["opened_at"], unique=False)
    op.create_index(op.f("ix_tickets_resolved_at"), "tickets", ["resolved_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_tickets_resolved_at"), table_name="tickets")
    op.drop_index(op.f("ix_tickets_opened_at"), table_name="tickets")
    op.drop_table("tickets")
    op.drop_index(
        op.f("ix_indicator_values_indicator_window_kind_dim_keys_window_start"),
        table_name="indicator_values",
    )
    op.drop_table("indicator_values")
    op.drop_index(op.f("ix_events_entity_kind_entity_id"), table_name="events")
    op.drop_table("events")
    op.drop_index(op.f("ix_dirty_windows_window_kind_window_start"), table_name="dirty_windows")
    op.drop_table("dirty_windows")
    op.drop_table("dead_letters")
