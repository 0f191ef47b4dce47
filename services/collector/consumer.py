"""The consumer loop: poll a batch, validate, store it in one transaction, publish dead
letters, then commit offsets. Offsets never move before the database commit (SPEC §4), and a
collector never commits offsets of partitions a rebalance took from it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
from kafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    KafkaError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from kafka.structs import OffsetAndMetadata, TopicPartition
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from services.collector.metrics import CollectorMetrics
from services.collector.store import BatchResult, DeadLetter, Incoming, store_batch
from shared import faults
from shared.events import InvalidEvent, decode_text, parse_text
from shared.kafka import consumer_config, producer_config
from shared.settings import Settings

log = logging.getLogger("itsm.collector")


class Message(NamedTuple):
    """The part of a Kafka record the collector uses."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def classify(messages: list[Message], max_bytes: int) -> tuple[list[Incoming], list[DeadLetter]]:
    """Split a batch into valid events and dead letters with reasons. Pure."""
    good: list[Incoming] = []
    dead: list[DeadLetter] = []
    for m in messages:
        raw = m.value or b""
        try:
            text = decode_text(raw, max_bytes=max_bytes)
            ev = parse_text(text)
        except InvalidEvent as err:
            dead.append(
                DeadLetter(
                    err.reason,
                    raw,
                    m.topic,
                    m.partition,
                    m.offset,
                    err.source,
                    err.event_id,
                    err.event_type,
                )
            )
            continue
        good.append(Incoming(ev, m.topic, m.partition, m.offset, text))
    return good, dead


@dataclass
class InFlight:
    """A batch being written by the store thread, and the offsets to commit once it is."""

    future: Future[BatchResult]
    offsets: dict[TopicPartition, OffsetAndMetadata]
    size: int
    started: float


