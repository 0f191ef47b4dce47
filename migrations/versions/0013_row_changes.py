"""row changes: a recent hour kept by what changed in it

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 17:30:00.000000

Freshness at real scale (issue 10): a busy current hour was recomputed from all its rows on
every pass. Each write to a tracked projection now leaves the row as it was before
(`row_changes`, by triggers, whoever writes), and each hour partial remembers the snapshot it
was computed at (`partial_snapshots`): the aggregator adds what the rows changed since, new
minus old, instead of recomputing the hour (services/aggregator/changes.py); the SLA job reads
the incidents changed since its own snapshot and the open deadlines passed (partial indexes)
instead of every incident.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# The projections whose changes are kept: table, entity kind, key column
# (services/aggregator/changes.TRACKED says the same).
TRACKED = (("tickets", "ticket", "ticket_id"), ("ticket_sla", "ticket_sla", "ticket_id"))

_FUNCTION = """
CREATE FUNCTION itsm_row_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- TG_ARGV: the entity kind, the key column. A new row had nothing before it (old NULL).
    IF TG_OP = 'INSERT' THEN
        EXECUTE format(
            'INSERT INTO row_changes (entity_kind, entity_id, old) '
            'SELECT %L, n.%I::text, NULL FROM itsm_new_rows n', TG_ARGV[0], TG_ARGV[1]);
    ELSE
        EXECUTE format(
            'INSERT INTO row_changes (entity_kind, entity_id, old) '
            'SELECT %L, o.%I::text, to_jsonb(o) FROM itsm_old_rows o', TG_ARGV[0], TG_ARGV[1]);
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "row_changes",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("entity_kind", sa.Text(), nullable=False),
        sa.Column("entity_id", sa.Text(), nullable=False),
        sa.Column(
            "writer",
            sa.BigInteger(),
            server_default=sa.text("(pg_current_xact_id())::text::bigint"),
            nullable=False,
        ),
        sa.Column("old", sa.dialects.postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_row_changes")),
    )
    op.create_index(
        op.f("ix_row_changes_entity_kind_writer"), "row_changes", ["entity_kind", "writer"]
    )
    op.create_table(
        "partial_snapshots",
        sa.Column("indicator", sa.Text(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("snap", sa.Text(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("indicator", "window_start", name=op.f("pk_partial_snapshots")),
    )
    for target in ("response", "resolution"):
        op.create_index(
            f"ix_ticket_sla_{target}_due_open",
            "ticket_sla",
            [f"{target}_due"],
            postgresql_where=sa.text(f"{target}_met IS NULL"),
        )
    op.execute(_FUNCTION)
    for table, kind, key in TRACKED:
        op.execute(
            f"CREATE TRIGGER itsm_{table}_inserted AFTER INSERT ON {table} "
            "REFERENCING NEW TABLE AS itsm_new_rows FOR EACH STATEMENT "
            f"EXECUTE FUNCTION itsm_row_changes('{kind}', '{key}')"
        )
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER itsm_{table}_{event.lower()}d AFTER {event} ON {table} "
                "REFERENCING OLD TABLE AS itsm_old_rows FOR EACH STATEMENT "
                f"EXECUTE FUNCTION itsm_row_changes('{kind}', '{key}')"
            )


def downgrade() -> None:
    for table, _, _ in TRACKED:
        for event in ("inserted", "updated", "deleted"):
            op.execute(f"DROP TRIGGER itsm_{table}_{event} ON {table}")
    op.execute("DROP FUNCTION itsm_row_changes()")
    for target in ("response", "resolution"):
        op.drop_index(f"ix_ticket_sla_{target}_due_open", table_name="ticket_sla")
    op.drop_table("partial_snapshots")
    op.drop_index(op.f("ix_row_changes_entity_kind_writer"), table_name="row_changes")
    op.drop_table("row_changes")
