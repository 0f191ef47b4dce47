"""What recomputing one unit of work means (a day with its hours, or a week, month or quarter
window),
inside the caller's transaction. The statements are compute.py's; how days add up is
merge.py's; this module decides which indicators and windows each unit touches.

A day's units, for the indicators placed by an instant (compute.Indicator.mergeable):
- a recent day (its end after `recent_since`) keeps hour partials: only its dirty hours are
  recomputed and their differences added to the day, week, month and quarter; a recent day without
  partials yet has all its hours computed once, which become its partials; an hour dirtied by
  its entities' changes alone adds what they changed instead of being recomputed, for the
  indicators over a tracked projection (changes.py);
- an older day is recomputed whole from the rows (exact percentiles included) and its
  difference added to its week, month and quarter (shared.windows.MERGED_KINDS).
The other indicators (states, time shares) are computed directly for each dirty window, and
after them the objectives of the window and what derives from them (SPEC §5.3, §6.3)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text

from services.aggregator import changes, merge
from services.aggregator.compute import (
    Plan,
    Window,
    apply_percentiles,
    delete_points,
    plans,
    stage_points,
    write_points,
)
from services.aggregator.indicators import Indicator
from services.aggregator.objectives import evaluate_windows
from services.aggregator.pending import Parent
from services.aggregator.policy import dim_keys, stored_groupings
from services.aggregator.queue import (
    EVERYTHING,
    Horizon,
    QueueRow,
    Row,
    Scopes,
    Unit,
    enqueue,
    follow_ups,
)
from services.catalog import Catalog
from shared.windows import MERGED_KINDS, window_end, window_start, windows_overlapping

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Context:
    """Everything a unit's computation reads besides the database."""

    horizon: Horizon
    catalog: Catalog
    params: Mapping[str, Any]  # the catalog's settings the indicators' SQL reads
    indicators: Sequence[Indicator]  # built-in and custom
    recent_since: datetime  # days ending after this keep hour partials
    # Hour partials brought up to date, by how: "changes" (changes.py) or "rows".
    renewed: Counter[str] = field(default_factory=Counter)
    # Queue rows for later (follow-ups, the slower cadence's parts), upserted at the unit's end
    # (`queue_later`): an upserted row stays locked until the transaction commits, and a mark
    # for the same window from a collector or the other loop would wait for it.
    queued: list[QueueRow] = field(default_factory=list)

    @property
    def now(self) -> datetime:
        return self.horizon.now

    def selected(self, rows: Sequence[Row]) -> list[Indicator]:
        """The indicators the rows' scopes say moved (the derived ones come after objectives)."""
        scopes = Scopes()
        for r in rows:
            scopes.add(r)
        return [
            i
            for i in self.indicators
            if i.placement != "derived" and scopes.selects(i.scopes, i.span_sensitive)
        ]

    @property
    def mergeable(self) -> list[Indicator]:
        return [i for i in self.indicators if i.mergeable]

    @property
    def derived(self) -> list[Indicator]:
        return [i for i in self.indicators if i.placement == "derived"]


def queue_later(conn: Connection, ctx: Context) -> None:
    """Upsert the queue rows the units asked for, just before their transaction commits."""
    enqueue(conn, ctx.queued, ctx.now)
    ctx.queued.clear()


def process_days(conn: Connection, ctx: Context, days: Sequence[Unit], rows: Sequence[Row]) -> None:
    """Recompute the dirty hours and days of these day units."""
    now = ctx.now
    selected = ctx.selected(rows)
    mergeable = [i for i in selected if i.mergeable]
    direct = [i for i in selected if not i.mergeable]
    # Instants are placed whenever they lie, also in a window that has not begun (a source's
    # clock running ahead); states and time shares, objectives, only up to now.
    begun = [d for d in days if d.start < now]
    hours = sorted({r.start for r in rows if r.kind == "hour" and r.lane != "percentiles"})
    kept = [h for h in hours if h + HOUR > ctx.horizon.hours_since]
    kept_begun = [h for h in kept if h < now]
    if mergeable:
        recent = [d for d in begun if d.end > ctx.recent_since]
        old = [d for d in days if d not in recent]
        _recent_days(conn, ctx, recent, hours, mergeable, rows)
        _old_days(conn, ctx, old, kept, mergeable)
    states = _states_due(conn, ctx, rows) if direct else set()
    for plan in plans(direct):
        _write(
            conn, ctx, plan, "hour", [(h, h + HOUR) for h in kept_begun if ("hour", h) in states]
        )
        _write(
            conn, ctx, plan, "day", [(d.start, d.end) for d in begun if ("day", d.start) in states]
        )
    percentile_days = [
        (d.start, d.end)
        for d in begun
        if any(r.kind == "day" and r.start == d.start and r.lane == "percentiles" for r in rows)
    ]
    _percentiles(conn, ctx, "day", percentile_days)
    percentile_hours = [  # of hours kept by their changes (changes.py)
        (r.start, r.end)
        for r in rows
        if r.kind == "hour" and r.lane == "percentiles" and r.end > ctx.horizon.hours_since
    ]
    _percentiles(conn, ctx, "hour", percentile_hours)
    _objectives(conn, ctx, "hour", [(h, h + HOUR) for h in kept_begun])
    _objectives(
        conn, ctx, "day", _objectives_now(ctx, "day", [(d.start, d.end) for d in begun], rows)
    )


