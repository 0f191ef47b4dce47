"""Events that keep flowing while a fault happens: incidents with a realistic life (created,
worked, resolved; some reassigned, some with a knowledge article), sent by a Kafka producer and
by an HTTP client of `POST /v1/events` (benchmarks/senders.py), each in a thread of its own, each
sending what was not acknowledged again (duplicates are the collector's business: it dedupes by
source and id)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.senders import Event, HttpSender, KafkaSender
from shared.settings import Settings
from tests.helpers import ticket_event

GROUPS = ("service-desk", "network", "applications")
SERVICES = ("email", "erp", "vpn")
CHANNELS = ("phone", "email", "portal")
SPACING = timedelta(seconds=37)  # between two incidents' openings


def incidents(run: str, n: int, base: datetime) -> list[Event]:
    """`n` incidents opened from `base` on, one every 37 s, three events each in entity order:
    created, in progress (every fifth one reassigned to another group), resolved 20 to 109
    minutes after opening (every fourth with a knowledge article). Ids are unique to `run`."""
    source = f"faults://{run}"
    events: list[Event] = []
    for i in range(n):
        tid = f"{run}-{i:05d}"
        opened = base + i * SPACING
        group = GROUPS[i % 3]
        events += [
            ticket_event(
                tid,
                opened,
                "new",
                event_id=f"{tid}-1",
                source=source,
                kind="incident",
                priority=1 + i % 4,
                service=SERVICES[i % 3],
                channel=CHANNELS[i % 3],
                assignment_group=group,
            ),
            ticket_event(
                tid,
                opened + timedelta(minutes=5),
                "in_progress",
                event_id=f"{tid}-2",
                source=source,
                assignment_group=GROUPS[(i + 1) % 3] if i % 5 == 0 else group,
                assignee=f"agent-{i % 7}",
            ),
            ticket_event(
                tid,
                opened + timedelta(minutes=20 + i % 90),
                "resolved",
                event_id=f"{tid}-3",
                source=source,
                knowledge_article_ids=[f"KB{i % 11}"] if i % 4 == 0 else [],
            ),
        ]
    return events


def history_start(n: int, now: datetime | None = None) -> datetime:
    """Where `incidents(…, n, base)` may start so that all of them are resolved well before
    `now` (whole hours, a day back at least): their windows are past and nothing in them
    depends on the clock."""
    now = now or datetime.now(UTC)
    span = n * SPACING + timedelta(hours=2)
    return (now - span - timedelta(hours=24)).replace(minute=0, second=0, microsecond=0)


def keys(events: list[Event]) -> set[tuple[str, str]]:
    """The dedup keys (source, id) of events (SPEC §3)."""
    return {(e["source"], e["id"]) for e in events}


def _chunks(events: list[Event], size: int) -> Iterator[list[Event]]:
    for i in range(0, len(events), size):
        yield events[i : i + size]


class Load(threading.Thread):
    """Sends `events` in chunks of `size`, a pause of `pause` s after each, each chunk again until
    acknowledged, until every chunk was or `deadline` s passed. `check()` re-raises what went
    wrong in the thread."""

    def __init__(self, events: list[Event], size: int, pause: float, deadline: float) -> None:
        super().__init__(daemon=True)
        self.events = events
        self.size = size
        self.pause = pause
        self.deadline = time.monotonic() + deadline
        self.acked = 0  # chunks acknowledged
        self.error: BaseException | None = None

    @property
    def chunks(self) -> int:
        return -(-len(self.events) // self.size)

    def run(self) -> None:
        try:
            for chunk in _chunks(self.events, self.size):
                while not self.send(chunk):
                    if time.monotonic() > self.deadline:
                        raise TimeoutError(f"{self.name}: a chunk still not acknowledged")
                self.acked += 1
                time.sleep(self.pause)
        except BaseException as err:  # reported by check() in the test's thread
            self.error = err
        finally:
            self.close()

    def send(self, chunk: list[Event]) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def progress(self) -> float:
        return self.acked / self.chunks

    def finish(self, timeout: float) -> None:
        self.join(timeout)
        assert not self.is_alive(), f"{self.name} still sending after {timeout:.0f} s"
        self.check()

    def check(self) -> None:
        if self.error is not None:
            raise AssertionError(f"{self.name} failed: {self.error!r}") from self.error


class KafkaLoad(Load):
    """An ITSM tool producing the incidents to the tickets topic, keyed by ticket."""

    def __init__(self, settings: Settings, events: list[Event], **kw: Any) -> None:
        super().__init__(events, **kw)
        self.sender = KafkaSender(settings)
        self.name = "kafka load"

    def send(self, chunk: list[Event]) -> bool:
        return self.sender.send([("tickets", e["data"]["ticket_id"], e) for e in chunk])

    def close(self) -> None:
        self.sender.close()


class HttpLoad(Load):
    """An ITSM tool posting the incidents to the api in batches (`sender` counts the answers)."""

    def __init__(self, url: str, token: str, events: list[Event], **kw: Any) -> None:
        super().__init__(events, **kw)
        self.sender = HttpSender(url, token)
        self.name = "http load"

    def send(self, chunk: list[Event]) -> bool:
        return self.sender.send(chunk)

    def close(self) -> None:
        self.sender.close()
