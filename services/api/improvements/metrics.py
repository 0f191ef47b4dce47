"""`itsm_improvements{state,service}` on the api's /metrics (SPEC §8): counts only, never titles
or owners. One grouped count per scrape, cheap at a register's size; when the database cannot
answer the series is absent, never zeros."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from services.api.improvements import service

log = logging.getLogger("itsm.improvements")
NAME = "itsm_improvements"
HELP = 'Improvements per state and service (customer- and organisation-wide ones: service "")'


class ImprovementCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(NAME, HELP, labels=["state", "service"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with self.engine.connect() as conn:
                rows = service.counts(conn)
        except SQLAlchemyError as err:
            log.warning("improvement counts unavailable", extra={"error": str(err)[:300]})
            return
        family = GaugeMetricFamily(NAME, HELP, labels=["state", "service"])
        for state, svc, n in rows:
            family.add_metric([state, svc], n)
        yield family
