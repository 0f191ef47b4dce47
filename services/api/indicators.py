"""Reading indicator values for the API (SPEC §7.2): stored groupings from `indicator_points`,
the others computed at query time by the same statement (services/aggregator/policy.py)."""

from __future__ import annotations

import gzip
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Connection, cast, func, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import OperationalError

from services.aggregator.compute import catalog_params, query_points
from services.aggregator.indicators import CUSTOMER, PRIVATE_DIMENSIONS, Indicator
from services.aggregator.indicators.custom import find, indicators_for
from services.aggregator.policy import hours_kept_since, is_stored
from services.api.schemas import IndicatorInfo, IndicatorSeries, Point
from services.catalog import Catalog
from shared.db import indicator_points
from shared.errors import InvalidRequest, NotFound, QueryTooExpensive
from shared.windows import WINDOW_KINDS, window_end, window_start

# The query parameters of GET /v1/indicators/{id} besides its dimension filters: every other one
# is a filter, accepted when the indicator has that dimension (plan).
PARAMETERS = ("window", "start", "end", "group_by")
# Default look-back when `start` is not given, per window kind.
DEFAULT_SPAN = {
    "hour": timedelta(hours=48),
    "day": timedelta(days=31),
    "week": timedelta(weeks=12),
    "month": timedelta(days=366),
    "quarter": timedelta(days=2 * 366),
}
# At most this many windows per request (a count's empty windows are filled with 0, so the span
# alone sets the answer's size): ~13 months of hours, 27 years of days.
MAX_WINDOWS = 10_000
_LENGTH = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
    "month": timedelta(days=28),
    "quarter": timedelta(days=89),
}
# A grouping computed at query time may take this long (it scans the projections).
QUERY_SECONDS = 10.0


@dataclass(frozen=True)
class Reading:
    """How indicator values are read: the settings the indicator API reads them with (the
    reviews and the improvements read them the same way)."""

    tz: ZoneInfo
    hour_retention_days: float


def catalog(conn: Connection, active: Catalog) -> list[IndicatorInfo]:
    return [info(ind) for ind in indicators_for(conn, active)]


def info(ind: Indicator) -> IndicatorInfo:
    return IndicatorInfo(
        id=ind.id,
        family=ind.family,
        unit=ind.unit,
        direction=ind.direction,
        definition=ind.definition,
        dimensions=list(ind.all_dimensions),
        metric=ind.metric_name,
    )


@dataclass(frozen=True)
class SeriesQuery:
    """A validated request for one indicator's points: where they come from and over what."""

    ind: Indicator
    window: str
    grouping: tuple[str, ...]
    filters: dict[str, str]
    zero_fill: bool
    first: datetime
    end: datetime
    now: datetime
    tz: ZoneInfo
    stored: bool

    def cache_key(self, catalog_sha: str) -> tuple[object, ...]:
        """What the answer depends on besides the stored rows: the request, the catalog, and
        (for a zero-filled count) which windows have begun."""
        begun = window_start(self.window, self.now, self.tz) if self.zero_fill else None
        return (
            catalog_sha,
            self.ind.id,
            self.window,
            self.grouping,
            tuple(sorted(self.filters.items())),
            self.zero_fill,
            self.first,
            self.end,
            begun,
        )


