"""The queue of windows to recompute (`window_queue`): dirty marks expanded into windows, the
next unit of work by priority, and what happens when a unit fails (retry with backoff, then
park with the error until an operator retries it).

A row is one window and one lane: `point` (instants moved: every indicator of the scopes),
`span` (intervals moved: the states and time shares of the scopes) and `percentiles` (the exact
p50/p90 of a merged window). Priorities: windows holding new events (`point`) first, the current
ones before the past; then moved intervals (an open ticket's backlog over years); then
percentiles. A `span` row of a current window and every `percentiles` row wait a slower
cadence, so a busy current window costs one recompute of those per cadence, not one per event."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, text

from shared.dirty import HOUR, Span
from shared.windows import WINDOW_KINDS, window_end, window_start, windows_overlapping

ALL = "*"  # every scope
# Mark scopes that stand for every entity kind: a recompute command, the clock passing.
EVERYTHING = frozenset({"recompute", "clock", ALL})
LANES = ("point", "span", "percentiles")
# The lanes an aggregator's two loops take: events' instants without waiting behind the costly
# recomputes of states, time shares and percentiles, which the slow loop takes meanwhile.
FAST_LANES = ("point",)
SLOW_LANES = ("span", "percentiles")
MAX_ATTEMPTS = 5
# A queue row to upsert: kind, start, lane, end, comma-joined scopes, received, due.
QueueRow = tuple[str, datetime, str, datetime, str, datetime, datetime]
LONGER = tuple(k for k in WINDOW_KINDS if k != "hour")
MARKS_PER_CLAIM = 5000


@dataclass(frozen=True)
class Row:
    kind: str
    start: datetime
    end: datetime
    lane: str
    scopes: frozenset[str]
    first_received_at: datetime
    attempts: int
    version: int = 0  # the row's xmin when read


@dataclass
class Scopes:
    """What moved in a unit of work: entity kinds by lane."""

    point: set[str] = field(default_factory=set)
    span: set[str] = field(default_factory=set)

    def add(self, row: Row) -> None:
        if row.lane == "point":
            self.point |= row.scopes
        elif row.lane == "span":
            self.span |= row.scopes

    def selects(self, scopes: frozenset[str], span_sensitive: bool) -> bool:
        """Whether an indicator reading these entity kinds must be recomputed."""

        def hit(moved: set[str]) -> bool:
            return ALL in moved or bool(moved & scopes)

        return hit(self.point) or (span_sensitive and hit(self.span))


# --- from marks to windows ------------------------------------------------------------------

_CLAIM = text(
    """
    SELECT id, scope, lane, range_start, range_end, first_received_at FROM dirty_windows
    ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED
    """
)
_DONE = text("DELETE FROM dirty_windows WHERE id = ANY(:ids)")
_ENQUEUE = text(
    """
    INSERT INTO window_queue AS q (window_kind, window_start, lane, window_end, scopes,
                                   first_received_at, marked_at, due_at)
    SELECT kind, start, lane, end_, string_to_array(scopes, ','), received, :now, due
    FROM unnest(CAST(:kinds AS text[]), CAST(:starts AS timestamptz[]), CAST(:lanes AS text[]),
                CAST(:ends AS timestamptz[]), CAST(:scopes AS text[]),
                CAST(:received AS timestamptz[]), CAST(:due AS timestamptz[]))
        AS r(kind, start, lane, end_, scopes, received, due)
    ORDER BY kind, start, lane
    ON CONFLICT (window_kind, window_start, lane) DO UPDATE SET
        scopes = ARRAY(SELECT DISTINCT s FROM unnest(q.scopes || excluded.scopes) AS s ORDER BY s),
        first_received_at = least(q.first_received_at, excluded.first_received_at),
        marked_at = excluded.marked_at,
        due_at = least(q.due_at, excluded.due_at)
    """
)


@dataclass(frozen=True)
class Horizon:
    """Where windows are kept, as of `now`: hours from `hours_since` (older ones are answered
    at query time), and the slower cadence of the costly parts of current windows."""

    now: datetime
    tz: ZoneInfo
    hours_since: datetime
    slow: timedelta
    # A running window's costly parts (its exact percentiles, its states and time shares) cost
    # a scan of its rows: a week or month of a million tickets takes 10–20 s. They wait at
    # least `slow`, and longer when they cost more (jobs.Aggregator measures them), so they
    # never take more than a share of a core.
    costly_wait: Mapping[str, timedelta] = field(default_factory=dict)

    def costly_due(self, kind: str, end: datetime) -> datetime:
        """When the costly parts of a window of `kind` ending at `end` are due."""
        wait = self.slow
        if end > self.now and self.slow:  # slow 0: no slower cadence at all
            wait = max(wait, self.costly_wait.get(kind, wait))
        return self.now + wait


def expand_marks(conn: Connection, horizon: Horizon, limit: int = MARKS_PER_CLAIM) -> int:
    """Claim dirty marks, turn them into queue rows (one per window and lane), delete them.
    Returns the marks claimed. A window that has not begun is queued for the instants placed in
    it only; the clock refresh queues it when it begins."""
    claimed = conn.execute(_CLAIM, {"limit": limit}).all()
    if not claimed:
        return 0
    by_lane: dict[str, list[tuple[Span, str, datetime]]] = defaultdict(list)
    for r in claimed:
        kinds = set(r.scope.split(","))
        everything = bool(EVERYTHING & kinds)
        # a recompute command recomputes everything: instants and intervals alike
        lane = "point" if "recompute" in kinds else r.lane
        # An instant is placed in its window whenever it lies (a source's clock may run ahead);
        # an interval moves states and time shares only up to now (a change planned until 2099
        # would otherwise queue every window until then).
        end = (
            r.range_end
            if lane == "point" and "recompute" not in kinds
            else min(r.range_end, horizon.now)
        )
        if r.range_start <= end:
            by_lane[lane].append(
                ((r.range_start, end), ALL if everything else r.scope, r.first_received_at)
            )
    rows: list[QueueRow] = []
    for lane, marks in by_lane.items():
        for (a, b), scopes, received in _merged(marks):
            # hours only where they are kept: older ones are answered at query time
            windows = windows_overlapping(max(a, horizon.hours_since), b, horizon.tz, ("hour",))
            windows += windows_overlapping(a, b, horizon.tz, LONGER)
            for kind, start in windows:
                end = window_end(kind, start, horizon.tz)
                deferred = lane == "span" and end > horizon.now
                due = horizon.costly_due(kind, end) if deferred else horizon.now
                rows.append((kind, start, lane, end, scopes, received, due))
    enqueue(conn, rows, horizon.now)
    conn.execute(_DONE, {"ids": [r.id for r in claimed]})
    return len(claimed)


def _merged(
    marks: list[tuple[Span, str, datetime]],
) -> list[tuple[Span, str, datetime]]:
    """Marks of one lane merged where at most an hour apart (they touch the same windows: see
    shared.dirty.dirty_ranges), with the union of their scopes and the earliest receipt."""
    out: list[tuple[Span, set[str], datetime]] = []
    for (a, b), scope, received in sorted(marks):
        if out and a - out[-1][0][1] <= HOUR:
            (start, end), scopes, first = out[-1]
            out[-1] = ((start, max(end, b)), scopes | set(scope.split(",")), min(first, received))
        else:
            out.append(((a, b), set(scope.split(",")), received))
    return [(span, ALL if ALL in sc else ",".join(sorted(sc)), r) for span, sc, r in out]


def enqueue(
    conn: Connection,
    rows: Sequence[QueueRow],
    now: datetime,
) -> None:
    """Upsert queue rows (kind, start, lane, end, comma-joined scopes, received, due): scopes
    merge, the earliest receipt and due time win."""
    merged: dict[tuple[str, datetime, str], QueueRow] = {}
    for row in rows:  # one row per window and lane (a month overlaps several marks)
        key = (row[0], row[1], row[2])
        if key in merged:
            old = merged[key]
            scopes = ",".join(sorted(set(old[4].split(",")) | set(row[4].split(",")) - {""}))
            row = (*key, row[3], scopes, min(old[5], row[5]), min(old[6], row[6]))
        merged[key] = row
    rows = list(merged.values())
    if not rows:
        return
    conn.execute(
        _ENQUEUE,
        {
            "kinds": [r[0] for r in rows],
            "starts": [r[1] for r in rows],
            "lanes": [r[2] for r in rows],
            "ends": [r[3] for r in rows],
            "scopes": [r[4] for r in rows],
            "received": [r[5] for r in rows],
            "due": [r[6] for r in rows],
            "now": now,
        },
    )


def follow_ups(
    windows: Iterable[tuple[str, datetime, datetime]],
    *,
    horizon: Horizon,
    percentiles: bool,
) -> list[QueueRow]:
    """Rows for windows whose merged points changed: their objectives (a `point` row with no
    scope: nothing to recompute but objectives and what derives from them) and, when they hold
    durations, their exact percentiles after the slower cadence.

    A running window's objectives wait for the slower cadence too: its points are read through
    `indicator_points` as they change, but evaluating a month's objectives for every service
    after every pass cost a third of the point lane under a steady flow of events, for a status
    that alerts read from /metrics rendered every 15 s or more. A past window's are due at once
    (its status is final)."""
    now = horizon.now
    out = []
    for kind, start, end in windows:
        objectives_due = now + horizon.slow if end > now else now
        out.append((kind, start, "point", end, "", now, objectives_due))
        if percentiles:
            due = horizon.costly_due(kind, end)
            out.append((kind, start, "percentiles", end, "", now, due))
    return out


# --- the next unit of work ------------------------------------------------------------------

_NEXT = text(
    """
    SELECT window_kind, window_start, lane, attempts FROM window_queue
    WHERE parked_at IS NULL AND due_at <= :now AND lane = ANY(:lanes)
      AND (CAST(:running AS boolean) IS NULL
           OR (window_end > :now OR (window_kind = 'hour' AND window_start >= :today))
              = CAST(:running AS boolean))
    ORDER BY CASE lane WHEN 'point' THEN 0 WHEN 'span' THEN 1 ELSE 2 END,
             window_end <= :now, window_start DESC
    LIMIT 1
    """
)
# Due rows of the same class as the first: hours and days of old days (or weeks, months, quarters),
# newest first, to fill a chunk of several units.
_MORE = text(
    """
    SELECT DISTINCT window_kind, window_start FROM window_queue
    WHERE parked_at IS NULL AND due_at <= :now AND attempts = 0 AND lane = ANY(:lanes)
      AND window_kind = ANY(:kinds) AND window_start < :before AND window_end <= :now
    ORDER BY window_start DESC
    LIMIT :limit
    """
)
# Rows are read with their version (`xmin`), not locked: a unit's computation holds no queue
# row, so marks upserted meanwhile (new events, follow-ups of another lane) never wait for it;
# `done` deletes only the rows still at the version read, and a row marked again stays due.
# Two aggregators never compute the same unit at once: `try_lock`.
_CLAIM_ROWS = text(
    """
    SELECT window_kind, window_start, window_end, lane, scopes, first_received_at, attempts,
           xmin::text::bigint AS version
    FROM window_queue
    WHERE parked_at IS NULL AND due_at <= :now AND lane = ANY(:lanes)
      AND window_kind = ANY(:kinds) AND window_start >= :lo AND window_start < :hi
    ORDER BY window_kind, window_start, lane
    """
)


@dataclass(frozen=True)
class Unit:
    """A unit of work: a day with its hours, or one week, month or quarter window."""

    kind: str  # 'day' for a day with its hours, else the window's kind
    start: datetime
    end: datetime

    @property
    def window_kinds(self) -> list[str]:
        """The kinds of the queue rows it covers: a day's unit holds its hours too."""
        return ["hour", "day"] if self.kind == "day" else [self.kind]


