"""objective samples; drift on complete windows only

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-14 10:00:00.000000

Alerts an SRE can trust (issue 12): an objective's status on a window of three tickets is
noise, so `objective_status` keeps the number of samples behind its value (the indicator
point's `count`) and /metrics exports it beside the status (`itsm_objective_samples`). Drift
is now scored on complete windows only (services/aggregator/drift.py): the rows scored on a
partial current window under the old rule are removed; the next scoring (within minutes)
writes those of the last complete windows.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("objective_status", sa.Column("samples", sa.Integer(), nullable=True))
    op.execute("DELETE FROM indicator_drift")


def downgrade() -> None:
    op.drop_column("objective_status", "samples")
