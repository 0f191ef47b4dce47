"""Dead letters (SPEC §3.6): list them, and replay the ones the current contract now accepts.

Plain functions over a `Connection` (the caller owns the transaction) around one pure step,
`plan_replay`. A replay re-validates each raw payload with `shared.events.parse_event`,
produces the ones that pass back to Kafka with their original bytes (acks=all), then marks
exactly those rows replayed. Ones that still fail stay unreplayed and are reported with their
current reason, so replaying still-bad input never loops back as new dead letters — unless the
operator forces it. Produce-then-mark is at-least-once: a crash between the two replays the
same events again next time, and the collector drops them as duplicates of (`source`, `id`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.sql import Select

from shared.db import dead_letters
from shared.errors import BrokerUnavailable, InvalidRequest
from shared.events import InvalidEvent, parse_event
from shared.settings import Settings

REPLAY_BATCH = 500


@dataclass(frozen=True)
class StoredDeadLetter:
    """One row of the `dead_letters` table."""

    id: int
    received_at: datetime
    reason: str
    raw: bytes
    topic: str | None
    partition: int | None
    offset: int | None
    event_source: str | None
    event_id: str | None
    event_type: str | None
    replayed_at: datetime | None


@dataclass(frozen=True)
class DeadLetterPage:
    """Newest first; `next_before_id` continues with older ones, None on the last page."""

    items: list[StoredDeadLetter]
    next_before_id: int | None


def _stored(row: Any) -> StoredDeadLetter:
    m = row._mapping
    return StoredDeadLetter(**{**m, "raw": bytes(m["raw"])})


def list_dead_letters(
    conn: Connection,
    *,
    limit: int = 100,
    before_id: int | None = None,
    replayed: bool | None = None,
    reason_contains: str | None = None,
) -> DeadLetterPage:
    """A page of dead letters, newest first, filtered by replay state and reason substring
    (case-insensitive; `%` and `_` match themselves)."""
    if limit < 1:
        raise InvalidRequest(f"limit must be at least 1, got {limit}")
    dl = dead_letters.c
    query = select(dead_letters).order_by(dl.id.desc()).limit(limit + 1)
    if before_id is not None:
        query = query.where(dl.id < before_id)
    if replayed is not None:
        query = query.where(dl.replayed_at.is_not(None) if replayed else dl.replayed_at.is_(None))
    if reason_contains:
        query = query.where(dl.reason.icontains(reason_contains, autoescape=True))
    rows = [_stored(r) for r in conn.execute(query)]
    items = rows[:limit]
    return DeadLetterPage(items, items[-1].id if len(rows) > limit else None)


# --- replay -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Selection:
    """Which dead letters a replay considers: the given ids (replayed before or not), else every
    one not yet replayed; narrowed by receipt time and a reason substring."""

    ids: tuple[int, ...] = ()
    since: datetime | None = None
    reason_contains: str | None = None

    def where(self, query: Select[Any]) -> Select[Any]:
        dl = dead_letters.c
        if self.ids:
            query = query.where(dl.id.in_(self.ids))
        else:
            query = query.where(dl.replayed_at.is_(None))
        if self.since is not None:
            query = query.where(dl.received_at >= self.since)
        if self.reason_contains:
            query = query.where(dl.reason.icontains(self.reason_contains, autoescape=True))
        return query


@dataclass(frozen=True)
class Replay:
    """A dead letter to produce again: its original bytes to `topic`, keyed by entity id.
    `valid` is False only for a forced replay of input the contract still refuses."""

    dead_letter_id: int
    topic: str
    key: bytes | None
    value: bytes
    valid: bool = True
    event_type: str | None = None
    event_id: str | None = None


@dataclass(frozen=True)
class StillInvalid:
    dead_letter_id: int
    reason: str


@dataclass
class ReplayPlan:
    replays: list[Replay] = field(default_factory=list)
    invalid: list[StillInvalid] = field(default_factory=list)


def plan_replay(
    letters: Sequence[StoredDeadLetter],
    *,
    max_bytes: int,
    topic_for: Callable[[str], str],
    force: bool = False,
) -> ReplayPlan:
    """Re-validate each raw payload with the current contract and decide where it goes. Pure.

    A valid one goes back to the topic it was read from (so the collector sees it where the
    source put it), or, when it has none, to its type's topic; key = entity id. A still-invalid
    one is reported with its current reason, or, when forced, sent back to its original topic
    unkeyed (it then lands as a new dead letter)."""
    plan = ReplayPlan()
    for d in letters:
        try:
            ev = parse_event(d.raw, max_bytes=max_bytes)
        except InvalidEvent as err:
            if force and d.topic:
                plan.replays.append(
                    Replay(d.id, d.topic, None, d.raw, False, err.event_type, err.event_id)
                )
            elif force:
                reason = f"{err.reason} (no original topic to force it back to)"
                plan.invalid.append(StillInvalid(d.id, reason))
            else:
                plan.invalid.append(StillInvalid(d.id, err.reason))
            continue
        topic = d.topic or topic_for(ev.topic_suffix)
        plan.replays.append(Replay(d.id, topic, ev.entity_id.encode(), d.raw, True, ev.type, ev.id))
    return plan


def count_candidates(conn: Connection, selection: Selection) -> int:
    query = selection.where(select(func.count()).select_from(dead_letters))
    return int(conn.execute(query).scalar_one())


def missing_ids(conn: Connection, ids: Sequence[int]) -> list[int]:
    """The ids among `ids` that name no dead letter."""
    if not ids:
        return []
    found = set(conn.execute(select(dead_letters.c.id).where(dead_letters.c.id.in_(ids))).scalars())
    return sorted(set(ids) - found)


def select_candidates(
    conn: Connection, selection: Selection, *, after_id: int = 0, limit: int = REPLAY_BATCH
) -> list[StoredDeadLetter]:
    """The next batch in id order, locked so that two concurrent replays skip each other's rows."""
    dl = dead_letters.c
    query = (
        selection.where(select(dead_letters))
        .where(dl.id > after_id)
        .order_by(dl.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [_stored(r) for r in conn.execute(query)]


def produce(producer: KafkaProducer, replays: Sequence[Replay]) -> None:
    """Send every replay and wait until each one is acknowledged (acks=all in the config)."""
    try:
        futures = [producer.send(r.topic, key=r.key, value=r.value) for r in replays]
        producer.flush(timeout=30)
        for f in futures:
            f.get(timeout=30)
    except KafkaError as err:
        raise BrokerUnavailable(f"could not produce to Kafka: {err}") from None


def mark_replayed(conn: Connection, ids: Sequence[int]) -> int:
    if not ids:
        return 0
    dl = dead_letters.c
    result = conn.execute(update(dead_letters).where(dl.id.in_(ids)).values(replayed_at=func.now()))
    return result.rowcount


@dataclass(frozen=True)
class ReplayBatch:
    last_id: int
    checked: int
    plan: ReplayPlan


def replay_batch(
    conn: Connection,
    producer: KafkaProducer | None,
    settings: Settings,
    selection: Selection,
    *,
    after_id: int = 0,
    limit: int = REPLAY_BATCH,
    dry_run: bool = False,
    force: bool = False,
) -> ReplayBatch | None:
    """Replay the next batch after `after_id` in the caller's transaction; None when done.
    With `dry_run` nothing is produced or marked (`producer` may then be None)."""
    letters = select_candidates(conn, selection, after_id=after_id, limit=limit)
    if not letters:
        return None
    plan = plan_replay(
        letters, max_bytes=settings.max_event_bytes, topic_for=settings.topic, force=force
    )
    if plan.replays and not dry_run:
        assert producer is not None, "a replay that is not a dry run needs a producer"
        produce(producer, plan.replays)
        mark_replayed(conn, [r.dead_letter_id for r in plan.replays])
    return ReplayBatch(letters[-1].id, len(letters), plan)


@dataclass
class ReplayReport:
    checked: int = 0
    replayed: list[Replay] = field(default_factory=list)
    invalid: list[StillInvalid] = field(default_factory=list)


def replay(
    engine: Engine,
    producer: KafkaProducer | None,
    settings: Settings,
    selection: Selection,
    *,
    dry_run: bool = False,
    force: bool = False,
    batch_size: int = REPLAY_BATCH,
    on_batch: Callable[[ReplayReport], None] | None = None,
) -> ReplayReport:
    """The replay job: one transaction per batch, so a failure keeps what already committed."""
    report = ReplayReport()
    after_id = 0
    while True:
        with engine.begin() as conn:
            batch = replay_batch(
                conn,
                producer,
                settings,
                selection,
                after_id=after_id,
                limit=batch_size,
                dry_run=dry_run,
                force=force,
            )
        if batch is None:
            return report
        after_id = batch.last_id
        report.checked += batch.checked
        report.replayed.extend(batch.plan.replays)
        report.invalid.extend(batch.plan.invalid)
        if on_batch is not None:
            on_batch(report)
