"""The simulated IT organisation of `make run`: its services (from the catalog when there is
one), their SLA targets and the configuration items that run them. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.catalog import Catalog, policy_for
from services.catalog.model import Calendar

# Relative ticket volume of the example catalog's services; others get DEFAULT_VOLUME.
VOLUMES = {"email": 5, "erp": 3, "crm": 2, "network": 3, "hr-portal": 1, "vpn": 2}
DEFAULT_VOLUME = 2
# Without a catalog: the example catalog's targets per priority, all on a 24x7 clock.
DEFAULT_TARGETS = {
    1: (timedelta(minutes=15), timedelta(hours=4)),
    2: (timedelta(minutes=30), timedelta(hours=8)),
    3: (timedelta(hours=4), timedelta(hours=30)),
    4: (timedelta(hours=10), timedelta(hours=100)),
}
GROUPS = ["service-desk", "network-ops", "apps-support", "infra"]

# When people call and open tickets, relative to the week's mean (local time of the company's
# first business calendar): busy on weekday office hours, quieter in the evening, little at
# night and at weekends. The factors average 1 over a week, so --rate stays the mean rate.
_OFFICE, _EVENING, _NIGHT, _WEEKEND = 1.6, 0.5, 0.2, 0.3
_WEEK_MEAN = (50 * _OFFICE + 30 * _EVENING + 40 * _NIGHT + 48 * _WEEKEND) / 168
SEASONAL_PEAK = _OFFICE / _WEEK_MEAN


def seasonality(when: datetime, tz: ZoneInfo) -> float:
    """How busy the service desk is at `when`, relative to the week's mean (see above)."""
    local = when.astimezone(tz)
    if local.weekday() >= 5:
        return _WEEKEND / _WEEK_MEAN
    if 8 <= local.hour < 18:
        return _OFFICE / _WEEK_MEAN
    return (_EVENING if 6 <= local.hour < 8 or 18 <= local.hour < 22 else _NIGHT) / _WEEK_MEAN


@dataclass(frozen=True)
class Ci:
    ci_id: str
    ci_type: str
    services: tuple[str, ...]
    depends_on: tuple[str, ...] = ()
    critical: bool = False
    owner: str = "infra"

    def data(self) -> dict[str, object]:
        """The `itsm.config.ci.upserted` snapshot of this CI (SPEC §3.3)."""
        return {
            "ci_id": self.ci_id,
            "ci_type": self.ci_type,
            "name": self.ci_id,
            "services": list(self.services),
            "owner": self.owner,
            "depends_on": list(self.depends_on),
            "critical": self.critical,
        }


@dataclass(frozen=True)
class Company:
    volumes: dict[str, int]  # service → relative ticket volume
    targets: dict[tuple[str, int], tuple[timedelta, timedelta]] = field(default_factory=dict)
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))  # its office hours' zone

    @property
    def services(self) -> list[str]:
        return list(self.volumes)

    def target(self, service: str, priority: int) -> tuple[timedelta, timedelta] | None:
        """(response, resolution) target of an incident of this service and priority, in
        wall-clock time: a business-hours target stretched by the week's share of open hours
        (an estimate; the SLA clock alone decides whether a ticket met it)."""
        return self.targets.get((service, priority))


def company(catalog: Catalog | None) -> Company:
    """The company a catalog describes; without one (or one naming no service), the defaults."""
    services = [s.id for s in catalog.services] if catalog is not None else []
    if not services:
        volumes = dict(VOLUMES)
        targets = {(s, p): t for s in volumes for p, t in DEFAULT_TARGETS.items()}
        return Company(volumes, targets)
    volumes = {s: VOLUMES.get(s, DEFAULT_VOLUME) for s in services}
    targets = {}
    for s in services:
        for p in range(1, 5):
            policy = policy_for(catalog, s, p) if catalog is not None else None
            calendar = catalog.calendar(policy.calendar) if policy and catalog else None
            if policy is not None and calendar is not None:
                stretch = WEEK / open_per_week(calendar)
                targets[s, p] = (
                    policy.response_target * stretch,
                    policy.resolution_target * stretch,
                )
    tz = ZoneInfo(catalog.calendars[0].timezone) if catalog and catalog.calendars else None
    return Company(volumes, targets, tz or ZoneInfo("UTC"))


WEEK = timedelta(days=7)


def open_per_week(calendar: Calendar) -> timedelta:
    """A calendar's open hours in a week (holidays aside): 50 h for mon-fri 08:00-18:00."""
    total = timedelta()
    for ranges in calendar.weekly.values():
        for begin, end in ranges:
            close = timedelta(hours=24) if end is None else _since_midnight(end)
            total += close - _since_midnight(begin)
    return total or WEEK


def _since_midnight(t: time) -> timedelta:
    return timedelta(hours=t.hour, minutes=t.minute, seconds=t.second)


def cmdb(services: list[str]) -> list[Ci]:
    """The CMDB at start: shared infrastructure, and per service a load balancer, two
    redundant application servers (not critical: one can fail) and a database, so that an
    outage of the storage or the core switch takes several services down (SPEC §5.3)."""
    cis = [
        Ci("core-sw-01", "switch", ("network",) if "network" in services else (), critical=True),
        Ci("san-01", "storage", (), critical=True),
        Ci("dc-fw-01", "firewall", (), ("core-sw-01",), critical=True),
        Ci("backup-01", "server", ()),
    ]
    for s in services:
        owner = "network-ops" if s in ("network", "vpn") else "apps-support"
        cis += [
            Ci(f"{s}-lb-01", "load_balancer", (s,), ("dc-fw-01",), critical=True, owner=owner),
            Ci(f"{s}-app-01", "server", (s,), (f"{s}-db-01",), owner=owner),
            Ci(f"{s}-app-02", "server", (s,), (f"{s}-db-01",), owner=owner),
            Ci(f"{s}-db-01", "database", (s,), ("san-01",), critical=True, owner="infra"),
        ]
    return cis