def plan(
    conn: Connection,
    active: Catalog,
    indicator_id: str,
    *,
    window: str,
    start: datetime | None,
    end: datetime | None,
    filters: dict[str, str],
    group_by: list[str],
    tz: ZoneInfo,
    hour_retention_days: float,
    now: datetime | None = None,
) -> SeriesQuery:
    ind = find(conn, active, indicator_id)
    if ind is None:
        raise NotFound(f"unknown indicator {indicator_id!r}: see GET /v1/indicators")
    if window not in WINDOW_KINDS:
        raise InvalidRequest(f"window must be one of {', '.join(WINDOW_KINDS)}")
    private = sorted((set(filters) | set(group_by)) & PRIVATE_DIMENSIONS)
    if private:
        raise InvalidRequest(
            f"{', '.join(private)} is private: per-engineer values appear only in the team "
            "review (a review of an assignment_group), never here or in /metrics (SPEC §8)"
        )
    unknown = sorted((set(filters) | set(group_by)) - set(ind.all_dimensions))
    if unknown:
        raise InvalidRequest(
            f"{indicator_id} has no dimension {', '.join(unknown)}: its query parameters are "
            f"{', '.join(PARAMETERS)} and its dimensions "
            f"({', '.join(ind.all_dimensions) or 'none'}) as filters",
            details={"unknown": unknown, "allowed": [*PARAMETERS, *ind.all_dimensions]},
        )
    if "service" in keys_of(filters, group_by) and CUSTOMER in keys_of(filters, group_by):
        raise InvalidRequest(
            "filter or group by service or customer, not both: a service belongs to one "
            "customer, so its points are the per-service ones"
        )
    now = now or datetime.now(UTC)
    if any(t is not None and t.tzinfo is None for t in (start, end)):
        raise InvalidRequest("start and end need a UTC offset, e.g. 2026-10-01T00:00:00Z")
    # Without `end`, up to the current window included (its end, not this microsecond: the
    # same windows, and the same answer for every request of this window).
    end = end or window_end(window, window_start(window, now, tz), tz)
    start = start or now - DEFAULT_SPAN[window]
    if start >= end:
        raise InvalidRequest("start must be before end")
    if (min(end, now) - start) / _LENGTH[window] > MAX_WINDOWS:
        raise InvalidRequest(
            f"start to end spans more than {MAX_WINDOWS} {window} windows: narrow it, or ask "
            "for a longer window"
        )
    first = window_start(window, start, tz)
    grouping = tuple(sorted(set(filters) | set(group_by)))
    kept = window != "hour" or first >= hours_kept_since(now, hour_retention_days)
    return SeriesQuery(
        ind=ind,
        window=window,
        grouping=grouping,
        filters=filters,
        zero_fill=ind.aggregate == "count" and not group_by,
        first=first,
        end=end,
        now=now,
        tz=tz,
        stored=kept and is_stored(ind, window, grouping),
    )


def series(conn: Connection, active: Catalog, q: SeriesQuery) -> IndicatorSeries:
    points = _stored(conn, q) if q.stored else _computed(conn, active, q)
    if q.zero_fill:
        points = _zero_filled(points, q.window, q.first, q.end, q.now, q.filters, q.tz)
    return IndicatorSeries(indicator=q.ind.id, unit=q.ind.unit, window=q.window, points=points)


@dataclass(frozen=True)
class Answer:
    """A series encoded once: its JSON, and gzipped when it is worth it (a month of daily
    points by service is ~1 MB of JSON, ~60 kB gzipped)."""

    body: bytes
    gzipped: bytes | None

    @classmethod
    def of(cls, found: IndicatorSeries) -> Answer:
        body = found.model_dump_json().encode()
        small = len(body) < GZIP_FROM_BYTES
        return cls(body, None if small else gzip.compress(body, compresslevel=6, mtime=0))


GZIP_FROM_BYTES = 1400


class SeriesCache:
    """Encoded answers of stored groupings, each kept with the version of the rows it was read
    from (`indicator_points`): the number of points, the sum of their versions (a stored row's
    transaction id `xmin` plus its pending differences' ids) and of their pending differences.
    Any write to those rows changes it (a row written again gets a newer transaction id, a row
    removed or added changes the number, an insert's id is above that of any row it replaces, a
    difference appended adds to both sums, a fold empties the pending ones), so a hit costs one
    indexed read of the versions instead of building and encoding the points.
    Groupings computed at query time are not cached that way.

    Every answer (stored or computed) is also remembered for `fresh_seconds` under the request
    as it came (`remember`/`recent`): asked again within that time, it is served without a
    database connection, a catalog lookup or a version read. Sixteen dashboards polling the same
    month cost one validation per second instead of one per request; an answer is at most that
    much older than the stored rows (which lag events by seconds anyway)."""

    def __init__(
        self,
        entries: int = 256,
        fresh_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.entries = entries
        self.fresh_seconds = fresh_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[object, ...], tuple[tuple[int, ...], Answer]] = OrderedDict()
        self._building: dict[tuple[object, ...], threading.Lock] = {}
        self._recent: OrderedDict[tuple[object, ...], tuple[float, Answer]] = OrderedDict()
        self._revalidating: set[tuple[object, ...]] = set()

    def recent(self, request: tuple[object, ...]) -> Answer | None:
        """The answer given to this same request less than `fresh_seconds` ago; an older one
        while another request revalidates it (a burst of the same request is answered from
        memory and validated once). None: the caller reads, then calls `remember`."""
        if self.fresh_seconds <= 0:
            return None
        with self._lock:
            found = self._recent.get(request)
            if found is None:
                return None
            if self.clock() - found[0] < self.fresh_seconds or request in self._revalidating:
                return found[1]
            self._revalidating.add(request)
            return None

    def remember(self, request: tuple[object, ...], answer: Answer | None) -> None:
        """The answer read for `request`; None when reading failed (only ends the
        revalidation)."""
        with self._lock:
            self._revalidating.discard(request)
            if answer is None or self.fresh_seconds <= 0:
                return
            self._recent[request] = (self.clock(), answer)
            self._recent.move_to_end(request)
            while len(self._recent) > self.entries:
                self._recent.popitem(last=False)

    def answer(self, conn: Connection, active: Catalog, catalog_sha: str, q: SeriesQuery) -> Answer:
        if not q.stored:
            return Answer.of(series(conn, active, q))
        key = q.cache_key(catalog_sha)
        rows = _stored_rows(q)
        ip = indicator_points.c
        found = conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(ip.version), 0),
                func.coalesce(func.sum(ip.pending), 0),
            ).where(*rows)
        )
        version = tuple(int(v) for v in found.one())
        hit = self._hit(key, version)
        if hit is not None:
            return hit
        # One computation per key at a time: clients asking for the same answer at once wait
        # for it instead of each building it.
        with self._lock:
            building = self._building.setdefault(key, threading.Lock())
        with building:
            hit = self._hit(key, version)
            if hit is not None:
                return hit
            answer = Answer.of(series(conn, active, q))
            with self._lock:
                self._cache[key] = (version, answer)
                self._cache.move_to_end(key)
                while len(self._cache) > self.entries:
                    evicted, _ = self._cache.popitem(last=False)
                    self._building.pop(evicted, None)
        return answer

    def _hit(self, key: tuple[object, ...], version: tuple[int, ...]) -> Answer | None:
        with self._lock:
            hit = self._cache.get(key)
            if hit is None or hit[0] != version:
                return None
            self._cache.move_to_end(key)
            return hit[1]