def process_windows(
    conn: Connection, ctx: Context, kind: str, units: Sequence[Unit], rows: Sequence[Row]
) -> None:
    """Recompute week, month or quarter windows: their states and time shares directly, their
    percentiles when due (their other points add up from their days), their objectives."""
    begun = [(u.start, u.end) for u in units if u.start < ctx.now]
    direct = [i for i in ctx.selected(rows) if not i.mergeable]
    states = _states_due(conn, ctx, rows) if direct else set()
    for plan in plans(direct):
        _write(conn, ctx, plan, kind, [w for w in begun if (kind, w[0]) in states])
    due = {r.start for r in rows if r.lane == "percentiles"}
    _percentiles(conn, ctx, kind, [(u.start, u.end) for u in units if u.start in due])
    _objectives(conn, ctx, kind, _objectives_now(ctx, kind, begun, rows))


def _objectives_now(
    ctx: Context, kind: str, windows: Sequence[Window], rows: Sequence[Row]
) -> list[Window]:
    """The windows whose objectives are evaluated now. A running day's, week's, month's or
    quarter's points change with every event, and evaluating every service's objectives after
    every pass was a third of the point lane under a steady flow: while only events moved it
    (scoped `point` rows), its objectives wait for the slower cadence, with its states (a `span`
    row, which evaluates them). A window that has ended, a follow-up (a `point` row with no
    scope), a `span` or `percentiles` row, or no slower cadence at all: now."""
    if not ctx.horizon.slow:
        return list(windows)
    now_due: list[Window] = []
    for start, end in windows:
        mine = [r for r in rows if r.kind == kind and r.start == start]
        if end <= ctx.now or not mine or any(r.lane != "point" or not r.scopes for r in mine):
            now_due.append((start, end))
            continue
        received = min(r.first_received_at for r in mine)
        ctx.queued.append(
            (kind, start, "span", end, "", received, ctx.horizon.costly_due(kind, end))
        )
    return now_due


def _states_due(conn: Connection, ctx: Context, rows: Sequence[Row]) -> set[tuple[str, datetime]]:
    """The windows whose states and time shares (backlog, availability, …) are recomputed now:
    those whose intervals moved (`span` rows), and those whose instants moved (`point` rows)
    once they have ended. A running window's states wait for the slower cadence, as moved
    intervals do: a `span` row is queued for them, so a busy current window costs one
    recompute of its states per cadence, not one per event."""
    due: set[tuple[str, datetime]] = set()
    later: dict[tuple[str, datetime], QueueRow] = {}
    for r in rows:
        key = (r.kind, r.start)
        if r.lane == "span" or (r.lane == "point" and (r.end <= ctx.now or not ctx.horizon.slow)):
            due.add(key)
        elif r.lane == "point" and r.scopes:
            scopes = ",".join(sorted(r.scopes))
            due_at = ctx.horizon.costly_due(r.kind, r.end)
            later[key] = (r.kind, r.start, "span", r.end, scopes, r.first_received_at, due_at)
    ctx.queued.extend(row for key, row in later.items() if key not in due)
    return due


