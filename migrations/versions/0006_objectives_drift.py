"""objective status and indicator drift

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 04:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "objective_status",
        sa.Column("service", sa.Text(), nullable=False),
        sa.Column("indicator", sa.Text(), nullable=False),
        sa.Column("window_kind", sa.Text(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("target", sa.Float(), nullable=False),
        sa.Column("warning", sa.Float(), nullable=True),
        sa.Column("comparator", sa.Text(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "service", "indicator", "window_kind", "window_start", name=op.f("pk_objective_status")
        ),
    )
    op.create_index(
        op.f("ix_objective_status_window_start_window_end"),
        "objective_status",
        ["window_start", "window_end"],
        unique=False,
    )
    op.create_table(
        "indicator_drift",
        sa.Column("indicator", sa.Text(), nullable=False),
        sa.Column("window_kind", sa.Text(), nullable=False),
        sa.Column("dimensions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("baseline_mean", sa.Float(), nullable=True),
        sa.Column("baseline_stddev", sa.Float(), nullable=True),
        sa.Column("windows", sa.Integer(), nullable=False),
        sa.Column("drifting", sa.Boolean(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "indicator",
            "window_kind",
            "dimensions",
            "window_start",
            name=op.f("pk_indicator_drift"),
        ),
    )


def downgrade() -> None:
    op.drop_table("indicator_drift")
    op.drop_index(
        op.f("ix_objective_status_window_start_window_end"), table_name="objective_status"
    )
    op.drop_table("objective_status")