def next_units(
    conn: Connection,
    horizon: Horizon,
    room: int,
    lanes: Sequence[str] = LANES,
    running: bool | None = None,
) -> list[Unit]:
    """The next units of these lanes by priority: the first due row's unit and, when it is a
    past window that never failed, up to `room` - 1 more of the same kind (the chunk's size
    comes from the measured cost of a unit). A unit that failed before is computed alone.
    `running` True takes only the units of running windows (the hours of the running day
    belong to its unit), False only the others, None both."""
    today = window_start("day", horizon.now, horizon.tz)
    first = conn.execute(
        _NEXT,
        {"now": horizon.now, "lanes": list(lanes), "today": today, "running": running},
    ).first()
    if first is None:
        return []
    kind = "day" if first.window_kind in ("hour", "day") else first.window_kind
    unit = _unit(kind, first.window_start, horizon.tz)
    units = [unit]
    if first.attempts == 0 and unit.end <= horizon.now and room > 1:
        for r in conn.execute(
            _MORE,
            {
                "now": horizon.now,
                "kinds": unit.window_kinds,
                "before": unit.start,
                "limit": room * 30,
                "lanes": list(lanes),
            },
        ):
            u = _unit(kind, r.window_start, horizon.tz)
            if u not in units and u.end <= horizon.now:
                units.append(u)
            if len(units) >= room:
                break
    return units


