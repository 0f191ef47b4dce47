"""Collectors join and leave one consumer group while events flow and batches are in flight:
every rebalance takes partitions from one collector and gives them to another, and at the end
every event is stored exactly once, every projection is whole, and no collector crashed."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from sqlalchemy.engine import Engine

from services.local.engines import free_port
from shared.settings import Settings
from tests.conftest import wait_until
from tests.e2e.conftest import spawn, stop
from tests.helpers import collector_env, collector_events, counts, ticket_event, utc

pytestmark = pytest.mark.e2e

MAX_TICKETS = 20_000  # the flow runs until the collectors have come and gone (~20 s)


class Producer(threading.Thread):
    """Produces tickets until stopped (or `limit`), `per_second` a second: each ticket's
    creation to the tickets topic and its resolution to another topic (a type arriving on
    another topic is accepted, SPEC §3), so the same entity is folded from two topics by
    whichever collectors own those partitions at the moment."""

    def __init__(self, settings: Settings, first: int, per_second: float, limit: int) -> None:
        super().__init__(daemon=True)
        self.settings, self.next, self.per_second, self.limit = settings, first, per_second, limit
        self.acked = 0  # counted by acks, never by end offsets (Tansu answers those wrongly)
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        s = self.settings
        producer = KafkaProducer(bootstrap_servers=s.require_kafka(), acks="all", linger_ms=5)
        other = [t for t in s.event_topics if t != s.topic("tickets")]
        chunk = 20
        try:
            while not self.done.is_set() and self.next < self.limit:
                futures = []
                for i in range(self.next, min(self.next + chunk, self.limit)):
                    tid = f"R{i:05d}"
                    created = ticket_event(tid, utc(2026, 10, 5, 9), "new")
                    resolved = ticket_event(tid, utc(2026, 10, 5, 10), "resolved")
                    elsewhere = other[i % len(other)]
                    for topic, ev in ((s.topic("tickets"), created), (elsewhere, resolved)):
                        value = json.dumps(ev).encode()
                        futures.append(producer.send(topic, key=tid.encode(), value=value))
                producer.flush()
                for f in futures:
                    f.get(timeout=30)
                self.acked += len(futures)
                self.next += len(futures) // 2
                self.done.wait(chunk / self.per_second)
        except BaseException as err:
            self.error = err
        finally:
            producer.close()


def test_collectors_joining_and_leaving_mid_stream_store_every_event_once(
    collector_settings: Settings, collector_engine: Engine, tmp_path: Path
) -> None:
    procs: dict[str, Any] = {}
    ports: dict[str, int] = {}
    logs: dict[str, Path] = {}

    def start(name: str) -> None:
        ports[name], logs[name] = free_port(), tmp_path / f"{name}.log"
        env = collector_env(collector_settings, ITSM_COLLECTOR_METRICS_PORT=str(ports[name]))
        procs[name] = spawn(["collector"], env, logs[name])

    def tails() -> str:
        return "\n".join(f"--- {n}\n{p.read_text()[-1500:]}" for n, p in logs.items())

    def consuming(name: str) -> None:
        # Stopping a collector during its first group join can leave Tansu's group unable to
        # assign for minutes: each one is stopped only after it has stored events.
        wait_until(
            lambda: procs[name].poll() is None and collector_events(ports[name]) > 0,
            timeout=60,
            what=f"collector {name} storing events",
            diagnostics=tails,
        )

    first = Producer(collector_settings, 0, per_second=10_000, limit=100)
    first.run()  # something for the first collector to consume at once
    assert first.error is None
    flow = Producer(collector_settings, 100, per_second=150, limit=MAX_TICKETS)
    codes: dict[str, int | None] = {}
    try:
        start("a")
        consuming("a")
        flow.start()
        start("b")  # joins: a's partitions are revoked while its batches are in flight
        consuming("b")
        start("c")
        consuming("c")
        codes["a"] = stop(procs["a"])  # leaves: its partitions go to b and c
        flow.done.wait(2)  # events keep coming while b and c take a's partitions over
        flow.done.set()
        flow.join(30)
        assert not flow.is_alive() and flow.error is None, flow.error
        tickets = flow.next
        sent = first.acked + flow.acked
        assert sent == 2 * tickets
        wait_until(
            lambda: counts(collector_engine)["events"] == sent,
            timeout=60,
            what="every event stored",
            diagnostics=tails,
        )
        # each ticket whole, though its two events came from two topics: created and resolved
        assert counts(collector_engine) == {
            "events": sent,
            "tickets": tickets,
            "projected": sent,
            "resolved": tickets,
        }
    finally:
        flow.done.set()
        for name, proc in procs.items():
            codes.setdefault(name, stop(proc))
    assert codes == {"a": 0, "b": 0, "c": 0}, tails()
    said = tails()
    assert said.count("partitions revoked") >= 3  # a (twice: b, c joining), b (c joining) …
    # … each rebalance handled without an error, a crash or a new consumer (a new member would
    # start one more rebalance). kafka-python may log a socket it closes at the stop with a
    # traceback of its own (kafka.net): only the collector's own errors count.
    ours = [line for line in said.splitlines() if " ERROR itsm." in line]
    assert ours == [] and "retrying after error" not in said, said