def _stored_rows(q: SeriesQuery) -> tuple[ColumnElement[bool], ...]:
    iv = indicator_points.c
    return (
        iv.indicator == q.ind.id,
        iv.window_kind == q.window,
        iv.dim_keys == ",".join(q.grouping),
        iv.window_start >= q.first,
        iv.window_start < q.end,
        iv.dimensions.op("@>")(cast(q.filters, JSONB)),
        iv.value.is_not(None),
    )


def _stored(conn: Connection, q: SeriesQuery) -> list[Point]:
    iv = indicator_points.c
    rows = conn.execute(
        select(iv.window_start, iv.window_end, iv.dimensions, iv.value, iv["count"], iv.p50, iv.p90)
        .where(*_stored_rows(q))
        .order_by(iv.window_start, iv.dimensions)
    ).all()
    return [Point(**r._mapping) for r in rows]


def _computed(conn: Connection, active: Catalog, q: SeriesQuery) -> list[Point]:
    """A grouping that is not stored, from the projections by the aggregator's statement."""
    windows = []
    w = q.first
    while w < q.end and w < q.now:
        windows.append((w, window_end(q.window, w, q.tz)))
        w = windows[-1][1]
    conn.execute(text(f"SET LOCAL statement_timeout = '{int(QUERY_SECONDS * 1000)}ms'"))
    try:
        found = query_points(
            conn,
            q.ind,
            windows,
            q.grouping,
            q.filters,
            now=q.now,
            params=catalog_params(active, q.tz),
        )
    except OperationalError as err:
        if getattr(err.orig, "sqlstate", None) != "57014":  # query_canceled
            raise
        grouping = ", ".join(q.grouping) or "nothing"
        raise QueryTooExpensive(
            f"{q.ind.id} by {grouping} per {q.window} is computed at query "
            f"time and took over {QUERY_SECONDS} s: narrow start..end, filter, or group by a "
            "stored grouping (see the README's Indicators section)"
        ) from None
    return [Point(**asdict(p)) for p in found]


def keys_of(filters: dict[str, str], group_by: list[str]) -> set[str]:
    return set(filters) | set(group_by)


def _zero_filled(
    points: list[Point],
    kind: str,
    first: datetime,
    end: datetime,
    now: datetime,
    filters: dict[str, str],
    tz: ZoneInfo,
) -> list[Point]:
    """A count with nothing to count is 0: add the windows that start before `end` (and not in
    the future) and have no point."""
    have = {p.window_start for p in points}
    out = list(points)
    w = first
    while w < end and w <= now:
        nxt = window_end(kind, w, tz)
        if w not in have:
            out.append(
                Point(window_start=w, window_end=nxt, dimensions=filters, value=0.0, count=0)
            )
        w = nxt
    return sorted(out, key=lambda p: p.window_start)