def _unit(kind: str, start: datetime, tz: ZoneInfo) -> Unit:
    s = window_start(kind, start, tz)
    return Unit(kind, s, window_end(kind, s, tz))


def claim(conn: Connection, unit: Unit, now: datetime, lanes: Sequence[str] = LANES) -> list[Row]:
    """The due rows of a unit in these lanes, with their versions (the caller holds the unit:
    `try_lock`)."""
    params = {
        "now": now,
        "kinds": unit.window_kinds,
        "lo": unit.start,
        "hi": unit.end,
        "lanes": list(lanes),
    }
    rows = conn.execute(_CLAIM_ROWS, params).all()
    return [
        Row(
            r.window_kind,
            r.window_start,
            r.window_end,
            r.lane,
            frozenset(r.scopes),
            r.first_received_at,
            r.attempts,
            int(r.version),
        )
        for r in rows
        if r.window_kind == unit.kind or unit.kind == "day"
    ]


_LOCK = text(
    "SELECT pg_try_advisory_xact_lock(hashtext('itsm-window'), "
    "hashtext(CAST(:kind AS text) || ':' || extract(epoch FROM CAST(:start AS timestamptz))::text))"
)


def try_lock(conn: Connection, unit: Unit) -> bool:
    """Whether this transaction now holds the unit (no other aggregator computes it)."""
    return bool(conn.execute(_LOCK, {"kind": unit.kind, "start": unit.start}).scalar_one())


