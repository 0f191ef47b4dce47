"""The seeded world of the realistic benchmark data: who the customers are, which services,
groups, engineers and configuration items exist, the distributions every ticket, change, alert
and call is drawn from, and the arrival seasonality. The event generators
(`realistic_events`) and the SQL loader (`realistic_sql`) both read their facts from here, so
the two produce the same distributions."""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import yaml

# --- cardinalities --------------------------------------------------------------------------------
N_CUSTOMERS = 15
N_SERVICES = 200
N_GROUPS = 60
N_ENGINEERS = 400
N_ARTICLES = 1_500
# CI layers in index order (1-based, contiguous): an id is `<prefix>-<index:05d>`, so SQL can
# spell any CI's id from its index. A CI depends only on CIs of lower layers (a DAG, at most
# three levels deep: app → db/mw → srv → net/san).
CI_LAYERS: tuple[tuple[str, str, int, int], ...] = (
    # prefix, ci_type, layer, count
    ("net", "network", 0, 250),
    ("san", "storage", 0, 250),
    ("srv", "server", 1, 2000),
    ("db", "database", 2, 600),
    ("mw", "middleware", 2, 400),
    ("app", "application", 3, 1500),
)
N_CIS = sum(layer[3] for layer in CI_LAYERS)
CI_SECOND_SERVICE = 0.30  # CIs shared by a second service
CI_CRITICAL = 0.08

TIMEZONE = "Europe/Berlin"  # the company's: business hours, the catalog's reporting zone

# --- ticket distributions (SPEC §3.1) ------------------------------------------------
KIND_WEIGHTS = {"incident": 70.0, "service_request": 27.0, "problem": 3.0}
PRIORITY_WEIGHTS = {1: 2.0, 2: 10.0, 3: 50.0, 4: 38.0}
CHANNEL_WEIGHTS = {
    "portal": 32.0,
    "email": 24.0,
    "phone": 20.0,
    "monitoring": 12.0,
    "chat": 8.0,
    "walk_in": 2.0,
    "other": 2.0,
}
# ITIL priority matrix: the (impact, urgency) pairs of each priority, one drawn uniformly.
IMPACT_URGENCY = {
    1: ((1, 1),),
    2: ((1, 2), (2, 1)),
    3: ((2, 2), (1, 3), (3, 1)),
    4: ((2, 3), (3, 2), (3, 3)),
}
CI_COUNT_WEIGHTS = {0: 15.0, 1: 75.0, 2: 10.0}  # affected CIs per ticket, from its service

QUICK_FIX = 0.18  # non-problem tickets the desk resolves at first contact (minutes, no handover)
QUICK_RESPONSE_S = (60, 300)  # uniform
QUICK_WORK_S = (120, 1200)  # uniform
RESPONSE_MEDIAN_S = {1: 240, 2: 720, 3: 2100, 4: 3600}  # lognormal: opened → responded
RESPONSE_SIGMA = 0.9
WORK_MEDIAN_S = {1: 2 * 3600, 2: 6 * 3600, 3: 20 * 3600, 4: 40 * 3600}  # responded → resolved
# A long tail: a P3 takes 20 h at the median, 8 days at the 95th percentile; ~8 % of a month's
# tickets are still open at its end.
WORK_SIGMA = 1.4
KIND_WORK_FACTOR = {"incident": 1.0, "service_request": 1.5, "problem": 10.0}
WORK_BOUNDS_S = (300, 45 * 86400)
# Shares of all tickets; quick fixes are never reassigned, paused or cancelled, so the others
# are drawn with these divided by the non-quick share (NON_QUICK).
REASSIGNED = 0.15
PENDING = 0.10
CANCELLED = 0.015
NON_QUICK = 1 - QUICK_FIX * (1 - KIND_WEIGHTS["problem"] / sum(KIND_WEIGHTS.values()))
# Where in the work the events fall, as fractions of responded → resolved.
REASSIGN_AT, PENDING_FROM, PENDING_TO = 0.15, 0.35, 0.70
REOPENED = 0.03  # of resolved tickets
REOPEN_AFTER_MEDIAN_S, REOPEN_AFTER_SIGMA = 20 * 3600, 0.8
REWORK_MEDIAN_S, REWORK_SIGMA = 4 * 3600, 1.0
CONFIRMED = 0.30  # closed by the caller's confirmation; the others auto-close after 72 h
CONFIRM_MEDIAN_S, CONFIRM_SIGMA = 4 * 3600, 1.0
AUTO_CLOSE_S = 72 * 3600
MAJOR = {1: 0.35, 2: 0.02}  # incidents of that priority declared major
PROBLEM_LINKED = 0.06  # incidents linked to a problem ticket
CAUSED_BY_CHANGE = 0.015  # incidents caused by a change
KNOWLEDGE_USED = 0.30  # resolved tickets (not problems) that used an article ...
SECOND_ARTICLE = 0.20  # ... of which used two
ARTICLE_UPDATED = 0.10  # articles updated in the month

