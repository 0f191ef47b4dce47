"""pending differences: one row per difference, placed in its day, week, month and quarter

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08 03:00:00.000000

Migration 0016 appended a pass's differences once per window containing them: the same
difference four times (its day, week, month and quarter), and at 1,000 events/s the fold spent
most of its time deleting and grouping those copies (issue 10). A difference is now one row
naming its four windows; `indicator_points` places it in each of them. What is pending when the
migration runs is folded into `indicator_values` first, in both directions (it is transient).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0017"
down_revision = "0016"
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
KINDS = ("day", "week", "month", "quarter")

_STORED = """
    SELECT indicator, window_kind, window_start, dimensions, window_end, dim_keys, value, count,
           sum_v, sum_w, p50, p90, computed_at, true AS stored, xmin::text::bigint AS version
    FROM indicator_values
"""


def _view(pending: str) -> str:
    """The view over the stored points and `pending`, a SELECT of the pending differences with
    the stored rows' columns and `false, id` for (stored, version)."""
    return f"""
    CREATE VIEW indicator_points AS
    SELECT u.indicator, u.window_kind, u.window_start, u.dimensions, u.window_end, u.dim_keys,
           CASE WHEN bool_and(u.stored) THEN max(u.value) ELSE {_SUMMED} END AS value,
           sum(u.count)::bigint AS count, sum(u.sum_v) AS sum_v, sum(u.sum_w) AS sum_w,
           max(u.p50) AS p50, max(u.p90) AS p90, max(u.computed_at) AS computed_at,
           sum(u.version)::bigint AS version, count(*) FILTER (WHERE NOT u.stored) AS pending
    FROM ({_STORED} UNION ALL {pending}) AS u
    GROUP BY u.indicator, u.window_kind, u.window_start, u.dimensions, u.window_end, u.dim_keys
    HAVING bool_and(u.stored) OR sum(u.count) <> 0
    """


# A difference in each of its windows (a replaced day's differences have no day: its own point
# was written whole). One branch per kind, so that a reader's `window_kind = …` leaves one.
PLACED = " UNION ALL ".join(
    f"""
    SELECT indicator, '{kind}'::text AS window_kind, {kind}_start AS window_start, dimensions,
           {kind}_end AS window_end, dim_keys, NULL::float8 AS value, count, sum_v, sum_w,
           NULL::float8 AS p50, NULL::float8 AS p90, added_at AS computed_at, false AS stored,
           id AS version
    FROM indicator_pending{" WHERE day_start IS NOT NULL" if kind == "day" else ""}
    """
    for kind in KINDS
)
_PER_WINDOW = """
    SELECT indicator, window_kind, window_start, dimensions, window_end, dim_keys, NULL, count,
           sum_v, sum_w, NULL, NULL, added_at, false, id
    FROM indicator_pending
"""


def _fold(pending: str) -> str:
    """Add what `pending` (indicator, window_kind, window_start, window_end, dimensions,
    dim_keys, count, sum_v, sum_w) holds to the stored points."""
    return f"""
    INSERT INTO indicator_values AS iv (indicator, window_kind, window_start, dimensions,
        window_end, dim_keys, count, sum_v, sum_w, value)
    SELECT indicator, window_kind, window_start, dimensions, max(window_end), dim_keys,
           sum(count), sum(sum_v), sum(sum_w),
           {_MERGED.format(n="sum(count)", v="sum(sum_v)", w="sum(sum_w)")}
    FROM ({pending}) AS p
    GROUP BY indicator, window_kind, window_start, dimensions, dim_keys
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


_EMPTIED = "DELETE FROM indicator_values WHERE count = 0 AND window_kind <> 'hour'"
_INDEX_0016 = "ix_indicator_pending_indicator_window_kind_dim_keys_window_start"


def _create_pending(*windows: sa.Column[object]) -> None:
    """`indicator_pending` with these columns naming the windows a difference adds to."""
    op.create_table(
        "indicator_pending",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("indicator", sa.Text(), nullable=False),
        *windows,
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


def upgrade() -> None:
    op.execute("DROP VIEW indicator_points")
    op.execute(_fold(_PER_WINDOW))
    op.execute(_EMPTIED)  # a point the differences brought to nothing
    op.drop_table("indicator_pending")  # and its index
    _create_pending(
        *(
            sa.Column(f"{kind}_{edge}", sa.DateTime(timezone=True), nullable=kind == "day")
            for kind in KINDS
            for edge in ("start", "end")
        )
    )
    op.create_index(
        op.f("ix_indicator_pending_indicator_dim_keys"),
        "indicator_pending",
        ["indicator", "dim_keys"],
    )
    op.execute(_view(PLACED))


def downgrade() -> None:
    op.execute("DROP VIEW indicator_points")
    op.execute(
        _fold(
            " UNION ALL ".join(
                f"SELECT indicator, '{kind}' AS window_kind, {kind}_start AS window_start, "
                f"{kind}_end AS window_end, dimensions, dim_keys, count, sum_v, sum_w "
                f"FROM indicator_pending WHERE {kind}_start IS NOT NULL"
                for kind in KINDS
            )
        )
    )
    op.execute(_EMPTIED)
    op.drop_table("indicator_pending")  # and its index
    _create_pending(
        sa.Column("window_kind", sa.Text(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        op.f(_INDEX_0016),
        "indicator_pending",
        ["indicator", "window_kind", "dim_keys", "window_start"],
    )
    op.execute(_view(_PER_WINDOW))