def done(conn: Connection, rows: Sequence[Row], horizon: Horizon | None = None) -> None:
    """Delete the rows a unit computed, unless another transaction marked them again since
    they were read (their version moved): those stay due and are computed once more — at
    once for instants; for the costly parts of a running window (slow lanes), not before
    `horizon.costly_due` (a busy week re-marked during its 20 s computation would otherwise be
    computed again straight away, and again). A row this unit marked itself is done (a marker
    waiting on it inserts a new row)."""
    if not rows:
        return
    conn.execute(
        text(
            """
            DELETE FROM window_queue q
            USING unnest(CAST(:kinds AS text[]), CAST(:starts AS timestamptz[]),
                         CAST(:lanes AS text[]), CAST(:versions AS bigint[]))
                  AS r(kind, start, lane, version)
            WHERE q.window_kind = r.kind AND q.window_start = r.start AND q.lane = r.lane
              AND q.xmin::text::bigint IN (
                  r.version, pg_current_xact_id()::text::bigint % 4294967296)
            """
        ),
        {**_keys(rows), "versions": [r.version for r in rows]},
    )
    if horizon is None:
        return
    later = [r for r in rows if r.lane in SLOW_LANES and r.end > horizon.now]
    if later:
        conn.execute(
            text(
                """
                UPDATE window_queue q SET due_at = greatest(q.due_at, r.due)
                FROM unnest(CAST(:kinds AS text[]), CAST(:starts AS timestamptz[]),
                            CAST(:lanes AS text[]), CAST(:dues AS timestamptz[]))
                      AS r(kind, start, lane, due)
                WHERE q.window_kind = r.kind AND q.window_start = r.start AND q.lane = r.lane
                """
            ),
            {**_keys(later), "dues": [horizon.costly_due(r.kind, r.end) for r in later]},
        )


def postpone(conn: Connection, unit: Unit, lanes: Sequence[str], until: datetime) -> None:
    """Leave the due rows of a unit another transaction computes for a little later (no busy
    loop on them). Rows of the lanes it computes are then computed once more after it: their
    version moved."""
    conn.execute(
        text(
            """
            UPDATE window_queue SET due_at = :until
            WHERE parked_at IS NULL AND due_at < :until AND lane = ANY(:lanes)
              AND window_kind = ANY(:kinds) AND window_start >= :lo AND window_start < :hi
            """
        ),
        {
            "until": until,
            "lanes": list(lanes),
            "kinds": unit.window_kinds,
            "lo": unit.start,
            "hi": unit.end,
        },
    )


def backoff(attempts: int) -> timedelta:
    """2, 4, 8, 16 … seconds after each failure, at most five minutes."""
    return timedelta(seconds=min(300, 2**attempts))