# --- changes (SPEC §3.2) -------------------------------------------------------------------------
CHANGES_PER_TICKET = 1 / 40
CHANGE_TYPE_WEIGHTS = {"standard": 55.0, "normal": 40.0, "emergency": 5.0}
RISK_WEIGHTS = {"low": 50.0, "medium": 40.0, "high": 10.0}
CHANGE_CI_WEIGHTS = {1: 60.0, 2: 30.0, 3: 10.0}
APPROVAL_MEDIAN_S = {"standard": 60, "normal": 2 * 86400, "emergency": 1800}
APPROVAL_SIGMA = 0.7
LEAD_MEDIAN_S = {"standard": 86400, "normal": 5 * 86400, "emergency": 3600}  # approved → start
LEAD_SIGMA = 0.6
CHANGE_DURATION_MEDIAN_S, CHANGE_DURATION_SIGMA = 2 * 3600, 0.6
REJECTED = 0.04  # of normal changes
OUTCOME_WEIGHTS = {
    "successful": 90.0,
    "failed": 4.0,
    "rolled_back": 4.0,
    "partially_successful": 2.0,
}
IN_RELEASE = 0.15  # of normal changes
CHANGE_CLOSE_S = 86400

# --- monitoring (SPEC §3.4) ----------------------------------------------------------------------
ALERTS_PER_TICKET = 1 / 4
SEVERITY_WEIGHTS = {"critical": 15.0, "warning": 55.0, "info": 30.0}
ALERT_MEDIAN_S = {"critical": 12 * 60, "warning": 25 * 60, "info": 40 * 60}
ALERT_SIGMA = 1.3
ALERT_MAX_S = 3 * 86400
CHECKS = ("ping", "cpu_high", "disk_full", "memory_high", "http_5xx", "latency_high", "log_errors")
CHECKED_CIS = 0.85  # CIs with registered checks (monitoring coverage)

# --- service desk and feedback (SPEC §3.5) -----------------------------------------------------
ANSWERED = 0.92  # of calls
LOGGED = 0.70  # of answered calls, logged as a ticket (the phone-channel tickets)
WAIT_MEDIAN_S, WAIT_SIGMA = 35, 0.8
ABANDON_WAIT_MEDIAN_S = 90
HANDLE_MEDIAN_S, HANDLE_SIGMA = 360, 0.6
SURVEYED = 0.08  # of resolved tickets
SURVEY_AFTER_MEDIAN_S, SURVEY_AFTER_SIGMA = 3 * 3600, 1.0
SCORE_WEIGHTS = {1: 7.0, 2: 6.0, 3: 12.0, 4: 30.0, 5: 45.0}