# What a commit raises when the group has moved on (a rebalance began, or ended without this
# member): the batch is stored, its records are delivered again from the last commit.
_GROUP_MOVED = (
    CommitFailedError,
    RebalanceInProgressError,
    IllegalGenerationError,
    UnknownMemberIdError,
)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # kafka-python is untyped
    """Tells the collector which partitions a rebalance takes. kafka-python calls it on its IO
    thread while the collector's thread waits in poll(), before the partitions go to another
    member (a commit cannot be made from there: kafka-python's blocking calls refuse its IO
    thread)."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.collector.partitions_revoked(revoked)

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"partitions": _names(assigned)})


def _names(partitions: set[TopicPartition]) -> str:
    return ",".join(sorted(f"{tp.topic}:{tp.partition}" for tp in partitions))


class Collector:
    """Consumes in batches. While the store thread writes batch N in one transaction, this
    thread polls and validates batch N+1; N's offsets are committed only after its transaction
    (and its dead letters' publication) succeeded."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        metrics: CollectorMetrics | None = None,
        *,
        on_batch: Callable[[BatchResult], None] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = metrics or CollectorMetrics()
        self.stop_event = threading.Event()
        self.on_batch = on_batch
        self.consumer: KafkaConsumer | None = None
        self.producer: KafkaProducer | None = None
        self._in_flight: InFlight | None = None

    def _connect(self) -> None:
        self.consumer = KafkaConsumer(**consumer_config(self.settings))
        self.consumer.subscribe(self.settings.event_topics, listener=_Rebalance(self))
        self.producer = KafkaProducer(**producer_config(self.settings))

    def run(self) -> None:
        """Consume until `stop_event` is set; retry broker and database failures with backoff."""
        backoff = 0.5
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="itsm-store") as writer:
            while not self.stop_event.is_set():
                try:
                    if self.consumer is None:
                        self._connect()
                        log.info(
                            "collector consuming",
                            extra={
                                "topics": ",".join(self.settings.event_topics),
                                "group": self.settings.consumer_group,
                            },
                        )
                    self.poll_once(writer)
                    backoff = 0.5
                except (KafkaError, DBAPIError, OSError) as err:
                    log.warning(
                        "collector retrying after error",
                        extra={"error": str(err).splitlines()[0][:300], "backoff_s": backoff},
                    )
                    # Nothing uncommitted is lost: the new consumer resumes at the last commit.
                    self._in_flight = None
                    self._close()
                    self.stop_event.wait(backoff)
                    backoff = min(backoff * 2, 30.0)
            try:
                self._finish_in_flight()  # stop: the last batch is written, then committed
            except (KafkaError, DBAPIError, OSError) as err:
                log.warning("last batch not committed", extra={"error": str(err)[:300]})
        self._close()
        log.info("collector stopped")

    def poll_once(self, writer: ThreadPoolExecutor, timeout_ms: int = 500) -> None:
        assert self.consumer is not None
        # With a batch in flight, poll briefly: an idle stream then commits it at once.
        polled = self.consumer.poll(
            timeout_ms=50 if self._in_flight else timeout_ms,
            max_records=self.settings.collector_batch_size,
        )
        messages = [
            Message(r.topic, r.partition, r.offset, r.key, r.value)
            for records in polled.values()
            for r in records
        ]
        started = time.perf_counter()
        batch = classify(messages, self.settings.max_event_bytes) if messages else None
        self._finish_in_flight()
        if batch is None:
            self._report_lag()
            return
        offsets = {
            TopicPartition(tp.topic, tp.partition): OffsetAndMetadata(
                records[-1].offset + 1, "", -1
            )
            for tp, records in polled.items()
            if records
        }
        self._in_flight = InFlight(
            writer.submit(self._write, *batch), offsets, len(messages), started
        )

    def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """A rebalance takes these partitions, maybe to another collector that will read them
        from their last committed offsets. The batch in flight is still stored, but its offsets
        of these partitions are never committed: that commit would fail, or, made in the next
        generation, move the new owner's offsets back. Their records are delivered again and
        counted as duplicates (SPEC §3.6); nothing is lost, nothing is counted twice."""
        flight = self._in_flight
        if flight is not None:
            kept = {tp: o for tp, o in flight.offsets.items() if tp not in revoked}
            if len(kept) < len(flight.offsets):
                log.info(
                    "rebalance: the batch in flight will not commit revoked partitions",
                    extra={"partitions": _names(set(flight.offsets) - set(kept))},
                )
            flight.offsets = kept  # one assignment: the collector's thread waits in poll()
        if revoked:  # none at the first join
            log.info("partitions revoked", extra={"partitions": _names(revoked)})

    def _finish_in_flight(self) -> None:
        flight, self._in_flight = self._in_flight, None
        if flight is None:
            return
        result = flight.future.result()  # re-raises the store's error: nothing is committed
        faults.checkpoint("after_db_commit")  # the crash test's window: stored, not committed
        assert self.consumer is not None
        assigned = self.consumer.assignment()
        offsets = {tp: o for tp, o in flight.offsets.items() if tp in assigned}
        try:
            if offsets:
                self.consumer.commit(offsets=offsets)  # only after the transaction committed
        except _GROUP_MOVED as err:
            # A rebalance began since the poll: the next poll joins it; the stored records
            # come again from the last commit, to this collector or another, as duplicates.
            log.info(
                "offsets not committed: the group is rebalancing",
                extra={"error": type(err).__name__, "partitions": _names(set(offsets))},
            )
        finally:
            # the batch is stored whatever becomes of its offsets (a broker timing out just
            # after it thawed raised here, and the soak counted 161 events fewer than stored)
            self._observe(result, flight.size, time.perf_counter() - flight.started)

    def _write(self, good: list[Incoming], dead: list[DeadLetter]) -> BatchResult:
        with self.engine.begin() as conn:
            result = store_batch(conn, good, dead)
        if dead:
            self._publish_dead_letters(dead)
        return result

    def _publish_dead_letters(self, dead: list[DeadLetter]) -> None:
        assert self.producer is not None
        for d in dead:
            headers = [
                ("reason", d.reason.encode()[:1000]),
                ("topic", (d.topic or "").encode()),
                ("partition", str(d.partition).encode()),
                ("offset", str(d.offset).encode()),
            ]
            self.producer.send(self.settings.deadletter_topic, value=d.raw, headers=headers)
            log.warning(
                "dead letter",
                extra={
                    "reason": d.reason[:300],
                    "topic": d.topic,
                    "partition": d.partition,
                    "offset": d.offset,
                    "event_id": d.event_id,
                },
            )
        self.producer.flush(timeout=30)

    def _observe(self, result: BatchResult, size: int, elapsed: float) -> None:
        m = self.metrics
        for outcome, counts in (
            ("stored", result.stored),
            ("duplicate", result.duplicate),
            ("dead_letter", result.dead_letter),
        ):
            for (topic, etype), n in counts.items():
                m.events.labels(topic, etype, outcome).inc(n)
        m.batch_seconds.observe(elapsed)
        m.batch_size.observe(size)
        self._report_lag()
        if self.on_batch:
            self.on_batch(result)
        log.debug(
            "batch stored",
            extra={
                "size": size,
                "stored": sum(result.stored.values()),
                "duplicates": sum(result.duplicate.values()),
                "dead_letters": sum(result.dead_letter.values()),
                "ms": round(elapsed * 1000, 1),
            },
        )

    def _report_lag(self) -> None:
        if self.consumer is None:
            return
        self.metrics.lag.clear()  # partitions revoked by a rebalance must not linger
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is None:
                continue
            lag = max(0, high - self.consumer.position(tp))
            self.metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)

    def _close(self) -> None:
        for client in (self.consumer, self.producer):
            if client is not None:
                try:
                    client.close()
                except Exception:
                    log.debug("error closing kafka client", exc_info=True)
        self.consumer = None
        self.producer = None
