"""The collector's operational metrics (SPEC §8)."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram


class CollectorMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.events = Counter(
            "itsm_collector_events",
            "Events consumed, by topic, type and outcome (stored, duplicate, dead_letter)",
            ["topic", "type", "outcome"],
            registry=registry,
        )
        self.lag = Gauge(
            "itsm_collector_consumer_lag",
            "Messages behind the partition's high watermark",
            ["topic", "partition"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "itsm_collector_batch_seconds",
            "Time to validate, store and commit one batch",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.batch_size = Histogram(
            "itsm_collector_batch_size",
            "Messages per consumed batch",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
            registry=registry,
        )
