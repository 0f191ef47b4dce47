"""Dirty marks (SPEC §4): the time ranges whose indicator windows must be recomputed, written by
the collector (and the SLA job, the clock refresh, `recompute --since`) and claimed by the
aggregator. Below both services: the pure span arithmetic and the one statement that records
marks."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import Connection, text

Span = tuple[datetime, datetime]
HOUR = timedelta(hours=1)


def merge_spans(
    spans: list[tuple[datetime, datetime]], gap: timedelta = timedelta(0)
) -> list[tuple[datetime, datetime]]:
    """Union of [start, end] intervals; intervals at most `gap` apart merge too."""
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(spans):
        if merged and start - merged[-1][1] <= gap:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def dirty_ranges(
    stamps: set[datetime], spans: list[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    """The few ranges whose windows a set of timestamps and intervals touch: the timestamps
    (as instants) and intervals, merged where at most an hour apart. No window (an hour or
    longer) fits inside such a gap, so a window overlapping a merged range overlaps one of its
    parts: the ranges touch exactly the windows their parts did, whatever the time zone."""
    return merge_spans([(ts, ts) for ts in stamps] + spans, gap=HOUR)


def changed_spans(
    old: tuple[datetime | None, datetime | None] | None,
    new: tuple[datetime | None, datetime | None] | None,
    now: datetime,
) -> list[Span]:
    """Where an interval changed: the ranges between its old and new bounds. Pure.

    An absent start means no interval; an absent end means open until `now`. A new interval
    changes everything it covers.
    """

    def bounds(span: tuple[datetime | None, datetime | None] | None) -> Span | None:
        if span is None or span[0] is None:
            return None
        return span[0], span[1] if span[1] is not None else max(now, span[0])

    a, b = bounds(old), bounds(new)
    if a == b:
        return []
    if a is None or b is None:
        return [s for s in (a, b) if s is not None]
    return [(min(a[0], b[0]), max(a[0], b[0])), (min(a[1], b[1]), max(a[1], b[1]))]


def moved_periods(
    old: list[tuple[datetime, datetime | None]],
    new: list[tuple[datetime, datetime | None]],
    now: datetime,
) -> list[Span]:
    """Where a set of intervals changed (an open end is `now`): from the earliest to the
    latest bound that is in one set and not the other. Pure."""

    def bounds(periods: list[tuple[datetime, datetime | None]]) -> set[datetime]:
        return {b for s, e in periods for b in (s, e if e is not None else max(now, s))}

    moved = bounds(old) ^ bounds(new)
    return [(min(moved), max(moved))] if moved else []


_INSERT_MARKS = text(
    """
    INSERT INTO dirty_windows (scope, lane, range_start, range_end, first_received_at)
    SELECT m->>0, m->>1, (m->>2)::timestamptz, (m->>3)::timestamptz, :received
    FROM jsonb_array_elements(CAST(:marks AS jsonb)) AS m
    """
)


def mark_dirty(
    conn: Connection,
    marks: dict[str, tuple[set[datetime], list[Span]]],
    received: datetime,
) -> int:
    """Mark the windows the batch's timestamps and intervals touch, as a few merged ranges per
    lane (the aggregator expands them into windows): instants in the `point` lane, intervals in
    the `span` lane, each with the entity kinds (scope) behind it."""
    rows = []
    for lane, which in (("point", 0), ("span", 1)):
        kinds = sorted(k for k, m in marks.items() if m[which])
        stamps = {ts for k in kinds for ts in marks[k][0]} if which == 0 else set()
        spans = [s for k in kinds for s in marks[k][1]] if which == 1 else []
        scope = ",".join(kinds)
        rows += [
            (scope, lane, a.isoformat(), b.isoformat()) for a, b in dirty_ranges(stamps, spans)
        ]
    if rows:
        conn.execute(_INSERT_MARKS, {"marks": json.dumps(rows), "received": received})
    return len(rows)
