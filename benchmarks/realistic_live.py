"""The realistic world's events as they happen, for runs that send "now" (the soak): new tickets,
changes, alerts and service-desk calls open at the moment they are asked for, in the world's
proportions (benchmarks/realistic_world.py: 200 services, 60 groups, 400 engineers, 5,000 CIs,
every dimension drawn independently), and each one's later events (assigned, reassigned,
resolved, closed; approved, implemented; resolved alerts; the call and survey around a ticket)
come due at their realistic delays after it. A caller that opens entities as the clock goes
and sends what is due sends a steady stream of current events whose lifecycles run in real
time: at first mostly openings, then more and more of the follow-ups."""

from __future__ import annotations

import heapq
import itertools
import random
from datetime import UTC, datetime

from benchmarks import realistic_world as rw
from benchmarks.realistic_events import (
    Emitted,
    alert,
    change,
    change_number,
    ticket,
    unlogged_call,
    unlogged_calls,
)

# New entities per new ticket, as the month-long streams have them (realistic_events).
ENTITY_WEIGHTS = {
    "ticket": 1.0,
    "change": rw.CHANGES_PER_TICKET,
    "alert": rw.ALERTS_PER_TICKET,
    "call": unlogged_calls(1.0),
}


class LiveWorld:
    """Entities opened on demand at the caller's clock (epoch seconds), their later events kept
    in time order until due. Lifecycles are cut at `end`: what would happen after the run is
    never scheduled, so the pending events stay as few as the run's length allows."""

    def __init__(self, seed: int, start: float, end: float) -> None:
        self.world = rw.world(seed)
        self.rng = random.Random(f"live-{seed}-{start}")
        self.month = datetime.fromtimestamp(start, UTC)  # the ids' yymm, as in a month's stream
        self.end = end
        self.kinds = list(ENTITY_WEIGHTS)
        self.kind_cdf = rw.cdf(ENTITY_WEIGHTS)
        self.numbers = {kind: itertools.count(1) for kind in ENTITY_WEIGHTS}
        self.changes = 0  # changes opened so far: what an incident may be caused by
        self.problems: list[str] = []  # problem tickets opened so far: what incidents link to
        self._pending: list[tuple[float, int, Emitted]] = []
        self._order = itertools.count()  # ties in time keep their scheduling order

    def open(self, now: float) -> None:
        """A new entity whose first event happens at `now` (due at once); the rest scheduled."""
        kind = self.kinds[rw.pick(self.kind_cdf, self.rng.random())]
        n = next(self.numbers[kind])
        rng, w, month = self.rng, self.world, self.month
        if kind == "ticket":
            timed = ticket(rng, w, now, n, month, max(1, self.changes), self.problems, self.end)
        elif kind == "change":
            self.changes = n
            timed = change(rng, w, now, change_number(month, n), self.end)
        elif kind == "alert":
            timed = alert(rng, w, now, f"ALR{month:%y%m}{n:07d}", self.end)
        else:
            cid = f"CALL{month:%y%m}X{n:07d}"
            timed = [(now, "servicedesk", cid, unlogged_call(rng, now, cid))]
        for epoch, suffix, key, event in timed:
            heapq.heappush(self._pending, (epoch, next(self._order), (suffix, key, event)))

    def due(self, now: float) -> list[Emitted]:
        """Every scheduled event whose time has come, in time order."""
        out: list[Emitted] = []
        while self._pending and self._pending[0][0] <= now:
            out.append(heapq.heappop(self._pending)[2])
        return out

    @property
    def pending(self) -> int:
        return len(self._pending)