def failed(conn: Connection, rows: Sequence[Row], error: str, now: datetime) -> int:
    """Count a failure on each row: retried after a backoff, alone; parked with its error after
    MAX_ATTEMPTS. Returns how many rows are parked now."""
    if not rows:
        return 0
    attempts = max(r.attempts for r in rows) + 1
    result = conn.execute(
        text(
            """
            UPDATE window_queue q SET attempts = q.attempts + 1, last_error = :error,
                due_at = :due,
                parked_at = CASE WHEN q.attempts + 1 >= :max THEN CAST(:now AS timestamptz) END
            FROM unnest(CAST(:kinds AS text[]), CAST(:starts AS timestamptz[]),
                        CAST(:lanes AS text[])) AS r(kind, start, lane)
            WHERE q.window_kind = r.kind AND q.window_start = r.start AND q.lane = r.lane
            RETURNING q.parked_at
            """
        ),
        {
            **_keys(rows),
            "error": error[:2000],
            "due": now + backoff(attempts),
            "max": MAX_ATTEMPTS,
            "now": now,
        },
    ).all()
    return sum(1 for r in result if r.parked_at is not None)


def _keys(rows: Sequence[Row]) -> dict[str, Any]:
    return {
        "kinds": [r.kind for r in rows],
        "starts": [r.start for r in rows],
        "lanes": [r.lane for r in rows],
    }


# --- what operators see -------------------------------------------------------------------


@dataclass(frozen=True)
class QueueState:
    waiting: int  # rows not parked (due now or later)
    due: int
    parked: int
    oldest_due: datetime | None


def state(conn: Connection, now: datetime) -> QueueState:
    r = conn.execute(
        text(
            """
            SELECT count(*) FILTER (WHERE parked_at IS NULL) AS waiting,
                   count(*) FILTER (WHERE parked_at IS NULL AND due_at <= :now) AS due,
                   count(*) FILTER (WHERE parked_at IS NOT NULL) AS parked,
                   min(due_at) FILTER (WHERE parked_at IS NULL AND due_at <= :now) AS oldest
            FROM window_queue
            """
        ),
        {"now": now},
    ).one()
    return QueueState(r.waiting, r.due, r.parked, r.oldest)


# Points stored per window kind: how many windows, points, and points per window (the bound
# the storage policy sets, reported; services/aggregator/policy.py).
POINTS_PER_KIND = text(
    f"""
    SELECT window_kind, count(*) AS windows, sum(n) AS points, avg(n) AS mean, max(n) AS max
    FROM (SELECT window_kind, window_start, count(*) AS n FROM indicator_values
          GROUP BY window_kind, window_start) AS w
    GROUP BY window_kind
    ORDER BY array_position(ARRAY[{", ".join(repr(k) for k in WINDOW_KINDS)}], window_kind)
    """
)


@dataclass(frozen=True)
class Parked:
    kind: str
    start: datetime
    lane: str
    attempts: int
    parked_at: datetime
    error: str


def parked(conn: Connection, limit: int = 100) -> list[Parked]:
    rows = conn.execute(
        text(
            """
            SELECT window_kind, window_start, lane, attempts, parked_at, last_error
            FROM window_queue WHERE parked_at IS NOT NULL
            ORDER BY parked_at DESC, window_kind, window_start LIMIT :limit
            """
        ),
        {"limit": limit},
    )
    return [
        Parked(r.window_kind, r.window_start, r.lane, r.attempts, r.parked_at, r.last_error or "")
        for r in rows
    ]


def retry(
    conn: Connection, now: datetime, kind: str | None = None, start: datetime | None = None
) -> int:
    """Unpark windows (all, or those of one kind, or one window): due now, attempts reset."""
    if kind is not None and kind not in WINDOW_KINDS:
        raise ValueError(f"window kind must be one of {', '.join(WINDOW_KINDS)}")
    result = conn.execute(
        text(
            """
            UPDATE window_queue SET parked_at = NULL, attempts = 0, due_at = :now
            WHERE parked_at IS NOT NULL
              AND (CAST(:kind AS text) IS NULL OR window_kind = :kind)
              AND (CAST(:start AS timestamptz) IS NULL OR window_start = :start)
            """
        ),
        {"now": now, "kind": kind, "start": start},
    )
    return int(result.rowcount or 0)
