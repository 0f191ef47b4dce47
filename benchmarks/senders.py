"""Two ITSM tools sending events as a careful client does, for runs with faults (tests/faults,
the soak): a Kafka producer and an HTTP client of `POST /v1/events`. `send(chunk)` is True once
every event of the chunk is acknowledged; on False the caller sends the same chunk again, so an
event is never given up, and may arrive twice (the collector dedupes by source and id)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import httpx
from kafka import KafkaProducer
from kafka.errors import KafkaError

from shared.settings import Settings

Event = dict[str, Any]
Message = tuple[str, str, Event]  # (topic suffix, key, event): the key is the entity's id


class KafkaSender:
    """Produces to the topics, keyed by entity, acks=all; a chunk whose acknowledgement failed
    or timed out (a hung broker) is reported unsent after a pause."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.failures = 0  # chunks not acknowledged
        self.producer = KafkaProducer(
            bootstrap_servers=settings.require_kafka(),
            acks="all",
            linger_ms=5,
            request_timeout_ms=10_000,
            max_block_ms=10_000,
        )

    def send(self, chunk: Sequence[Message]) -> bool:
        try:
            futures = [
                self.producer.send(
                    self.settings.topic(suffix), key=key.encode(), value=json.dumps(e).encode()
                )
                for suffix, key, e in chunk
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


class HttpSender:
    """Posts batches to the api. After a 503 it waits as Retry-After says before it reports the
    batch unsent; after a lost connection (an api that died) too, half a second. Every answer
    is counted by status, every connection refused or dropped; a 503 without Retry-After is
    noted. Any other answer (a 5xx other than 503, a 202 that leaves events out) is kept in
    `answers` and not sent again: a valid batch has no other answer."""

    def __init__(self, url: str, token: str) -> None:
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
        self.answers: list[str] = []  # what no valid batch should be answered

    def send(self, chunk: Sequence[Event]) -> bool:
        self.posting_since = time.monotonic()
        try:
            response = self.client.post("/v1/events", content=json.dumps(list(chunk)))
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
        if response.status_code == 503:
            after = response.headers.get("retry-after")
            if after is None:
                self.without_retry_after += 1
            time.sleep(min(float(after or 1), 10))
            return False
        if response.status_code != 202:
            self.answers.append(f"{response.status_code} {response.text[:300]}")
        elif (accepted := response.json()["accepted"]) != [e["id"] for e in chunk]:
            self.answers.append(f"202 accepting {len(accepted)} of {len(chunk)} events")
        return True

    def close(self) -> None:
        self.client.close()
