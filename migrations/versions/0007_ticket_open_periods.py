"""ticket open periods

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 04:36:25.169457
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "tickets",
        sa.Column("open_periods", postgresql.TSTZMULTIRANGE(), server_default="{}", nullable=False),
    )
    # Existing tickets: the open stretches between their recorded transitions, or, for rows
    # projected before transitions were kept, from opening to resolution.
    op.execute(
        """
        UPDATE tickets SET open_periods = coalesce((
            SELECT range_agg(tstzrange(p.at, p.until))
            FROM (SELECT (x->>0)::timestamptz AS at, x->>1 AS state,
                         lead((x->>0)::timestamptz) OVER (ORDER BY n) AS until
                  FROM jsonb_array_elements(transitions) WITH ORDINALITY AS t(x, n)) AS p
            WHERE p.state IN ('new', 'assigned', 'in_progress', 'pending')
              AND (p.until IS NULL OR p.until > p.at)), '{}')
        WHERE transitions <> '[]'
        """
    )
    op.execute(
        """
        UPDATE tickets SET open_periods = tstzmultirange(tstzrange(opened_at, resolved_at))
        WHERE transitions = '[]' AND state <> 'cancelled'
        """
    )
    op.create_index(
        op.f("ix_tickets_open_periods"),
        "tickets",
        ["open_periods"],
        unique=False,
        postgresql_using="gist",
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_tickets_open_periods"), table_name="tickets", postgresql_using="gist")
    op.drop_column("tickets", "open_periods")
