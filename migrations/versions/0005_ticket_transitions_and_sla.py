"""ticket transitions and SLA

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 04:10:02.316666
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_sla",
        sa.Column("ticket_id", sa.Text(), nullable=False),
        sa.Column("policy_id", sa.Text(), nullable=True),
        sa.Column("response_target_seconds", sa.Float(), nullable=True),
        sa.Column("resolution_target_seconds", sa.Float(), nullable=True),
        sa.Column("response_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("response_met", sa.Boolean(), nullable=True),
        sa.Column("resolution_met", sa.Boolean(), nullable=True),
        sa.Column("response_decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution_decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ticket_updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("catalog_sha", sa.Text(), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_ticket_sla")),
    )
    op.create_index(
        op.f("ix_ticket_sla_resolution_decided_at"),
        "ticket_sla",
        ["resolution_decided_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_ticket_sla_resolution_due"), "ticket_sla", ["resolution_due"], unique=False
    )
    op.create_index(
        op.f("ix_ticket_sla_response_decided_at"),
        "ticket_sla",
        ["response_decided_at"],
        unique=False,
    )
    op.add_column(
        "tickets",
        sa.Column(
            "transitions",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="[]",
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("tickets", "transitions")
    op.drop_index(op.f("ix_ticket_sla_response_decided_at"), table_name="ticket_sla")
    op.drop_index(op.f("ix_ticket_sla_resolution_due"), table_name="ticket_sla")
    op.drop_index(op.f("ix_ticket_sla_resolution_decided_at"), table_name="ticket_sla")
    op.drop_table("ticket_sla")