# --- seasonality: arrivals per local hour and weekday -------------------------------------------
HOUR_WEIGHTS = (
    0.08, 0.06, 0.05, 0.05, 0.06, 0.10,  # 00–06: nights are quiet
    0.25, 0.60, 1.00, 1.25, 1.20, 1.10,  # 06–12: the morning peak
    0.75, 1.00, 1.05, 0.95, 0.80, 0.55,  # 12–18: lunch dip, afternoon
    0.35, 0.25, 0.18, 0.14, 0.11, 0.09,  # 18–24
)  # fmt: skip
WEEKDAY_WEIGHTS = (1.15, 1.05, 1.0, 1.0, 0.85, 0.27, 0.23)  # Mon … Sun: weekends ≈ 25 %
HOLIDAY_WEIGHT = 0.25  # a public holiday is like a weekend day
HOLIDAYS = (
    date(2026, 1, 1), date(2026, 4, 3), date(2026, 4, 6), date(2026, 5, 1), date(2026, 5, 14),
    date(2026, 5, 25), date(2026, 10, 3), date(2026, 12, 25), date(2026, 12, 26),
    date(2027, 1, 1), date(2027, 3, 26), date(2027, 3, 29), date(2027, 5, 1), date(2027, 5, 6),
    date(2027, 5, 17), date(2027, 10, 3), date(2027, 12, 25), date(2027, 12, 26),
)  # fmt: skip

_CUSTOMERS = (
    ("acme", "ACME Manufacturing GmbH"),
    ("globex", "Globex Retail AG"),
    ("initech", "Initech Software"),
    ("umbrella", "Umbrella Pharma"),
    ("hooli", "Hooli Media"),
    ("stark", "Stark Industries"),
    ("wayne", "Wayne Logistics"),
    ("wonka", "Wonka Foods"),
    ("cyberdyne", "Cyberdyne Systems"),
    ("tyrell", "Tyrell Biotech"),
    ("soylent", "Soylent Nutrition"),
    ("oscorp", "Oscorp Chemicals"),
    ("aperture", "Aperture Labs"),
    ("massive", "Massive Dynamic"),
    ("internal", "Corporate functions (internal customer)"),
)
_SERVICE_BASES = (
    "email", "erp", "crm", "vpn", "hr-portal", "payroll", "intranet", "wiki", "file-share",
    "print", "telephony", "video-conf", "sso", "mdm", "backup", "web-shop", "billing",
    "invoicing", "warehouse", "logistics", "pos", "data-warehouse", "bi-reports", "ci-cd", "git",
    "ticketing", "dns", "wifi", "lan", "wan", "firewall", "proxy", "virtual-desktop", "sap-fi",
    "sap-mm", "sap-sd", "plm", "mes", "scada", "lims",
)  # fmt: skip
_GROUP_AREAS = (
    "service-desk", "desktop", "network", "server", "storage", "database", "middleware",
    "sap-basis", "sap-apps", "web", "security", "identity", "messaging", "telephony", "cloud",
)  # fmt: skip
_GROUP_TIERS = (("l1", 3.0), ("l2", 2.0), ("l3", 1.0), ("oncall", 0.5))


@dataclass(frozen=True)
class Ci:
    index: int  # 1-based
    ci_id: str
    ci_type: str
    layer: int
    services: tuple[int, ...]  # service indexes (0-based), the first is its primary
    depends_on: tuple[int, ...]  # CI indexes
    critical: bool
    owner: int  # group index


@dataclass(frozen=True)
class World:
    """The dimensions at realistic cardinality; indexes are 0-based unless stated."""

    seed: int
    customers: tuple[tuple[str, str], ...]  # (id, name)
    services: tuple[str, ...]
    service_customer: tuple[int, ...]  # customer index of each service
    service_cdf: tuple[float, ...]  # ticket volume: Zipf-like over a seeded order
    groups: tuple[str, ...]
    group_cdf: tuple[float, ...]
    cis: tuple[Ci, ...]
    service_cis: tuple[tuple[int, ...], ...]  # CI indexes (1-based) of each service

    def engineer(self, index: int) -> str:
        return engineer_id(index)

    def group_member(self, group: int, u: float) -> int:
        """An engineer of `group` (engineer e belongs to group e mod N_GROUPS), from u ∈ [0, 1)."""
        return group + N_GROUPS * int(u * group_size(group))


