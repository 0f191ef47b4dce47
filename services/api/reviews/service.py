"""Review records and the schedule: plain functions over a connection (the caller owns the
transaction)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Connection, and_, func, insert, null, select, tuple_, update

from services.api.reviews import items as item_states
from services.api.reviews.schedule import (
    SCHEDULE_STATES,
    ScheduleState,
    deadlines,
    period_states,
)
from services.api.reviews.schemas import (
    ActionItem,
    ActionItemPatch,
    ItemChange,
    PreviousReview,
    Review,
    ReviewCreate,
    ReviewList,
    Schedule,
    ScheduledPeriod,
    ScheduleEntry,
)
from services.catalog import Catalog
from services.catalog.model import review_scope_problem
from shared.db import review_action_item_changes, review_action_items, reviews
from shared.dirty import mark_dirty
from shared.errors import Conflict, InvalidRequest, NotFound
from shared.periods import Period, last_periods, parse_period

SCOPE_KEYS = ("service", "customer", "assignment_group")


def create(
    conn: Connection, catalog: Catalog, body: ReviewCreate, now: datetime, tz: ZoneInfo
) -> Review:
    """Record a review that took place, with its action items (each `open` unless given), and
    mark the deadline of its period dirty: `review_completion_ratio`'s sample there may now be
    a review held on time (a deadline still ahead costs an empty recompute of its windows)."""
    scope_kind, scope_id = _scope(
        catalog, body.kind, body.service, body.customer, body.assignment_group
    )
    period = period_of(body.period)
    held_at = body.held_at or now
    if held_at.tzinfo is None:
        raise InvalidRequest("held_at needs a UTC offset, e.g. 2026-11-04T10:00:00Z")
    if held_at > now:
        raise InvalidRequest("held_at is in the future: record a review once it took place")
    review_id = conn.execute(
        insert(reviews)
        .values(
            kind=body.kind,
            level=body.level,
            scope_kind=scope_kind,
            scope_id=scope_id,
            period=period.label,
            period_kind=period.kind,
            period_start=period.start(tz),
            period_end=period.end(tz),
            held_at=held_at,
            participants=body.participants,
            notes=body.notes,
            decisions=body.decisions,
            recorded_by=body.recorded_by,
            created_at=now,
        )
        .returning(reviews.c.id)
    ).scalar_one()
    due = deadlines(catalog.reviews, body.kind, (scope_kind, scope_id), period, tz)
    if due:
        mark_dirty(conn, {"review": (due, [])}, now)
    if body.action_items:
        t = review_action_items.c
        conn.execute(
            insert(review_action_items),
            [
                {
                    "review_id": review_id,
                    "title": item.title,
                    "owner": item.owner,
                    "due_date": item.due,
                    "state": item.state,
                    "note": item.note,
                    "updated_at": now,
                    "updated_by": body.recorded_by,
                }
                for item in body.action_items
            ],
        )
        # Each item's first state, in the history like every later change.
        conn.execute(
            insert(review_action_item_changes).from_select(
                ["item_id", "from_state", "to_state", "by", "note", "at"],
                select(t.id, null(), t.state, t.updated_by, t.note, t.updated_at).where(
                    t.review_id == review_id
                ),
            )
        )
    return get(conn, review_id)


def get(conn: Connection, review_id: int) -> Review:
    """One review with its action items, the previous review of the same kind and scope (by
    when they were held) with its items' progress, and the items still open of every review
    held before it."""
    row = _row(conn, review_id)
    c = reviews.c
    same_scope = and_(
        c.kind == row.kind,
        c.scope_kind == row.scope_kind,
        c.scope_id == row.scope_id,
        tuple_(c.held_at, c.id) < tuple_(row.held_at, row.id),
    )
    before = conn.execute(
        select(reviews).where(same_scope).order_by(c.held_at.desc(), c.id.desc()).limit(1)
    ).first()
    previous = None if before is None else _previous(conn, before)
    carried = items(
        conn,
        and_(same_scope, review_action_items.c.state.in_(item_states.OPEN_STATES)),
    )
    own = items(conn, review_action_items.c.review_id == review_id)
    return _model(row, own).model_copy(update={"previous": previous, "carried_items": carried})


def before_period(
    conn: Connection, kind: str, scope_kind: str, scope_id: str, period: Period, tz: ZoneInfo
) -> tuple[PreviousReview | None, list[ActionItem]]:
    """For a review of `period`: the review of this kind and scope for the latest earlier period
    of the same period kind (the newest one held for it) with all its items' progress, and the
    still-open items of every review of this kind and scope for a period starting earlier."""
    start = period.start(tz)
    c = reviews.c
    earlier = and_(
        c.kind == kind, c.scope_kind == scope_kind, c.scope_id == scope_id, c.period_start < start
    )
    before = conn.execute(
        select(reviews)
        .where(earlier, c.period_kind == period.kind)
        .order_by(c.period_start.desc(), c.held_at.desc(), c.id.desc())
        .limit(1)
    ).first()
    previous = None if before is None else _previous(conn, before)
    still_open = items(
        conn, and_(earlier, review_action_items.c.state.in_(item_states.OPEN_STATES))
    )
    return previous, still_open


def list_all(
    conn: Connection,
    *,
    kind: str | None,
    scope: dict[str, str | None],
    period: str | None,
    limit: int,
) -> ReviewList:
    """Reviews, the most recently held first, filtered by kind, one scope and period."""
    c = reviews.c
    q = select(reviews).order_by(c.held_at.desc(), c.id.desc()).limit(limit)
    if kind is not None:
        q = q.where(c.kind == kind)
    given = {k: v for k, v in scope.items() if v is not None}
    if len(given) > 1:
        raise InvalidRequest(f"filter by one of {', '.join(SCOPE_KEYS)}, not several")
    for key, value in given.items():
        q = q.where(c.scope_kind == key, c.scope_id == value)
    if period is not None:
        q = q.where(c.period == period_of(period).label)
    rows = conn.execute(q).all()
    found = items(conn, review_action_items.c.review_id.in_([r.id for r in rows]))
    by_review: dict[int, list[ActionItem]] = {}
    for item in found:
        by_review.setdefault(item.review_id, []).append(item)
    return ReviewList(reviews=[_model(r, by_review.get(r.id, [])) for r in rows])


def update_item(
    conn: Connection, review_id: int, item_id: int, patch: ActionItemPatch, now: datetime
) -> ActionItem:
    """Change an action item's state, note, owner or due date; a change of state is kept with
    who and the note. A done or dropped item is final (409)."""
    _row(conn, review_id)
    t = review_action_items.c
    row = conn.execute(
        select(review_action_items)
        .where(t.id == item_id, t.review_id == review_id)
        .with_for_update()
    ).first()
    if row is None:
        raise NotFound(f"review {review_id} has no action item {item_id}")
    given = patch.model_dump(exclude_unset=True, exclude={"by"})
    for key in ("state", "note", "owner"):
        if key in given and given[key] is None:
            raise InvalidRequest(f"{key} cannot be null")
    allowed = item_states.allowed(row.state)
    to = given.get("state", row.state)
    if not allowed and given:
        raise Conflict(
            f"an action item {row.state} is final: record a new item in the next review",
            details={"state": row.state, "allowed": []},
        )
    if to != row.state and to not in allowed:
        raise Conflict(
            f"an action item {row.state} cannot become {to}; allowed: {', '.join(allowed)}",
            details={"state": row.state, "allowed": list(allowed)},
        )
    if given:
        values = {("due_date" if k == "due" else k): v for k, v in given.items()}
        conn.execute(
            update(review_action_items)
            .where(t.id == item_id)
            .values(**values, updated_at=now, updated_by=patch.by)
        )
    if to != row.state:
        _record(conn, item_id, row.state, to, patch.by, given.get("note", ""), now)
    return items(conn, t.id == item_id)[0]


def schedule(
    conn: Connection, catalog: Catalog, at: datetime, tz: ZoneInfo, count: int
) -> Schedule:
    """The catalog's review schedule at `at`: the `count` latest periods of each scheduled
    review with their state (SPEC §7.3)."""
    if at.tzinfo is None:
        raise InvalidRequest("at needs a UTC offset, e.g. 2026-11-10T09:00:00Z")
    held = _held(conn, catalog, at, tz, count)
    entries = []
    counts: dict[ScheduleState, int] = dict.fromkeys(SCHEDULE_STATES, 0)
    for entry in catalog.reviews:
        key = (entry.kind, *entry.scope)
        periods = period_states(
            entry.every, entry.grace_days, at, tz, count, held.get(key, {}), entry.since
        )
        for p in periods:
            counts[p.state] += 1
        entries.append(
            ScheduleEntry(
                kind=entry.kind,
                level=entry.level,
                service=entry.service,
                customer=entry.customer,
                assignment_group=entry.assignment_group,
                every=entry.every,
                participants=list(entry.participants),
                grace_days=entry.grace_days,
                since=entry.since,
                periods=[ScheduledPeriod(**asdict(p)) for p in periods],
            )
        )
    return Schedule(at=at, counts=counts, entries=entries)


# --- helpers ---------------------------------------------------------------------------------


def _scope(
    catalog: Catalog,
    kind: str,
    service: str | None,
    customer: str | None,
    assignment_group: str | None,
) -> tuple[str, str]:
    """(scope kind, id) of a review; services and customers must be the catalog's when it lists
    any (assignment groups are not listed in the catalog)."""
    problem = review_scope_problem(kind, service, customer, assignment_group)
    if problem is not None:
        raise InvalidRequest(problem)
    for key, value, known in (
        ("service", service, [s.id for s in catalog.services]),
        ("customer", customer, [c.id for c in catalog.customers]),
    ):
        if value is not None and known and value not in known:
            raise InvalidRequest(f"unknown {key} {value!r}: the catalog lists {', '.join(known)}")
    values = (service, customer, assignment_group)
    return next((k, v) for k, v in zip(SCOPE_KEYS, values, strict=True) if v is not None)


def _previous(conn: Connection, row: Any) -> PreviousReview:
    """A review as the one before another: with every one of its items as they are now."""
    return PreviousReview(
        id=row.id,
        level=row.level,
        period=row.period,
        held_at=row.held_at,
        action_items=items(conn, review_action_items.c.review_id == row.id),
    )


def period_of(text: str) -> Period:
    """The period a review names (`2026-10`, `2026-W41`, `2026-Q4`), or a 422."""
    try:
        return parse_period(text)
    except ValueError as err:
        raise InvalidRequest(str(err)) from None


def _held(
    conn: Connection, catalog: Catalog, at: datetime, tz: ZoneInfo, count: int
) -> dict[tuple[str, str, str], dict[str, int]]:
    """(kind, scope kind, scope id) → period → the newest review recorded for it, over the
    periods the schedule shows (one query)."""
    labels = {
        p.label for entry in catalog.reviews for p in last_periods(entry.every, at, tz, count)
    }
    if not labels:
        return {}
    c = reviews.c
    rows = conn.execute(
        select(c.kind, c.scope_kind, c.scope_id, c.period, func.max(c.id))
        .where(c.period.in_(sorted(labels)))
        .group_by(c.kind, c.scope_kind, c.scope_id, c.period)
    )
    held: dict[tuple[str, str, str], dict[str, int]] = {}
    for kind, scope_kind, scope_id, period, review_id in rows:
        held.setdefault((kind, scope_kind, scope_id), {})[period] = review_id
    return held


def _row(conn: Connection, review_id: int) -> Any:
    row = conn.execute(select(reviews).where(reviews.c.id == review_id)).first()
    if row is None:
        raise NotFound(f"no review {review_id}")
    return row


def items(conn: Connection, where: ColumnElement[bool]) -> list[ActionItem]:
    """Action items matching `where` (over the items and their review), oldest review first,
    each with its history."""
    t, r, h = review_action_items.c, reviews.c, review_action_item_changes.c
    rows = conn.execute(
        select(review_action_items, r.period)
        .join(reviews, r.id == t.review_id)
        .where(where)
        .order_by(r.held_at, r.id, t.id)
    ).all()
    history: dict[int, list[ItemChange]] = {}
    if rows:
        changes = conn.execute(
            select(h.item_id, h.from_state, h.to_state, h.by, h.note, h.at)
            .where(h.item_id.in_([row.id for row in rows]))
            .order_by(h.id)
        )
        for change in changes:
            values = dict(change._mapping)
            history.setdefault(values.pop("item_id"), []).append(ItemChange(**values))
    return [
        ActionItem(
            id=row.id,
            review_id=row.review_id,
            period=row.period,
            title=row.title,
            owner=row.owner,
            due=row.due_date,
            state=row.state,
            allowed_states=list(item_states.allowed(row.state)),
            note=row.note,
            updated_at=row.updated_at,
            updated_by=row.updated_by,
            history=history.get(row.id, []),
        )
        for row in rows
    ]


def _record(
    conn: Connection,
    item_id: int,
    from_state: str | None,
    to_state: str,
    by: str,
    note: str,
    now: datetime,
) -> None:
    conn.execute(
        insert(review_action_item_changes).values(
            item_id=item_id, from_state=from_state, to_state=to_state, by=by, note=note, at=now
        )
    )


def _model(row: Any, action_items: list[ActionItem]) -> Review:
    scope = {key: row.scope_id if row.scope_kind == key else None for key in SCOPE_KEYS}
    return Review(
        id=row.id,
        kind=row.kind,
        level=row.level,
        **scope,
        period=row.period,
        period_kind=row.period_kind,
        period_start=row.period_start,
        period_end=row.period_end,
        held_at=row.held_at,
        participants=row.participants,
        notes=row.notes,
        decisions=row.decisions,
        recorded_by=row.recorded_by,
        created_at=row.created_at,
        action_items=action_items,
    )
