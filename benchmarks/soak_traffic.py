"""The soak's load. Ingest: the realistic world's events as they happen
(benchmarks/realistic_live.py) at a steady rate, most produced to Kafka, a share posted to
`POST /v1/events`, each path a careful client that sends what was not acknowledged again
(benchmarks/senders.py).

Three threads: a pacer that opens entities and hands out what is due every 50 ms, and one
feeder per path that sends what piled up since its last send. An entity keeps one path for its
whole life (chosen from its key), so its events arrive in order, as from one tool. While the
broker hangs both paths wait and retry, and the events pile up in their queues with the time
they happened: what a source buffering through an outage sends.

Reads: what the readers ask in turn (`read_paths`), for benchmarks/reads.py's client processes."""

from __future__ import annotations

import queue
import threading
import time
import zlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from urllib.parse import urlencode

from benchmarks.realistic_events import Emitted
from benchmarks.realistic_live import LiveWorld
from benchmarks.realistic_world import world
from benchmarks.senders import HttpSender, KafkaSender
from shared.settings import Settings

Key = tuple[str, str]  # (source, id)
PATHS = ("kafka", "http")
POISON_EVERY = 1000  # a message that is no event, over Kafka, after this many events
TICK = 0.05  # seconds between two rounds of the pacer
MAX_CHUNK = 500  # events per send at most: a backlog after an outage goes in several


def path_of(key: str, http_share: float) -> str:
    """The path of an entity, stable for its life: a share of the keys' hash space posts."""
    return "http" if zlib.crc32(key.encode()) % 1000 < http_share * 1000 else "kafka"


def is_poison(message: Emitted) -> bool:
    return message[1].startswith("poison-")


class Traffic:
    """Sends the live world's events at `rate` per second from now until `end` (epoch s)."""

    def __init__(
        self,
        settings: Settings,
        api_url: str,
        token: str,
        *,
        rate: float,
        http_share: float,
        end: float,
        seed: int,
    ) -> None:
        self.start = time.time()
        self.rate = rate
        self.http_share = http_share
        self.end = end
        self.world = LiveWorld(seed, self.start, end)
        self.kafka = KafkaSender(settings)
        self.http = HttpSender(api_url, token)
        self.queues: dict[str, queue.SimpleQueue[Emitted]] = {p: queue.SimpleQueue() for p in PATHS}
        self.keys: set[Key] = set()  # every event handed out (poison aside)
        self.created: list[float] = []  # monotonic time of each ticket creation, in order
        self.sent = dict.fromkeys(PATHS, 0)  # events handed to each path (poison aside)
        self.acked = dict.fromkeys(PATHS, 0)  # events acknowledged on each path
        self.resent = dict.fromkeys(PATHS, 0)  # events of sends that were not acknowledged
        self.unacked = dict.fromkeys(PATHS, 0)  # events given up on at the end
        self.poison = 0
        self._generated = threading.Event()  # the pacer is done: feeders may finish
        self._give_up_at = float("inf")
        self._threads = [
            threading.Thread(target=self._pace, name="pacer", daemon=True),
            *(threading.Thread(target=self._feed, args=(p,), name=p, daemon=True) for p in PATHS),
        ]

    def begin(self) -> None:
        for t in self._threads:
            t.start()

    @property
    def acknowledged(self) -> int:
        return sum(self.acked.values())

    def finish(self, timeout: float) -> None:
        """Stop opening entities, then give the feeders `timeout` s to have everything
        acknowledged; what is left after that is counted in `unacked`."""
        self._generated.set()
        self._give_up_at = time.monotonic() + timeout
        for t in self._threads:
            t.join(timeout + 30)
        self.kafka.close()
        self.http.close()

    def _pace(self) -> None:
        """Every TICK: what is due, then new entities until `rate` × elapsed events went out."""
        handed = 0
        while not self._generated.is_set() and (now := time.time()) < self.end:
            out = self.world.due(now)
            target = int((now - self.start) * self.rate)
            while handed + len(out) < target:
                self.world.open(now)
                out += self.world.due(now)
            for message in out:
                self._route(message)
            handed += len(out)
            time.sleep(TICK)
        self._generated.set()

    def _route(self, message: Emitted) -> None:
        _, key, event = message
        self.keys.add((event["source"], event["id"]))
        if event["type"] == "itsm.ticket.created":
            self.created.append(time.monotonic())
        path = path_of(key, self.http_share)
        self.sent[path] += 1
        self.queues[path].put(message)
        if sum(self.sent.values()) % POISON_EVERY == 0:
            self.poison += 1
            poison = {"poison": self.poison, "note": "not a CloudEvent: a dead letter"}
            self.queues["kafka"].put(("tickets", f"poison-{self.poison}", poison))

    def _feed(self, path: str) -> None:
        """Send what piled up, each chunk until acknowledged; after `finish`, until the queue
        is empty or the time given is over."""
        q = self.queues[path]
        # A tool posting batches gathers a quarter of a second of events; a producer sends at once.
        gather = 0.25 if path == "http" else 0.0
        while True:
            if gather:
                time.sleep(gather)
            chunk = _take(q, MAX_CHUNK, wait=0.2)
            if not chunk:
                if self._generated.is_set():
                    return
                continue
            if not self._deliver(path, chunk):
                self.unacked[path] = sum(not is_poison(m) for m in chunk) + _drop_all(q)
                return

    def _deliver(self, path: str, chunk: Sequence[Emitted]) -> bool:
        """Send `chunk` again and again until acknowledged (True), or given up (False)."""
        while not self._send(path, chunk):
            self.resent[path] += len(chunk)
            if time.monotonic() > self._give_up_at:
                return False
        self.acked[path] += sum(not is_poison(m) for m in chunk)
        return True

    def _send(self, path: str, chunk: Sequence[Emitted]) -> bool:
        if path == "kafka":
            return self.kafka.send(chunk)
        return self.http.send([event for _, _, event in chunk])