def engineer_id(index: int) -> str:
    return f"eng-{index:03d}"


def group_size(group: int) -> int:
    return (N_ENGINEERS - group + N_GROUPS - 1) // N_GROUPS


def ci_id(index: int) -> str:
    for prefix, _type, _layer, first, last in ci_ranges():
        if first <= index <= last:
            return f"{prefix}-{index:05d}"
    raise ValueError(f"no CI {index}")


def ci_ranges() -> list[tuple[str, str, int, int, int]]:
    """(prefix, type, layer, first index, last index) of each CI layer."""
    out, first = [], 1
    for prefix, ci_type, layer, count in CI_LAYERS:
        out.append((prefix, ci_type, layer, first, first + count - 1))
        first += count
    return out


def article_id(index: int) -> str:
    return f"KB{index:07d}"


def cdf(weights: Mapping[Any, float] | Sequence[float]) -> tuple[float, ...]:
    """Lower bounds of each category's share of [0, 1): pick with `pick(cdf, u)` here or
    `width_bucket(u, cdf)` in SQL (both 1-based there, 0-based here)."""
    values = list(weights.values()) if isinstance(weights, Mapping) else list(weights)
    total = sum(values)
    out, acc = [], 0.0
    for v in values:
        out.append(acc / total)
        acc += v
    return tuple(out)


def pick(bounds: tuple[float, ...], u: float) -> int:
    """0-based category of u ∈ [0, 1) under `cdf` bounds (SQL: width_bucket(u, bounds) - 1)."""
    return bisect.bisect_right(bounds, u) - 1


@lru_cache(maxsize=8)
def world(seed: int) -> World:
    rng = random.Random(f"world-{seed}")
    customers = _CUSTOMERS[:N_CUSTOMERS]
    # Uneven customers: a few large accounts own most services.
    customer_weights = [1 / (i + 1) ** 0.7 for i in range(len(customers))]
    services: list[str] = []
    service_customer: list[int] = []
    for k in range(N_SERVICES):
        c = rng.choices(range(len(customers)), customer_weights)[0]
        base = _SERVICE_BASES[k % len(_SERVICE_BASES)]
        sid, n = f"{base}-{customers[c][0]}", 2
        while sid in services:
            sid, n = f"{base}-{customers[c][0]}-{n}", n + 1
        services.append(sid)
        service_customer.append(c)
    order = list(range(N_SERVICES))
    rng.shuffle(order)
    volume = [0.0] * N_SERVICES
    for rank, s in enumerate(order):
        volume[s] = 1 / (rank + 1) ** 0.9
    groups = [f"{area}-{tier}" for area in _GROUP_AREAS for tier, _ in _GROUP_TIERS][:N_GROUPS]
    group_weights = [w for _ in _GROUP_AREAS for _, w in _GROUP_TIERS][:N_GROUPS]
    cis = _cis(rng)
    service_cis: list[list[int]] = [[] for _ in range(N_SERVICES)]
    for ci in cis:
        for s in ci.services:
            service_cis[s].append(ci.index)
    return World(
        seed=seed,
        customers=customers,
        services=tuple(services),
        service_customer=tuple(service_customer),
        service_cdf=cdf(volume),
        groups=tuple(groups),
        group_cdf=cdf(group_weights),
        cis=tuple(cis),
        service_cis=tuple(tuple(x) for x in service_cis),
    )


