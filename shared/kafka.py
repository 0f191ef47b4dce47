"""Kafka client configuration in one place (consumer group timings, producer acks, topics)."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson
from kafka import KafkaProducer
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from kafka.errors import KafkaError

from shared import faults
from shared.errors import BrokerUnavailable
from shared.events import DEPTH_REASON, InvalidEvent, validate_event
from shared.settings import Settings

log = logging.getLogger(__name__)

# kafka-python's first group join against Tansu takes ~23 s with the defaults and ~3 s with these.
CONSUMER_TIMINGS: dict[str, Any] = {
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 1000,
}


def bootstrap_list(servers: str) -> list[str]:
    return [s.strip() for s in servers.split(",") if s.strip()]


# The most one ingest request takes (POST /v1/events, SPEC §7.1): the api refuses more with 413,
# and `itsm-metrics replay --via http` sizes its batches by them.
MAX_BATCH = 10_000
MAX_BODY = 64 * 1024 * 1024


class Message(NamedTuple):
    """An event as it is produced: its topic, its key (the entity id) and its bytes."""

    topic: str
    key: str
    value: bytes
    event_id: str


class EventTooLarge(InvalidEvent):
    """An event over the size limit (the api answers a single one with 413)."""


def event_message(obj: Any, *, topic_for: Callable[[str], str], max_bytes: int) -> Message:
    """A decoded CloudEvent → the message that carries it (SPEC §3: the topic of its type, keyed
    by its entity id), or InvalidEvent saying why it is refused. The one mapping from an event to
    a topic and a key, for `POST /v1/events` and `itsm-metrics replay`."""
    try:
        raw = orjson.dumps(obj)
    except orjson.JSONEncodeError:  # nested deeper than orjson writes (254 levels)
        raise InvalidEvent(DEPTH_REASON) from None
    if len(raw) > max_bytes:
        raise EventTooLarge(f"event is {len(raw)} bytes, over the {max_bytes}-byte limit")
    ev = validate_event(obj)
    return Message(topic_for(ev.topic_suffix), ev.entity_id, raw, ev.id)


def producer_config(settings: Settings) -> dict[str, Any]:
    return {
        "bootstrap_servers": bootstrap_list(settings.require_kafka()),
        "acks": "all",
        "linger_ms": 5,
        "retries": 5,
        "max_request_size": max(settings.max_event_bytes * 4, 1_048_576),
        "client_id": "itsm-metrics",
    }


def consumer_config(settings: Settings, *, group_id: str | None = None) -> dict[str, Any]:
    return {
        "bootstrap_servers": bootstrap_list(settings.require_kafka()),
        "group_id": group_id or settings.consumer_group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": settings.collector_batch_size,
        "fetch_max_bytes": 16 * 1024 * 1024,
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
        "client_id": "itsm-collector",
        # Round robin over all subscribed partitions: the default (range, per topic) gives the
        # first of two collectors two of each topic's three partitions, the second one.
        "partition_assignment_strategy": (RoundRobinPartitionAssignor,),
        **CONSUMER_TIMINGS,
    }


def check_reachable(servers: str, timeout: float = 2.0) -> None:
    """Raise BrokerUnavailable unless at least one bootstrap server accepts a TCP connection."""
    errors = []
    for server in bootstrap_list(servers):
        host, _, port = server.rpartition(":")
        try:
            socket.create_connection((host or "localhost", int(port)), timeout=timeout).close()
            return
        except (OSError, ValueError) as err:
            errors.append(f"{server}: {err}")
    raise BrokerUnavailable(
        f"Kafka broker unreachable ({'; '.join(errors)}): "
        "check ITSM_KAFKA_BOOTSTRAP_SERVERS and that the broker is running"
    )


def ensure_topics(settings: Settings) -> list[str]:
    """Create missing topics (events + dead letters); returns the ones created."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    servers = settings.require_kafka()
    check_reachable(servers)
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap_list(servers), client_id="itsm-admin")
    except KafkaError as err:
        raise BrokerUnavailable(f"Kafka broker at {servers} did not answer: {err}") from None
    try:
        existing = set(admin.list_topics())
        wanted = [*settings.event_topics, settings.deadletter_topic]
        missing = [t for t in wanted if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                admin.create_topics(
                    [NewTopic(t, settings.topic_partitions, 1) for t in missing],
                    validate_only=False,
                )
            log.info("created topics", extra={"topics": ",".join(missing)})
        return missing
    finally:
        admin.close()


class Publisher:
    """A lazily connected, thread-safe Kafka producer: the api's request handlers share one;
    `itsm-metrics replay` uses one too."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def producer(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                try:
                    self._producer = KafkaProducer(
                        **producer_config(self.settings), max_block_ms=10_000
                    )
                except KafkaError as err:
                    raise BrokerUnavailable(f"Kafka broker unavailable: {err}") from None
            return self._producer

    def publish(self, messages: list[tuple[str, str, bytes]]) -> None:
        """Send (topic, key, value) messages and wait until every one is acknowledged."""
        producer = self.producer()
        try:
            futures = [producer.send(t, key=k.encode(), value=v) for t, k, v in messages]
            timeout = self.settings.ingest_ack_timeout_seconds
            producer.flush(timeout=timeout)
            for f in futures:
                f.get(timeout=timeout)
        except KafkaError as err:
            raise BrokerUnavailable(f"could not produce to Kafka: {err}") from None
        faults.checkpoint("after_produce")  # the api crash test's window: produced, not answered

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None