def _take(q: queue.SimpleQueue[Emitted], limit: int, wait: float) -> list[Emitted]:
    """Up to `limit` items: the first waited for up to `wait` s, the rest as they are."""
    try:
        items = [q.get(timeout=wait)]
    except queue.Empty:
        return []
    while len(items) < limit:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            break
    return items


def _drop_all(q: queue.SimpleQueue[Emitted]) -> int:
    """Empty the queue; how many events (poison aside) it held."""
    dropped = 0
    while True:
        try:
            dropped += not is_poison(q.get_nowait())
        except queue.Empty:
            return dropped


def read_paths(day0: datetime, seed: int) -> list[str]:
    """What the readers ask in turn: indicator series grouped by a dimension (a stored grouping
    and one computed at query time), open tickets of a service or a group, `/metrics`."""
    w = world(seed)
    week = day0 - timedelta(days=6)

    def series(indicator: str, window: str, start: datetime, group_by: str) -> str:
        query = {"window": window, "start": start.isoformat(), "group_by": group_by}
        return f"/v1/indicators/{indicator}?{urlencode(query)}"

    def tickets(**query: str) -> str:
        return f"/v1/tickets?{urlencode({'state': 'open', **query})}"

    return [
        series("ticket_opened_count", "hour", day0, "service"),
        tickets(service=w.services[0]),
        series("incident_response_time_seconds", "day", week, "priority"),
        tickets(service=w.services[1]),
        series("incident_backlog_count", "day", week, "assignment_group"),
        tickets(assignment_group=w.groups[0]),
        series("service_availability_ratio", "day", week, "service"),
        tickets(service=w.services[2]),
        series("incident_sla_resolution_met_ratio", "day", week, "service,priority"),
        tickets(assignment_group=w.groups[1]),
        "/metrics",
    ]