def _recent_days(
    conn: Connection,
    ctx: Context,
    days: Sequence[Unit],
    hours: Sequence[datetime],
    mergeable: Sequence[Indicator],
    rows: Sequence[Row],
) -> None:
    if not days:
        return
    have = set(
        conn.execute(
            text("SELECT day_start FROM partial_days WHERE day_start = ANY(:days)"),
            {"days": [d.start for d in days]},
        ).scalars()
    )
    tz, now = ctx.horizon.tz, ctx.now
    going = [d for d in days if d.start in have]
    dirty = [h for h in hours if any(d.start <= h < d.end for d in going)]
    by_changes = _kept_by_changes(conn, mergeable, rows, dirty)
    full = [h for h in dirty if h not in by_changes]
    if full:
        _renew_hours(conn, ctx, mergeable, full)
    if by_changes:
        _add_changes(conn, ctx, mergeable, by_changes)
    ctx.renewed.update(rows=len(full), changes=len(by_changes))
    new = [d for d in days if d.start not in have]
    if new:
        every = ctx.mergeable  # a day's partials hold every indicator that adds up
        all_hours = [
            s
            for d in new
            for _, s in windows_overlapping(
                d.start, d.end - timedelta(microseconds=1), tz, ("hour",)
            )
        ]
        _stage(conn, ctx, every, [(h, h + HOUR) for h in all_hours], partials=all_hours)
        ctx.renewed.update(rows=len(all_hours))
        _write_hours(conn, ctx, every, all_hours)
        merge.replace_days(
            conn,
            every,
            [(d.start, d.end) for d in new],
            _parents([d.start for d in new], MERGED_KINDS, ctx),
            now=now,
            hours_of=[(h, window_start("day", h, tz)) for h in all_hours],
        )
        merge.clear_staged(conn)
    _follow_up(conn, ctx, [d.start for d in days], ("day", *MERGED_KINDS), mergeable)


def _renew_hours(
    conn: Connection, ctx: Context, indicators: Sequence[Indicator], hours: Sequence[datetime]
) -> None:
    """Recompute these hours' partials from the rows and add their differences up."""
    _stage(conn, ctx, indicators, [(h, h + HOUR) for h in hours], partials=hours)
    _write_hours(conn, ctx, indicators, hours)
    merge.merge_hours(
        conn, indicators, hours, _parents(hours, ("day", *MERGED_KINDS), ctx), now=ctx.now
    )
    merge.clear_staged(conn)


def _kept_by_changes(
    conn: Connection, mergeable: Sequence[Indicator], rows: Sequence[Row], hours: Sequence[datetime]
) -> dict[datetime, dict[Plan, str]]:
    """The dirty hours whose partials of the tracked plans can add what changed
    (changes.py), with each plan's snapshot: hours dirtied by entities' changes alone (not by a
    recompute command or the clock), whose every tracked plan has a fresh snapshot."""
    tracked = [p for p in plans(mergeable) if changes.rows_of(p)]
    if not tracked or not hours:
        return {}
    moved: dict[datetime, set[str]] = {}
    for r in rows:
        if r.kind == "hour" and r.lane == "point":
            moved.setdefault(r.start, set()).update(r.scopes)
    candidates = [h for h in hours if not (moved.get(h, set()) & EVERYTHING)]
    return changes.snapshots(conn, tracked, candidates) if candidates else {}


def _add_changes(
    conn: Connection,
    ctx: Context,
    mergeable: Sequence[Indicator],
    by_changes: Mapping[datetime, Mapping[Plan, str]],
) -> None:
    """Hours kept by their changes: the tracked plans add what changed since their snapshot,
    the others are recomputed from the rows; the hours' exact percentiles come on their lane."""
    hours = sorted(by_changes)
    tracked = {plan for snaps in by_changes.values() for plan in snaps}
    rest = [i for i in mergeable if not any(i in p for p in tracked)]
    if rest:
        _renew_hours(conn, ctx, rest, hours)
    merge.start_deltas(conn)
    for h in hours:
        for plan, snap in by_changes[h].items():
            groupings = stored_groupings(plan[0], "day")
            changes.stage_deltas(conn, plan, h, snap, groupings, now=ctx.now, params=ctx.params)
    kept = [h for h in hours if h + HOUR > ctx.horizon.hours_since]
    inds = [i for p in tracked for i in p]
    merge.add_deltas(
        conn,
        _parents(hours, ("day", *MERGED_KINDS), ctx) + [(h, "hour", h, h + HOUR) for h in kept],
        [(i.id, dim_keys(g)) for i in inds for g in stored_groupings(i, "hour")],
        now=ctx.now,
    )
    if any(i.is_duration for i in inds):
        pending = follow_ups(
            [("hour", h, h + HOUR) for h in kept], horizon=ctx.horizon, percentiles=True
        )
        ctx.queued.extend(r for r in pending if r[2] == "percentiles")


