"""pending differences: the point lane appends what a pass changed; a fold adds it up

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 23:00:00.000000

The point lane used to add each pass's differences to the running day's, week's, month's and
quarter's points in place: the same tens of thousands of rows updated twice a second, whose row
versions PostgreSQL cannot prune while any transaction stays open, so every open snapshot made
the next passes seconds slower (issue 10). The differences are now appended to
`indicator_pending` and folded into `indicator_values` every few seconds; `indicator_points`
reads a point as its stored row plus its pending differences, which every reader uses.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# compute.MERGED_VALUE as it is at this revision (a migration never follows later code): the
# value of a point from its count and sums. tests/aggregator/test_pending.py checks that the
# view and the fold agree (a fold changes no point).
_MERGED = (
    "CASE WHEN {w} IS NOT NULL THEN ({v} / nullif({w}, 0))::float8 "
    "WHEN {v} IS NOT NULL THEN ({v} / nullif({n}, 0))::float8 ELSE {n}::float8 END"
)

_SUMMED = _MERGED.format(n="sum(u.count)", v="sum(u.sum_v)", w="sum(u.sum_w)")

VIEW = f"""
CREATE VIEW indicator_points AS
SELECT u.indicator, u.window_kind, u.window_start, u.dimensions, u.window_end, u.dim_keys,
       CASE WHEN bool_and(u.stored) THEN max(u.value) ELSE {_SUMMED} END AS value,
       sum(u.count)::bigint AS count, sum(u.sum_v) AS sum_v, sum(u.sum_w) AS sum_w,
       max(u.p50) AS p50, max(u.p90) AS p90, max(u.computed_at) AS computed_at,
       sum(u.version)::bigint AS version, count(*) FILTER (WHERE NOT u.stored) AS pending
FROM (
    SELECT indicator, window_kind, window_start, dimensions, window_end, dim_keys, value, count,
           sum_v, sum_w, p50, p90, computed_at, true AS stored, xmin::text::bigint AS version
    FROM indicator_values
    UNION ALL
    SELECT indicator, window_kind, window_start, dimensions, window_end, dim_keys, NULL, count,
           sum_v, sum_w, NULL, NULL, added_at, false, id
    FROM indicator_pending
) AS u
GROUP BY u.indicator, u.window_kind, u.window_start, u.dimensions, u.window_end, u.dim_keys
HAVING bool_and(u.stored) OR sum(u.count) <> 0
"""


def upgrade() -> None:
    op.create_table(
        "indicator_pending",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("indicator", sa.Text(), nullable=False),
        sa.Column("window_kind", sa.Text(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dimensions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("dim_keys", sa.Text(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("sum_v", sa.Numeric(), nullable=True),
        sa.Column("sum_w", sa.Numeric(), nullable=True),
        sa.Column(
            "added_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_indicator_pending")),
    )
    op.create_index(
        op.f("ix_indicator_pending_indicator_window_kind_dim_keys_window_start"),
        "indicator_pending",
        ["indicator", "window_kind", "dim_keys", "window_start"],
    )
    op.execute(VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW indicator_points")
    # what was pending is added to the points before the table goes
    op.execute(
        f"""
        INSERT INTO indicator_values AS iv (indicator, window_kind, window_start, dimensions,
            window_end, dim_keys, count, sum_v, sum_w, value)
        SELECT indicator, window_kind, window_start, dimensions, max(window_end), dim_keys,
               sum(count), sum(sum_v), sum(sum_w),
               {_MERGED.format(n="sum(count)", v="sum(sum_v)", w="sum(sum_w)")}
        FROM indicator_pending GROUP BY indicator, window_kind, window_start, dimensions, dim_keys
        ON CONFLICT (indicator, window_kind, window_start, dimensions) DO UPDATE SET
            count = iv.count + excluded.count, sum_v = iv.sum_v + excluded.sum_v,
            sum_w = iv.sum_w + excluded.sum_w,
            value = {
            _MERGED.format(
                n="(iv.count + excluded.count)",
                v="(iv.sum_v + excluded.sum_v)",
                w="(iv.sum_w + excluded.sum_w)",
            )
        }
        """
    )
    op.execute(
        """
        DELETE FROM indicator_values iv USING indicator_pending p
        WHERE iv.indicator = p.indicator AND iv.window_kind = p.window_kind
          AND iv.window_start = p.window_start AND iv.dimensions = p.dimensions AND iv.count = 0
        """
    )
    op.drop_index(
        op.f("ix_indicator_pending_indicator_window_kind_dim_keys_window_start"),
        table_name="indicator_pending",
    )
    op.drop_table("indicator_pending")