def _cis(rng: random.Random) -> list[Ci]:
    ranges = ci_ranges()
    by_layer: dict[int, list[int]] = {}
    for _prefix, _type, layer, first, last in ranges:
        by_layer.setdefault(layer, []).extend(range(first, last + 1))
    out = []
    for prefix, ci_type, layer, first, last in ranges:
        for index in range(first, last + 1):
            primary = (index - 1) % N_SERVICES  # every service gets CIs of every layer
            services = [primary]
            if rng.random() < CI_SECOND_SERVICE:
                services.append((primary + 1 + rng.randrange(N_SERVICES - 1)) % N_SERVICES)
            deps: list[int] = []
            if layer > 0:
                below = by_layer[layer - 1]
                for _ in range(rng.choice((1, 1, 2, 2, 3))):
                    dep = rng.choice(below)
                    if dep not in deps:
                        deps.append(dep)
            out.append(
                Ci(
                    index=index,
                    ci_id=f"{prefix}-{index:05d}",
                    ci_type=ci_type,
                    layer=layer,
                    services=tuple(services),
                    depends_on=tuple(deps),
                    critical=rng.random() < CI_CRITICAL,
                    owner=rng.randrange(N_GROUPS),
                )
            )
    return out


# --- arrivals ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrivals:
    """Hourly slots over [start, end) weighted by local hour, weekday and holidays: an arrival
    is a slot drawn by weight, then a uniform instant inside it."""

    starts: tuple[float, ...]  # epoch seconds
    lengths: tuple[float, ...]  # seconds (partial at the ends)
    bounds: tuple[float, ...]  # cdf lower bounds

    def at(self, u_slot: float, u_within: float) -> float:
        """Epoch seconds (whole) of the arrival for two uniforms."""
        i = pick(self.bounds, u_slot)
        return math.floor(self.starts[i] + u_within * self.lengths[i])


def arrivals(start: datetime, end: datetime, tz: str = TIMEZONE) -> Arrivals:
    if start.tzinfo is None or end.tzinfo is None or start >= end:
        raise ValueError("arrivals need aware start < end")
    zone = ZoneInfo(tz)
    holidays = set(HOLIDAYS)
    hour = timedelta(hours=1)
    t = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    starts, lengths, weights = [], [], []
    while t < end:
        lo, hi = max(t, start), min(t + hour, end)
        local = t.astimezone(zone)
        day = HOLIDAY_WEIGHT if local.date() in holidays else WEEKDAY_WEIGHTS[local.weekday()]
        seconds = (hi - lo).total_seconds()
        starts.append(lo.timestamp())
        lengths.append(seconds)
        weights.append(HOUR_WEIGHTS[local.hour] * day * seconds / 3600)
        t += hour
    return Arrivals(tuple(starts), tuple(lengths), cdf(weights))


def lognormal_s(median: float, sigma: float, z: float) -> float:
    """A lognormal duration from a standard normal z (SQL: median * exp(sigma * z))."""
    return median * math.exp(sigma * z)


# --- the service catalog -------------------------------------------------------------------------

_PREMIUM = 3  # the largest customers get faster P3 targets on their own services


