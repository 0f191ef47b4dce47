"""objective scope: objectives of a customer and of the organisation

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-14 10:00:00.000000

An objective names a service, a customer, or neither (the organisation: an indicator measured
per neither, such as the calls' answer rate) (SPEC §6.3, issue 12). `objective_status` gains
`customer` in its key; `service` is '' for a customer's and the organisation's rows, `customer`
'' for a service's and the organisation's.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "objective_status",
        sa.Column("customer", sa.Text(), server_default="", nullable=False),
    )
    op.drop_constraint("pk_objective_status", "objective_status", type_="primary")
    op.create_primary_key(
        "pk_objective_status",
        "objective_status",
        ["service", "customer", "indicator", "window_kind", "window_start"],
    )


def downgrade() -> None:
    # rows of customers and of the organisation have no place in the older key
    op.execute("DELETE FROM objective_status WHERE customer <> '' OR service = ''")
    op.drop_constraint("pk_objective_status", "objective_status", type_="primary")
    op.create_primary_key(
        "pk_objective_status",
        "objective_status",
        ["service", "indicator", "window_kind", "window_start"],
    )
    op.drop_column("objective_status", "customer")
