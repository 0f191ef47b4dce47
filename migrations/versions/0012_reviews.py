"""service reviews

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 17:30:00.000000

Service reviews that took place (issue 11, SPEC §7.3): the review with its kind, level, scope,
period, participants, notes and decisions; its action items with their current state; and every
change of an item's state (who, when, note).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("scope_kind", sa.Text(), nullable=False),
        sa.Column("scope_id", sa.Text(), nullable=False),
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("period_kind", sa.Text(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("participants", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("notes", sa.Text(), server_default="", nullable=False),
        sa.Column("decisions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("recorded_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
    )
    op.create_index(
        op.f("ix_reviews_kind_scope_kind_scope_id_held_at"),
        "reviews",
        ["kind", "scope_kind", "scope_id", "held_at"],
    )
    op.create_index(op.f("ix_reviews_period"), "reviews", ["period"])
    op.create_table(
        "review_action_items",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("review_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["review_id"], ["reviews.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_action_items")),
    )
    op.create_index(
        op.f("ix_review_action_items_review_id_id"), "review_action_items", ["review_id", "id"]
    )
    op.create_table(
        "review_action_item_changes",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("from_state", sa.Text(), nullable=True),
        sa.Column("to_state", sa.Text(), nullable=False),
        sa.Column("by", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["review_action_items.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_action_item_changes")),
    )
    op.create_index(
        op.f("ix_review_action_item_changes_item_id_id"),
        "review_action_item_changes",
        ["item_id", "id"],
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_review_action_item_changes_item_id_id"), table_name="review_action_item_changes"
    )
    op.drop_table("review_action_item_changes")
    op.drop_index(op.f("ix_review_action_items_review_id_id"), table_name="review_action_items")
    op.drop_table("review_action_items")
    op.drop_index(op.f("ix_reviews_period"), table_name="reviews")
    op.drop_index(op.f("ix_reviews_kind_scope_kind_scope_id_held_at"), table_name="reviews")
    op.drop_table("reviews")
