"""window queue, hour partials, exact sums, dirty mark lanes

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 12:00:00.000000

The aggregator at real scale (issue 10): dirty marks are expanded into a queue of windows that
remembers failures (retry with backoff, park), points carry exact sums so weeks and months add
up from their days, and the recent days keep hour partials so a new event costs its hour.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "dirty_windows", sa.Column("lane", sa.Text(), server_default="point", nullable=False)
    )
    op.add_column("indicator_values", sa.Column("sum_v", sa.Numeric(), nullable=True))
    op.add_column("indicator_values", sa.Column("sum_w", sa.Numeric(), nullable=True))
    op.create_index(
        op.f("ix_indicator_values_window_kind_window_start"),
        "indicator_values",
        ["window_kind", "window_start"],
    )
    op.create_index(op.f("ix_tickets_responded_at"), "tickets", ["responded_at"])
    op.create_index(op.f("ix_monitor_checks_ci_id"), "monitor_checks", ["ci_id"])
    op.create_table(
        "window_queue",
        sa.Column("window_kind", sa.Text(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lane", sa.Text(), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("first_received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint(
            "window_kind", "window_start", "lane", name=op.f("pk_window_queue")
        ),
    )
    op.create_index(
        op.f("ix_window_queue_due_at"),
        "window_queue",
        ["due_at"],
        postgresql_where=sa.text("parked_at IS NULL"),
    )
    op.create_table(
        "indicator_partials",
        sa.Column("indicator", sa.Text(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dimensions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("dim_keys", sa.Text(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("sum_v", sa.Numeric(), nullable=True),
        sa.Column("sum_w", sa.Numeric(), nullable=True),
        sa.PrimaryKeyConstraint(
            "indicator", "window_start", "dimensions", name=op.f("pk_indicator_partials")
        ),
    )
    op.create_index(
        op.f("ix_indicator_partials_window_start"), "indicator_partials", ["window_start"]
    )
    op.create_table(
        "partial_days",
        sa.Column("day_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("day_start", name=op.f("pk_partial_days")),
    )
    # Points stored before have no sums: recompute every window from the start of the data so
    # weeks and months can add up from their days.
    op.execute(
        """
        INSERT INTO dirty_windows (scope, lane, range_start, range_end, first_received_at)
        SELECT 'recompute', 'point', min(window_start), now(), now()
        FROM indicator_values HAVING count(*) > 0
        """
    )
    op.execute("DELETE FROM indicator_values")


def downgrade() -> None:
    op.drop_table("partial_days")
    op.drop_index(op.f("ix_indicator_partials_window_start"), table_name="indicator_partials")
    op.drop_table("indicator_partials")
    op.drop_index(op.f("ix_window_queue_due_at"), table_name="window_queue")
    op.drop_table("window_queue")
    op.drop_index(op.f("ix_monitor_checks_ci_id"), table_name="monitor_checks")
    op.drop_index(op.f("ix_tickets_responded_at"), table_name="tickets")
    op.drop_index(
        op.f("ix_indicator_values_window_kind_window_start"), table_name="indicator_values"
    )
    op.drop_column("indicator_values", "sum_w")
    op.drop_column("indicator_values", "sum_v")
    op.drop_column("dirty_windows", "lane")
