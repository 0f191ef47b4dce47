"""Technical indicators of SPEC §5.1 on hand-made days of October 2026 (UTC), on real PostgreSQL.
Every expectation is computed by hand in the comment beside it. A day is 86400 s; October is
31 × 86400 = 2678400 s."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from services.aggregator.compute import write_points
from services.aggregator.indicators import get
from services.aggregator.policy import stored_groupings
from services.catalog import apply_catalog
from shared.db import make_engine
from shared.windows import window_start
from tests.conftest import Postgres
from tests.helpers import (
    UTC_TZ,
    aggregate,
    cloud_event,
    october,
    points,
    real_clock,
    store,
    utc,
)

DAY = utc(2026, 10, 5)
NEXT_DAY = utc(2026, 10, 6)
MONTH = utc(2026, 10, 1)
CREATED = utc(2026, 10, 1)
# Everything is deleted or removed by then, so no open interval marks the windows up to now.
GONE = utc(2026, 10, 8)

t = october


ev = cloud_event


def ci(
    ci_id: str, services: list[str], *, at: datetime = CREATED, gone: datetime | None = GONE
) -> list[dict[str, Any]]:
    events = [ev("itsm.config.ci.upserted", at, f"{ci_id}-u", ci_id=ci_id, services=services)]
    if gone is not None:
        events.append(ev("itsm.config.ci.deleted", gone, f"{ci_id}-d", ci_id=ci_id))
    return events


def alert(
    alert_id: str, ci_id: str, start: datetime, end: datetime | None, **data: Any
) -> list[dict[str, Any]]:
    data.setdefault("severity", "critical")
    events = [
        ev(
            "itsm.monitor.alert.firing",
            start,
            f"{alert_id}-f",
            alert_id=alert_id,
            ci_id=ci_id,
            started_at=start.isoformat(),
            **data,
        )
    ]
    if end is not None:
        events.append(
            ev(
                "itsm.monitor.alert.resolved",
                end,
                f"{alert_id}-r",
                alert_id=alert_id,
                ended_at=end.isoformat(),
            )
        )
    return events


def check(check_id: str, ci_id: str, registered: datetime, removed: datetime) -> list[Any]:
    return [
        ev(
            "itsm.monitor.check.registered",
            registered,
            f"{check_id}-r",
            check_id=check_id,
            ci_id=ci_id,
        ),
        ev("itsm.monitor.check.removed", removed, f"{check_id}-x", check_id=check_id),
    ]


def change(
    change_id: str, ci_ids: list[str], start: datetime, end: datetime, *, approved: bool
) -> list[dict[str, Any]]:
    events = [
        ev(
            "itsm.change.requested",
            t(9, day=1),
            f"{change_id}-q",
            change_id=change_id,
            ci_ids=ci_ids,
            planned_start=start.isoformat(),
            planned_end=end.isoformat(),
        )
    ]
    if approved:
        events.append(
            ev("itsm.change.approved", t(12, day=1), f"{change_id}-a", change_id=change_id)
        )
    return events


@pytest.fixture(scope="module")
def day(postgres: Postgres) -> Iterator[Engine]:
    engine = make_engine(postgres.fresh())
    events = [
        # CIs, all in the CMDB from 10-01 to 10-08; c1 belongs to two services, d1 to none;
        # g1 is deleted on 10-05 at 12:00
        *ci("a1", ["erp"]),
        *ci("b1", ["erp"]),
        *ci("c1", ["erp", "email"]),
        *ci("d1", []),
        *ci("e1", ["email"]),
        *ci("f1", ["email"]),
        *ci("g1", ["erp"], gone=t(12)),
        # a1: one outage 10:00–11:00
        *alert("A1", "a1", t(10), t(11), service="erp"),
        # b1: two overlapping outages 10:00–11:00 and 10:30–12:00 (one outage 10:00–12:00); a
        # warning 13:00–15:00 and a critical alert the source flags as no outage 16:00–17:00
        *alert("B1", "b1", t(10), t(11), service="erp"),
        *alert("B2", "b1", t(10, 30), t(12), service="erp"),
        *alert("B3", "b1", t(13), t(15), service="erp", severity="warning"),
        *alert("B4", "b1", t(16), t(17), service="erp", outage=False),
        # c1: outage 03:00–06:00, approved change window 02:00–04:00
        *alert("C1", "c1", t(3), t(6), service="erp"),
        *change("CH1", ["c1"], t(2), t(4), approved=True),
        # d1: the same, but the change was never approved
        *alert("D1", "d1", t(3), t(6)),
        *change("CH2", ["d1"], t(2), t(4), approved=False),
        # e1: outage from 10-05 22:00 to 10-06 02:00
        *alert("E1", "e1", t(22), t(2, day=6), service="email"),
        # f1: two separate outages 01:00–02:00 and 05:00–07:00
        *alert("F1", "f1", t(1), t(2), service="email"),
        *alert("F2", "f1", t(5), t(7), service="email"),
        # checks: K2 removed on 10-05 12:00, K5 on the deleted g1, K6 only from 10-06 01:00
        *check("K1", "a1", CREATED, GONE),
        *check("K2", "b1", CREATED, t(12)),
        *check("K3", "c1", CREATED, GONE),
        *check("K4", "c1", t(9, day=3), GONE),
        *check("K5", "g1", CREATED, GONE),
        *check("K6", "d1", t(1, day=6), GONE),
    ]
    store(engine, events)
    aggregate(engine)
    yield engine
    engine.dispose()


def value(
    engine: Engine, indicator: str, start: datetime = DAY, window: str = "day", /, **dims: str
) -> tuple[float, int]:
    p = points(engine, indicator, window, start, **dims)
    assert p is not None, f"{indicator} {window} {start} {dims} has no point"
    return round(p["value"], 6), p["count"]


@pytest.mark.parametrize(
    ("indicator", "dims", "expected"),
    [
        # a single outage: 1 − 3600 / 86400
        ("ci_availability_ratio", {"ci": "a1"}, (round(1 - 3600 / 86400, 6), 1)),
        # overlapping alerts are one outage 10:00–12:00: 1 − 7200 / 86400 (not 1 − 9000 / 86400);
        # the warning and the outage=false alert do not count
        ("ci_availability_ratio", {"ci": "b1"}, (round(1 - 7200 / 86400, 6), 1)),
        # change window 02:00–04:00 out of both sides: counted 86400 − 7200 = 79200; outage in it
        # 04:00–06:00 = 7200; available 79200 − 7200 = 72000 → 72000 / 79200. c1 has two samples
        # (erp, email), each 72000 / 79200; without the service it is one CI: count 1
        ("ci_availability_ratio", {"ci": "c1"}, (round(72000 / 79200, 6), 1)),
        ("ci_availability_ratio", {"ci": "c1", "service": "email"}, (round(72000 / 79200, 6), 1)),
        # an unapproved change excludes nothing: 1 − 10800 / 86400
        ("ci_availability_ratio", {"ci": "d1"}, (0.875, 1)),
        ("ci_availability_ratio", {"ci": "d1", "service": "unknown"}, (0.875, 1)),
        # 22:00–24:00 of the outage is on 10-05: 1 − 7200 / 86400
        ("ci_availability_ratio", {"ci": "e1"}, (round(1 - 7200 / 86400, 6), 1)),
        # 1 − (3600 + 7200) / 86400
        ("ci_availability_ratio", {"ci": "f1"}, (0.875, 1)),
        # g1 existed until 12:00 (deleted in the window: still a CI of the day), no outage
        ("ci_availability_ratio", {"ci": "g1"}, (1.0, 1)),
        # email: c1 72000 / 79200, e1 79200 / 86400, f1 75600 / 86400
        # → (72000 + 79200 + 75600) / (79200 + 86400 + 86400) = 226800 / 252000
        ("ci_availability_ratio", {"service": "email"}, (0.9, 3)),
        # erp: a1 82800, b1 79200, c1 72000, g1 86400 over 86400 × 3 + 79200
        # → 320400 / 338400
        ("ci_availability_ratio", {"service": "erp"}, (round(320400 / 338400, 6), 4)),
        # all 7 CIs, c1 once although it has two (CI, service) samples: Σ available 82800
        # + 79200 + 72000 + 75600 + 79200 + 75600 + 86400 = 550800; Σ counted 6 × 86400 + 79200
        # = 597600 (counting c1 twice would give 622800 / 676800)
        ("ci_availability_ratio", {}, (round(550800 / 597600, 6), 7)),
        # outages starting on 10-05: a1, b1 (once), c1, d1, e1, f1 twice → 7
        ("ci_outage_count", {}, (7.0, 7)),
        ("ci_outage_count", {"ci": "b1"}, (1.0, 1)),
        ("ci_outage_count", {"ci": "f1"}, (2.0, 2)),
        # MTBF: available / outages started: a1 82800 / 1; f1 75600 / 2
        ("ci_mtbf_seconds", {"ci": "a1"}, (82800.0, 1)),
        ("ci_mtbf_seconds", {"ci": "f1"}, (37800.0, 1)),
        # c1: available seconds exclude the change window: 72000 / 1
        ("ci_mtbf_seconds", {"ci": "c1"}, (72000.0, 1)),
        # all 7 CIs (g1 had no outage but its time counts): (82800 + 79200 + 72000 + 75600
        # + 79200 + 75600 + 86400) / 7 outages = 550800 / 7
        ("ci_mtbf_seconds", {}, (round(550800 / 7, 6), 7)),
        # outages ending on 10-05: a1 3600, b1 7200, c1 10800 (the change window is not
        # deducted from a duration), d1 10800, f1 3600 and 7200 → 43200 / 6; e1 ends on 10-06
        ("ci_mttr_seconds", {}, (7200.0, 6)),
        ("ci_mttr_seconds", {"ci": "f1"}, (5400.0, 2)),
        # alerts started on 10-05: A1, B1–B4, C1, D1, E1, F1, F2 → 10, of which one warning
        ("monitor_alerts_count", {}, (10.0, 10)),
        ("monitor_alerts_count", {"severity": "warning"}, (1.0, 1)),
        ("monitor_alerts_count", {"severity": "critical", "service": "erp"}, (5.0, 5)),
        ("monitor_alerts_count", {"service": "unknown"}, (1.0, 1)),
        ("monitor_alerts_count", {"ci": "b1"}, (4.0, 4)),
        # CIs at 10-06 00:00 (g1 deleted): a1 (K1), c1 (K3, K4) covered; b1 (K2 removed), d1 (K6
        # not yet), e1, f1 not: 2 of 6 CIs (c1 once, though in erp and email)
        ("monitoring_coverage_ratio", {}, (round(2 / 6, 6), 6)),
        ("monitoring_coverage_ratio", {"service": "erp"}, (round(2 / 3, 6), 3)),
        ("monitoring_coverage_ratio", {"service": "email"}, (round(1 / 3, 6), 3)),
        ("monitoring_coverage_ratio", {"service": "unknown"}, (0.0, 1)),
        # registered at 10-06 00:00: K1, K3, K4, K5 (its CI is gone, the check is not)
        ("monitoring_checks_count", {}, (4.0, 4)),
        ("monitoring_checks_count", {"ci": "c1"}, (2.0, 2)),
    ],
)
def test_technical_indicator_of_the_day(
    day: Engine, indicator: str, dims: dict[str, str], expected: tuple[float, int]
) -> None:
    assert value(day, indicator, **dims) == expected


def test_outage_spanning_midnight_splits_across_the_two_days(day: Engine) -> None:
    # e1 down 10-05 22:00 → 10-06 02:00: 7200 s on each day
    assert value(day, "ci_availability_ratio", NEXT_DAY, ci="e1") == (
        round(1 - 7200 / 86400, 6),
        1,
    )
    # it starts on 10-05 only, and nothing else starts on 10-06
    assert points(day, "ci_outage_count", "day", NEXT_DAY) is None


def test_mttr_counts_an_outage_on_the_day_it_ends(day: Engine) -> None:
    # e1: 22:00 → 02:00 = 14400 s, ending on 10-06
    assert points(day, "ci_mttr_seconds", "day", DAY, ci="e1") is None
    assert value(day, "ci_mttr_seconds", NEXT_DAY, ci="e1") == (14400.0, 1)


def test_mttr_percentiles_of_the_day(day: Engine) -> None:
    # sorted 3600, 3600, 7200, 7200, 10800, 10800: p50 = 7200; p90 at position 4.5 = 10800
    p = points(day, "ci_mttr_seconds", "day", DAY)
    assert p is not None
    assert (p["p50"], p["p90"]) == (7200.0, 10800.0)


def test_no_mtbf_point_without_an_outage_starting(day: Engine) -> None:
    assert points(day, "ci_mtbf_seconds", "day", DAY, ci="g1") is None


def test_coverage_and_checks_the_day_before(day: Engine) -> None:
    # at 10-05 00:00: g1 still a CI (K5), K2 still covers b1; d1, e1, f1 uncovered:
    # a1, b1, c1, g1 covered of 7 CIs (c1 once, though it has a sample per service)
    assert value(day, "monitoring_coverage_ratio", utc(2026, 10, 4)) == (round(4 / 7, 6), 7)
    assert value(day, "monitoring_coverage_ratio", utc(2026, 10, 4), service="erp") == (1.0, 4)
    assert value(day, "monitoring_checks_count", utc(2026, 10, 4)) == (5.0, 5)


def test_coverage_counts_a_check_registered_during_the_next_day(day: Engine) -> None:
    # at 10-07 00:00: K6 now covers d1 → a1, c1, d1 of the 6 CIs
    assert value(day, "monitoring_coverage_ratio", NEXT_DAY) == (0.5, 6)


@pytest.mark.parametrize(
    ("indicator", "dims", "expected"),
    [
        # a1: 1 − 3600 / 2678400 (the CI is deleted on 10-08, but existed during October)
        ("ci_availability_ratio", {"ci": "a1"}, (round(1 - 3600 / 2678400, 6), 1)),
        # e1's whole outage is in October: 1 − 14400 / 2678400
        ("ci_availability_ratio", {"ci": "e1"}, (round(1 - 14400 / 2678400, 6), 1)),
        # c1: (2678400 − 7200 − 7200) / (2678400 − 7200): one CI, though a sample per service
        ("ci_availability_ratio", {"ci": "c1"}, (round(2664000 / 2671200, 6), 1)),
        # the 7 outages starting on 10-05 are all that start in October
        ("ci_outage_count", {}, (7.0, 7)),
        # ending in October: the 6 of 10-05 (43200) and e1 (14400) → 57600 / 7
        ("ci_mttr_seconds", {}, (round(57600 / 7, 6), 7)),
        ("ci_mttr_seconds", {"ci": "e1"}, (14400.0, 1)),
        # a1: (2678400 − 3600) / 1
        ("ci_mtbf_seconds", {"ci": "a1"}, (2674800.0, 1)),
    ],
)
def test_technical_indicator_of_the_month(
    day: Engine, indicator: str, dims: dict[str, str], expected: tuple[float, int]
) -> None:
    assert value(day, indicator, MONTH, "month", **dims) == expected


def test_ongoing_outage_counts_up_to_now(engine: Engine) -> None:
    """An alert still firing: the current day is measured over its elapsed part, the outage
    has started but not ended, and a window in the future gets no point."""
    before = datetime.now(UTC).replace(microsecond=0)
    started = before - timedelta(minutes=30)
    store(engine, [*ci("x1", ["erp"], at=before - timedelta(hours=3), gone=None)])
    store(engine, alert("X1", "x1", started, None))
    aggregate(engine, clock=real_clock)
    after = datetime.now(UTC)

    today = window_start("day", before, UTC_TZ)
    tomorrow = today + timedelta(days=1)

    def ratio_at(now: datetime) -> float:
        # counted: today's start → now; down: max(start, today's start) → now
        end = min(now, tomorrow)
        return 1 - (end - max(started, today)) / (end - today)

    p = points(engine, "ci_availability_ratio", "day", today, ci="x1")
    assert p is not None
    # the database's now() lies between `before` and `after`; the ratio falls as now grows
    assert ratio_at(after) - 1e-9 <= p["value"] <= ratio_at(before) + 1e-9
    assert p["value"] < 1 - 1800 / 86400 + 1e-9
    assert value(engine, "ci_outage_count", window_start("day", started, UTC_TZ)) == (1.0, 1)
    assert points(engine, "ci_mttr_seconds", "day", today) is None

    with engine.begin() as conn:
        written = sum(
            write_points(
                conn,
                (ind,),
                "day",
                [(tomorrow, tomorrow + timedelta(days=1))],
                stored_groupings(ind, "day"),
                now=after,
            )
            for ind in (get("ci_availability_ratio"), get("ci_mtbf_seconds"))
            if ind is not None
        )
    assert written == 0


CUSTOMERS = """
customers: [{id: acme}, {id: globex}]
services:
  - {id: email, customer: acme}
  - {id: erp, customer: acme}
  - {id: web, customer: globex}
