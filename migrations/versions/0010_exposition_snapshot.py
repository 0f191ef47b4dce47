"""exposition snapshot

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10 12:00:00.000000

`/metrics` is served from a snapshot the aggregator keeps (SPEC §8): rendering 66,000 series in
the api cost seconds of its CPU per refresh and held scrapes behind it; the aggregator now
renders the text and stores it here, and the api serves the stored bytes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exposition_snapshot",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("rendered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body_gzip", sa.LargeBinary(), nullable=False),
        sa.Column("series", sa.Integer(), nullable=False),
        sa.Column("dropped", sa.Integer(), nullable=False),
        sa.Column("render_seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_exposition_snapshot")),
    )
    # Gzipped already: PostgreSQL's own compression would only cost time on every read.
    op.execute("ALTER TABLE exposition_snapshot ALTER COLUMN body_gzip SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("exposition_snapshot")
