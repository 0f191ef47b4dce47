"""Events that keep flowing while a fault happens: incidents with a realistic life (created,
worked, resolved; some reassigned, some with a knowledge article), sent by a Kafka producer and
by an HTTP client of `POST /v1/events`, each in a thread of its own, each sending what was not
acknowledged again (duplicates are the collector's business: it dedupes by source and id)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from kafka import KafkaProducer
from kafka.errors import KafkaError

from shared.settings import Settings
from tests.helpers import ticket_event

Event = dict[str, Any]
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
    """Sends `events` in chunks of `size`, a pause of `pause` s after each, until every chunk was
    acknowledged or `deadline` s passed. `check()` re-raises what went wrong in the thread."""

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
        pass

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
    """An ITSM tool producing to the topics (keyed by entity, acks=all); a chunk whose
    acknowledgement failed or timed out is produced again."""

    def __init__(self, settings: Settings, events: list[Event], **kw: Any) -> None:
        super().__init__(events, **kw)
        self.name = "kafka load"
        self.settings = settings
        self.failures = 0
        self.producer = KafkaProducer(
            bootstrap_servers=settings.require_kafka(),
            acks="all",
            linger_ms=5,
            request_timeout_ms=10_000,
            max_block_ms=10_000,
        )

    def send(self, chunk: list[Event]) -> bool:
        topic = self.settings.topic("tickets")
        try:
            futures = [
                self.producer.send(
                    topic, key=e["data"]["ticket_id"].encode(), value=json.dumps(e).encode()
                )
                for e in chunk
            ]
            for f in futures:
                f.get(timeout=15)
        except KafkaError:
            self.failures += 1
            time.sleep(0.5)
            return False
        return True

    def close(self) -> None:
        self.producer.close(timeout=5)


class HttpLoad(Load):
    """An ITSM tool posting batches to the api. After a 503 it waits as Retry-After says and
    posts the same batch again; after a lost connection (an api that died) too, every half
    second. Every answer is counted by status, every connection refused or dropped; a 503
    without Retry-After is noted."""

    def __init__(self, url: str, token: str, events: list[Event], **kw: Any) -> None:
        super().__init__(events, **kw)
        self.name = "http load"
        self.client = httpx.Client(
            base_url=url,
            timeout=90,  # longer than the api takes to give up on the broker
            headers={
                "authorization": f"Bearer {token}",
                "content-type": "application/cloudevents-batch+json",
            },
        )
        self.statuses: Counter[int] = Counter()
        self.refused = 0  # connections refused: no api listening
        self.dropped = 0  # requests sent and never answered: the api died handling them
        self.posting_since: float | None = None  # monotonic time the request in flight began
        self.without_retry_after = 0
        self.answers: list[str] = []  # bodies of answers other than 202 and 503

    def send(self, chunk: list[Event]) -> bool:
        self.posting_since = time.monotonic()
        try:
            response = self.client.post("/v1/events", content=json.dumps(chunk))
        except httpx.ConnectError:
            self.refused += 1
            response = None
        except httpx.TransportError:
            self.dropped += 1
            response = None
        finally:
            self.posting_since = None
        if response is None:
            time.sleep(0.5)
            return False
        self.statuses[response.status_code] += 1
        if response.status_code == 202:
            accepted = response.json()["accepted"]
            assert accepted == [e["id"] for e in chunk], "202 for a batch not wholly accepted"
            return True
        if response.status_code == 503:
            after = response.headers.get("retry-after")
            if after is None:
                self.without_retry_after += 1
            time.sleep(min(float(after or 1), 10))
            return False
        # Nothing else is expected of a valid batch: kept for the test's assertion, not retried.
        self.answers.append(f"{response.status_code} {response.text[:300]}")
        return True

    def close(self) -> None:
        self.client.close()
