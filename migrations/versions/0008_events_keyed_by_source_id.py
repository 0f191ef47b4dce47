"""events keyed by (source, id)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 19:00:00.000000

The collector writes every event once through this table's indexes, so each one costs ingest
throughput: the surrogate `seq` key (read by nothing) goes, (source, id) becomes the primary key
(it was already unique), and the (type, time) index is kept only for the CI upserts that
`change_unauthorized_count` reads by window.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("pk_events", "events", type_="primary")
    op.drop_column("events", "seq")
    op.drop_constraint("uq_events_source_id", "events", type_="unique")
    op.create_primary_key("pk_events", "events", ["source", "id"])
    op.drop_index("ix_events_type_time", table_name="events")
    op.create_index(
        "ix_events_ci_upserts",
        "events",
        ["time"],
        postgresql_where=sa.text("type = 'itsm.config.ci.upserted'"),
    )


def downgrade() -> None:
    op.drop_index("ix_events_ci_upserts", table_name="events")
    op.create_index("ix_events_type_time", "events", ["type", "time"])
    op.drop_constraint("pk_events", "events", type_="primary")
    op.create_unique_constraint("uq_events_source_id", "events", ["source", "id"])
    op.add_column("events", sa.Column("seq", sa.BigInteger(), sa.Identity(), nullable=False))
    op.create_primary_key("pk_events", "events", ["seq"])