"""


@pytest.fixture(scope="module")
def shared_cis(postgres: Postgres) -> Iterator[Engine]:
    engine = make_engine(postgres.fresh())
    with engine.begin() as conn:
        apply_catalog(conn, CUSTOMERS, "customers.yaml")
    store(
        engine,
        [
            # p serves two services of acme; q one of acme and one of globex; r one of globex
            *ci("p", ["email", "erp"]),
            *ci("q", ["erp", "web"]),
            *ci("r", ["web"]),
            *alert("P1", "p", t(6), t(12)),  # p down 6 h: 64800 of 86400 available
            *alert("R1", "r", t(0), t(12)),  # r down 12 h: 43200 of 86400
            *check("KP", "p", CREATED, GONE),
        ],
    )
    aggregate(engine)
    yield engine
    engine.dispose()


@pytest.mark.parametrize(
    ("indicator", "dims", "expected"),
    [
        # each CI once overall: (64800 + 86400 + 43200) / (3 × 86400); counting each of its
        # (CI, service) samples would give (2 × 64800 + 2 × 86400 + 43200) / (5 × 86400) = 0.8
        ("ci_availability_ratio", {}, (0.75, 3)),
        # per service as sampled: erp has p and q → (64800 + 86400) / (2 × 86400)
        ("ci_availability_ratio", {"service": "erp"}, (0.875, 2)),
        # acme: p once (in email and erp) and q → 151200 / 172800
        ("ci_availability_ratio", {"customer": "acme"}, (0.875, 2)),
        # globex: q (also acme's, counted fully for each customer) and r → 129600 / 172800
        ("ci_availability_ratio", {"customer": "globex"}, (0.75, 2)),
        ("ci_availability_ratio", {"ci": "p"}, (0.75, 1)),
        # coverage at the day's end: only p has a check → 1 of 3 CIs; acme 1 of 2; globex 0
        ("monitoring_coverage_ratio", {}, (round(1 / 3, 6), 3)),
        ("monitoring_coverage_ratio", {"customer": "acme"}, (0.5, 2)),
        ("monitoring_coverage_ratio", {"customer": "globex"}, (0.0, 2)),
        ("monitoring_coverage_ratio", {"service": "email"}, (1.0, 1)),
    ],
)
def test_a_ci_in_several_services_counts_once_in_totals_over_them(
    shared_cis: Engine, indicator: str, dims: dict[str, str], expected: tuple[float, int]
) -> None:
    assert value(shared_cis, indicator, **dims) == expected


@pytest.fixture(scope="module")
def rollups(postgres: Postgres) -> Iterator[Engine]:
    """The per-CI indicators rolled up per service and customer (SPEC §5.1, §6.3)."""
    engine = make_engine(postgres.fresh())
    with engine.begin() as conn:
        apply_catalog(conn, CUSTOMERS, "customers.yaml")
    store(
        engine,
        [
            # p serves email and erp (acme); q erp (acme) and web (globex); r web; z nothing
            *ci("p", ["email", "erp"]),
            *ci("q", ["erp", "web"]),
            *ci("r", ["web"]),
            *ci("z", []),
            *alert("P1", "p", t(6), t(8)),  # 7200 s
            *alert("P2", "p", t(10), t(11)),  # 3600 s
            *alert("Q1", "q", t(0), t(6)),  # 21600 s
            *alert("R1", "r", t(12), t(13)),  # 3600 s
            *alert("Z1", "z", t(1), t(2)),  # 3600 s
            *check("KP1", "p", CREATED, GONE),
            *check("KP2", "p", CREATED, GONE),
            *check("KQ", "q", CREATED, GONE),
            *check("KZ", "z", CREATED, GONE),
            # upserts of existing CIs without an approved change: p at 09:00, r at 14:00
            ev("itsm.config.ci.upserted", t(9), "p-u2", ci_id="p", services=["email", "erp"]),
            ev("itsm.config.ci.upserted", t(14), "r-u2", ci_id="r", services=["web"]),
        ],
    )
    aggregate(engine)
    yield engine
    engine.dispose()


@pytest.mark.parametrize(
    ("indicator", "dims", "expected"),
    [
        # outages starting on 10-05: P1, P2, Q1, R1, Z1. Each once in the total, though p's two
        # and q's one have a sample per service (counting those would give 2×2 + 2 + 1 + 1 = 8)
        ("ci_outage_count", {}, (5.0, 5)),
        ("ci_outage_count", {"ci": "p"}, (2.0, 2)),
        # per service as sampled: erp P1, P2, Q1; email P1, P2; web Q1, R1; unknown Z1
        ("ci_outage_count", {"service": "erp"}, (3.0, 3)),
        ("ci_outage_count", {"service": "email"}, (2.0, 2)),
        ("ci_outage_count", {"service": "web"}, (2.0, 2)),
        ("ci_outage_count", {"service": "unknown"}, (1.0, 1)),
        # acme (email, erp): P1, P2 once each, not once per service, and Q1 → 3
        ("ci_outage_count", {"customer": "acme"}, (3.0, 3)),
        # globex (web): Q1 (also acme's: each customer counts it) and R1
        ("ci_outage_count", {"customer": "globex"}, (2.0, 2)),
        ("ci_outage_count", {"customer": "unknown"}, (1.0, 1)),
        # durations ending on 10-05: (7200 + 3600 + 21600 + 3600 + 3600) / 5 = 39600 / 5
        ("ci_mttr_seconds", {}, (7920.0, 5)),
        # erp and acme: P1, P2, Q1 → 32400 / 3; globex: Q1, R1 → 25200 / 2
        ("ci_mttr_seconds", {"service": "erp"}, (10800.0, 3)),
        ("ci_mttr_seconds", {"customer": "acme"}, (10800.0, 3)),
        ("ci_mttr_seconds", {"customer": "globex"}, (12600.0, 2)),
        # available / outages started: p 86400 − 10800 = 75600 over 2, q 64800 over 1, r and z
        # 82800 over 1. All: (75600 + 64800 + 82800 + 82800) / 5 = 306000 / 5 over 4 CIs
        ("ci_mtbf_seconds", {}, (61200.0, 4)),
        # erp (p, q) and acme (p once, q): 140400 / 3; globex (q, r): 147600 / 2; email p alone
        ("ci_mtbf_seconds", {"service": "erp"}, (46800.0, 2)),
        ("ci_mtbf_seconds", {"customer": "acme"}, (46800.0, 2)),
        ("ci_mtbf_seconds", {"customer": "globex"}, (73800.0, 2)),
        ("ci_mtbf_seconds", {"service": "email"}, (37800.0, 1)),
        # registered at 10-06 00:00: KP1, KP2 (p), KQ (q), KZ (z); each once in the total
        ("monitoring_checks_count", {}, (4.0, 4)),
        ("monitoring_checks_count", {"service": "erp"}, (3.0, 3)),
        ("monitoring_checks_count", {"service": "email"}, (2.0, 2)),
        ("monitoring_checks_count", {"customer": "acme"}, (3.0, 3)),
        ("monitoring_checks_count", {"customer": "globex"}, (1.0, 1)),
        ("monitoring_checks_count", {"service": "unknown"}, (1.0, 1)),
        # unauthorised upserts on 10-05: p's (email, erp: acme once) and r's (web: globex)
        ("change_unauthorized_count", {}, (2.0, 2)),
        ("change_unauthorized_count", {"service": "email"}, (1.0, 1)),
        ("change_unauthorized_count", {"service": "erp"}, (1.0, 1)),
        ("change_unauthorized_count", {"customer": "acme"}, (1.0, 1)),
        ("change_unauthorized_count", {"customer": "globex"}, (1.0, 1)),
    ],
)
def test_technical_indicators_roll_up_per_service_and_customer(
    rollups: Engine, indicator: str, dims: dict[str, str], expected: tuple[float, int]
) -> None:
    assert value(rollups, indicator, **dims) == expected


def test_mttr_percentiles_count_each_outage_once(rollups: Engine) -> None:
    # all: sorted 3600, 3600, 3600, 7200, 21600 (P1, P2 once though p is in two services):
    # p50 = 3600; p90 at position 0.9 × 4 = 3.6 → 7200 + 0.6 × (21600 − 7200) = 15840
    p = points(rollups, "ci_mttr_seconds", "day", DAY)
    assert p is not None
    assert (p["p50"], p["p90"]) == (3600.0, pytest.approx(15840.0))
    # acme: 3600, 7200, 21600 → p50 7200, p90 at 1.8 → 7200 + 0.8 × 14400 = 18720
    p = points(rollups, "ci_mttr_seconds", "day", DAY, customer="acme")
    assert p is not None
    assert (p["p50"], p["p90"]) == (7200.0, pytest.approx(18720.0))


def test_rollups_of_the_month_add_up_their_days(rollups: Engine) -> None:
    # nothing else happens in October: the month's points are the day's
    assert value(rollups, "ci_outage_count", MONTH, "month", customer="acme") == (3.0, 3)
    assert value(rollups, "ci_outage_count", MONTH, "month") == (5.0, 5)
    assert value(rollups, "change_unauthorized_count", MONTH, "month", service="web") == (1.0, 1)