def _old_days(
    conn: Connection,
    ctx: Context,
    days: Sequence[Unit],
    kept_hours: Sequence[datetime],
    mergeable: Sequence[Indicator],
) -> None:
    if not days:
        return
    _stage(conn, ctx, mergeable, [(d.start, d.end) for d in days])
    merge.replace_days(
        conn,
        mergeable,
        [(d.start, d.end) for d in days],
        _parents([d.start for d in days], MERGED_KINDS, ctx),
        now=ctx.now,
    )
    merge.clear_staged(conn)
    hours = [h for h in kept_hours if any(d.start <= h < d.end for d in days)]
    for plan in plans(mergeable):
        _write(conn, ctx, plan, "hour", [(h, h + HOUR) for h in hours])
    _follow_up(conn, ctx, [d.start for d in days], MERGED_KINDS, mergeable)


def _stage(
    conn: Connection,
    ctx: Context,
    indicators: Sequence[Indicator],
    windows: Sequence[Window],
    kind: str = "day",
    partials: Sequence[datetime] = (),
) -> None:
    """Stage the indicators' points for these windows at the groupings `kind` stores (hours
    and days at a day's: an hour's partials add up to its day). Staged hours becoming
    `partials` remember the snapshot they were read at, for the plans changes.py keeps."""
    for plan in plans(indicators):
        groupings = stored_groupings(plan[0], kind)
        stage_points(
            conn,
            plan,
            windows,
            groupings,
            now=ctx.now,
            params=ctx.params,
            snapshot_of=partials if changes.rows_of(plan) else (),
        )


def _write_hours(
    conn: Connection, ctx: Context, indicators: Sequence[Indicator], hours: Sequence[datetime]
) -> None:
    kept = [h for h in hours if h + HOUR > ctx.horizon.hours_since]
    stored = [(i.id, dim_keys(g)) for i in indicators for g in stored_groupings(i, "hour")]
    merge.write_hours(conn, indicators, kept, stored, now=ctx.now)


def _write(
    conn: Connection,
    ctx: Context,
    plan: tuple[Indicator, ...],
    kind: str,
    windows: Sequence[Window],
) -> None:
    """Replace the plan's points of these windows, computed from the rows."""
    if not windows:
        return
    delete_points(conn, plan, kind, [s for s, _ in windows], now=ctx.now)
    groupings = stored_groupings(plan[0], kind)
    write_points(conn, plan, kind, windows, groupings, now=ctx.now, params=ctx.params)


def _percentiles(conn: Connection, ctx: Context, kind: str, windows: Sequence[Window]) -> None:
    """The exact p50/p90 of merged windows' durations, from the rows."""
    if not windows:
        return
    _stage(conn, ctx, [i for i in ctx.mergeable if i.is_duration], windows, kind)
    apply_percentiles(conn, kind)
    merge.clear_staged(conn)


def _objectives(conn: Connection, ctx: Context, kind: str, windows: Sequence[Window]) -> None:
    """Objective status of these windows, then the service indicators built on it."""
    if not windows:
        return
    starts = [s for s, _ in windows]
    evaluate_windows(
        conn, ctx.catalog, kind, starts, ctx.horizon.tz, now=ctx.now, params=ctx.params
    )
    for plan in plans(ctx.derived):
        _write(conn, ctx, plan, kind, windows)


def _parents(keys: Sequence[datetime], kinds: Sequence[str], ctx: Context) -> list[Parent]:
    tz = ctx.horizon.tz
    out = []
    for key in keys:
        for kind in kinds:
            start = window_start(kind, key, tz)
            out.append((key, kind, start, window_end(kind, start, tz)))
    return out


def _follow_up(
    conn: Connection,
    ctx: Context,
    keys: Sequence[datetime],
    kinds: Sequence[str],
    mergeable: Sequence[Indicator],
) -> None:
    """Queue the merged windows' objectives (weeks, months, quarters) and exact percentiles."""
    tz = ctx.horizon.tz
    windows = {
        (kind, start, window_end(kind, start, tz))
        for key in keys
        for kind in kinds
        for start in [window_start(kind, key, tz)]
    }
    rows = follow_ups(
        sorted(windows),
        horizon=ctx.horizon,
        percentiles=any(i.is_duration for i in mergeable),
    )
    # a day is this unit: its objectives are evaluated now, only its percentiles wait
    ctx.queued.extend(r for r in rows if r[0] != "day" or r[2] == "percentiles")