def catalog_yaml(seed: int = 1) -> str:
    """A valid service catalog (SPEC §6.1) of this world: 15 customers, 200 services, an
    office calendar with holidays, SLA policies per priority, a handful of objectives."""
    w = world(seed)
    office = {
        "id": "office",
        "timezone": TIMEZONE,
        "hours": {"mon-fri": "08:00-18:00"},
        "holidays": [h.isoformat() for h in HOLIDAYS],
    }
    extended = {
        "id": "extended",
        "timezone": TIMEZONE,
        "hours": {"mon-fri": "07:00-20:00", "sat": "08:00-14:00"},
        "holidays": [h.isoformat() for h in HOLIDAYS],
    }
    policies: list[dict[str, object]] = [
        {"id": "p1-critical", "service": "*", "priorities": [1], "response_target": "15m",
         "resolution_target": "4h", "calendar": "24x7"},
        {"id": "p2-high", "service": "*", "priorities": [2], "response_target": "30m",
         "resolution_target": "8h", "calendar": "24x7"},
        {"id": "p3-normal", "service": "*", "priorities": [3], "response_target": "4h",
         "resolution_target": "30h", "calendar": "office"},
        {"id": "p4-low", "service": "*", "priorities": [4], "response_target": "10h",
         "resolution_target": "100h", "calendar": "office"},
    ]  # fmt: skip
    premium = [s for s, c in zip(w.services, w.service_customer, strict=True) if c < _PREMIUM]
    for sid in premium[:20]:
        policies.append(
            {
                "id": f"{sid}-p3",
                "service": sid,
                "priorities": [3],
                "response_target": "2h",
                "resolution_target": "13h",
                "calendar": "extended",
            }
        )
    objectives = [
        _objective("incident_sla_resolution_met_ratio", "month", ">=", 0.95, 0.90, 3),
        _objective("incident_sla_response_met_ratio", "month", ">=", 0.95, 0.90, 2),
        _objective("incident_resolution_time_seconds", "week", "<=", 28800, 36000, 1),
        _objective("service_availability_ratio", "month", ">=", 0.999, 0.995, 3),
        _objective("incident_reopen_ratio", "month", "<=", 0.05, 0.08, 1),
        _objective("csat_score", "month", ">=", 4.2, 4.0, 1),
        _objective("change_failure_ratio", "month", "<=", 0.10, 0.15, 1),
        {**_objective("service_availability_ratio", "month", ">=", 0.9995, 0.999, 3),
         "service": w.services[0]},
    ]  # fmt: skip
    catalog = {
        # The services align windows in ITSM_REPORTING_TIMEZONE (default UTC), not this key:
        # the two agree, so the month of October is one window to every reader.
        "reporting_timezone": "UTC",
        "customers": [{"id": cid, "name": name} for cid, name in w.customers],
        "services": [
            {"id": sid, "name": sid.replace("-", " "), "customer": w.customers[c][0]}
            for sid, c in zip(w.services, w.service_customer, strict=True)
        ],
        "calendars": [office, extended],
        "sla_policies": policies,
        "objectives": objectives,
        "settings": {"first_contact_resolution_minutes": 30},
    }
    header = f"# Benchmark service catalog (benchmarks/realistic_world.py, seed {seed}).\n"
    return header + yaml.safe_dump(catalog, sort_keys=False, width=100)


def _objective(
    indicator: str, window: str, comparator: str, target: float, warning: float, weight: float
) -> dict[str, object]:
    return {
        "service": "*",
        "indicator": indicator,
        "window": window,
        "comparator": comparator,
        "target": target,
        "warning": warning,
        "weight": weight,
    }


# --- reference data: monitoring checks and knowledge articles ------------------------------------


@lru_cache(maxsize=8)
def checks(seed: int) -> tuple[tuple[int, str], ...]:
    """(CI index, metric) of every registered check: most CIs have one to three."""
    rng = random.Random(f"checks-{seed}")
    out: list[tuple[int, str]] = []
    for ci in world(seed).cis:
        if rng.random() < CHECKED_CIS:
            out.extend((ci.index, metric) for metric in rng.sample(CHECKS, rng.randint(1, 3)))
    return tuple(out)


@dataclass(frozen=True)
class Article:
    article_id: str
    service: int
    published: float  # epoch seconds
    updated: float | None  # an update inside [start, end)


def articles(seed: int, start: datetime, end: datetime) -> list[Article]:
    """The knowledge base: published over the two years before `start`, a tenth updated in
    [start, end)."""
    rng = random.Random(f"articles-{seed}")
    w = world(seed)
    t0, span = start.timestamp(), (end - start).total_seconds()
    out = []
    for index in range(1, N_ARTICLES + 1):
        published = math.floor(t0 - 730 * 86400 * rng.random()) - 3600
        updated = math.floor(t0 + span * rng.random()) if rng.random() < ARTICLE_UPDATED else None
        service = pick(w.service_cdf, rng.random())
        out.append(Article(article_id(index), service, published, updated))
    return out
