"""Event-to-indicator time as readers see it: a count the aggregator stores (the tickets opened in
a window, from `indicator_points`) polled every few milliseconds, and the k-th ticket creation
sent taken as visible at the first poll that counts k new ones. Each creation is counted once
and the count only grows, so this times every creation without marking any; the aggregator
benchmark and the soak measure freshness with it."""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import TextClause

Seen = list[tuple[float, int]]  # (monotonic poll time, count above the base)


def watch_count(
    engine: Engine,
    query: TextClause,
    stop: threading.Event,
    seen: Seen,
    base: int = 0,
    every: float = 0.02,
    params: dict[str, Any] | None = None,
) -> None:
    """Poll `query` (one number) every `every` s until stopped, appending to `seen`. While the
    database is away the polls fail and are skipped, every half second, until it is back."""
    while not stop.is_set():
        try:
            with engine.connect() as conn:
                while not stop.is_set():
                    count = int(conn.execute(query, params or {}).scalar_one())
                    conn.commit()  # a new snapshot for the next poll
                    seen.append((time.monotonic(), count - base))
                    time.sleep(every)
        except DBAPIError:
            stop.wait(0.5)


def end_to_end(created: list[float], seen: Seen) -> list[float]:
    """For the k-th creation, the first poll at which k new creations were counted, minus its
    send time. Creations never counted are left out (reported as measured k of n)."""
    out = []
    i = 0
    for k, sent_at in enumerate(created, start=1):
        while i < len(seen) and seen[i][1] < k:
            i += 1
        if i == len(seen):
            break
        out.append(round(max(0.0, seen[i][0] - sent_at), 3))
    return out


def quantile(values: list[float], q: float) -> float | None:
    """The `q` quantile of sorted `values` (nearest rank), None when there are none."""
    if not values:
        return None
    return values[min(len(values) - 1, int(q * (len(values) - 1) + 0.5))]
