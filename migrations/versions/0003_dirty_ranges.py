"""Dirty marks are time ranges, expanded into windows by the aggregator

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("dirty_windows", sa.Column("range_start", sa.DateTime(timezone=True)))
    op.add_column("dirty_windows", sa.Column("range_end", sa.DateTime(timezone=True)))
    # A pending window mark becomes the range of its start instant: that instant lies in the
    # same window again (and in the windows of the other kinds that contain it).
    op.execute("UPDATE dirty_windows SET range_start = window_start, range_end = window_start")
    op.alter_column("dirty_windows", "range_start", nullable=False)
    op.alter_column("dirty_windows", "range_end", nullable=False)
    op.drop_index("ix_dirty_windows_window_kind_window_start", table_name="dirty_windows")
    op.drop_column("dirty_windows", "window_kind")
    op.drop_column("dirty_windows", "window_start")


def downgrade() -> None:
    op.add_column("dirty_windows", sa.Column("window_kind", sa.Text()))
    op.add_column("dirty_windows", sa.Column("window_start", sa.DateTime(timezone=True)))
    # Ranges cannot be told apart into windows here: mark each range's start as an hour window.
    op.execute(
        "UPDATE dirty_windows SET window_kind = 'hour', "
        "window_start = date_trunc('hour', range_start)"
    )
    op.alter_column("dirty_windows", "window_kind", nullable=False)
    op.alter_column("dirty_windows", "window_start", nullable=False)
    op.drop_column("dirty_windows", "range_start")
    op.drop_column("dirty_windows", "range_end")
    op.create_index(
        "ix_dirty_windows_window_kind_window_start",
        "dirty_windows",
        ["window_kind", "window_start"],
    )
