"""The catalog's definition (SPEC §6.1): Pydantic models, durations, hours, policies."""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from typing import Annotated, Literal, TypeVar
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    field_validator,
    model_validator,
)

from shared.calendar import BusinessCalendar, DayHours
from shared.errors import ItsmError
from shared.events import TicketState
from shared.indicator_ids import SPEC_INDICATOR_IDS, Direction, custom_id_problem
from shared.periods import PeriodKind
from shared.windows import WindowKind

# Computed from the objectives themselves: an objective on them would be circular.
OBJECTIVE_DERIVED_IDS = frozenset({"service_objectives_met_ratio", "service_health_score"})

BUILTIN_CALENDAR = "24x7"
ANY_SERVICE = "*"
ANY_CUSTOMER = "*"
PRIORITIES = (1, 2, 3, 4)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class CatalogError(ItsmError):
    """An invalid catalog: `message` is `FILE:LINE: reason` of the first problem (by line),
    `details` every problem in that form."""

    code = "invalid_catalog"
    exit_code = 7
    http_status = 422


# --- field parsers (pure; raise ValueError with the reason a user reads) ----------------------

_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(value: object) -> timedelta:
    """`"30m"`, `"4h"`, `"2d"`, `"1h30m"`, `"90s"`, `"1w"`, or an integer of seconds; > 0."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and (m := _DURATION.fullmatch(value.replace(" ", ""))) and value:
        w, d, h, mi, s = (int(g or 0) for g in m.groups())
        seconds = (((w * 7 + d) * 24 + h) * 60 + mi) * 60 + s
    else:
        raise ValueError(
            f"bad duration {value!r}: use e.g. 30m, 4h, 2d, 1h30m, 90s or a number of seconds"
        )
    if seconds <= 0:
        raise ValueError(f"duration {value!r} must be longer than zero")
    return timedelta(seconds=seconds)


def _clock(text_: str, *, end: bool) -> time | None:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", text_.strip())
    if m is None:
        raise ValueError(f"bad time {text_.strip()!r}: use HH:MM")
    hour, minute = int(m[1]), int(m[2])
    if end and (hour, minute) == (24, 0):
        return None  # midnight at the end of the day
    if hour > 23 or minute > 59:
        raise ValueError(f"bad time {text_.strip()!r}: use 00:00–23:59 (24:00 only as an end)")
    return time(hour, minute)


def parse_day_hours(value: object) -> DayHours:
    """`"08:00-12:00, 13:00-17:00"` (or a list of ranges) → sorted, merged [start, end) ranges;
    `"00:00-24:00"` is the whole day, `"closed"` none."""
    if isinstance(value, tuple):  # already parsed (a model built in code, or copied)
        return value
    if value is None or str(value).strip().lower() == "closed":
        return ()
    parts = value if isinstance(value, list) else str(value).split(",")
    ranges: list[tuple[time, time | None]] = []
    for part in parts:
        if not isinstance(part, str) or part.count("-") != 1:
            raise ValueError(f"bad time range {part!r}: use e.g. 08:00-17:00")
        start_text, end_text = part.split("-")
        start, end = _clock(start_text, end=False), _clock(end_text, end=True)
        assert start is not None
        if end is not None and end <= start:
            raise ValueError(
                f"time range {part.strip()!r} ends before it starts: split a range over "
                "midnight into two days (e.g. 22:00-24:00 and 00:00-06:00)"
            )
        ranges.append((start, end))
    ranges.sort(key=lambda r: r[0])
    merged: list[tuple[time, time | None]] = []
    for start, end in ranges:
        if merged and (merged[-1][1] is None or merged[-1][1] > start):
            raise ValueError(f"time ranges overlap at {start:%H:%M} in {value!r}")
        if merged and merged[-1][1] == start:  # adjacent: one range
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return tuple(merged)


def parse_days(spec: str) -> tuple[int, ...]:
    """`"mon"`, `"mon-fri"`, `"sat,sun"`, `"mon-wed, fri"` → weekdays (0 = Monday)."""

    def day(name: str) -> int:
        name = name.strip().lower()
        for names in (WEEKDAYS, _FULL_WEEKDAYS):
            if name in names:
                return names.index(name)
        raise ValueError(f"bad day {name!r} in {spec!r}: use mon, tue, … sun or a range mon-fri")

    days: list[int] = []
    for part in str(spec).split(","):
        first, _, last = part.partition("-")
        a = day(first)
        b = day(last) if last else a
        days.extend((a + i) % 7 for i in range((b - a) % 7 + 1))  # fri-mon wraps the weekend
    if len(set(days)) != len(days):
        raise ValueError(f"a day is named twice in {spec!r}")
    return tuple(days)


def _check_days(spec: str) -> str:
    parse_days(spec)
    return spec


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (KeyError, ValueError):  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin or UTC"
        ) from None
    return name


def _check_id(value: str) -> str:
    if not value or value != value.strip():
        raise ValueError(f"bad id {value!r}: an id is not empty and has no surrounding spaces")
    return value


def _holiday(value: object) -> object:
    return {"date": value} if isinstance(value, date | str) else value


def _none_as_empty(value: object) -> object:
    return () if value is None else value  # `services:` with nothing under it


def _check_metric_id(value: str) -> str:
    problem = custom_id_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


_T = TypeVar("_T")
Id = Annotated[str, AfterValidator(_check_id)]
TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Number = Annotated[float, Strict()]
Window = WindowKind  # shared.windows: hour, day, week, month, quarter


# A list section of the file; `services:` with nothing under it is an empty one.
Section = Annotated[tuple[_T, ...], BeforeValidator(_none_as_empty)]


# --- the catalog --------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Customer(_Model):
    id: Id
    name: str | None = None

    @field_validator("id")
    @classmethod
    def _not_wildcard(cls, value: str) -> str:
        if value == ANY_CUSTOMER:
            raise ValueError("'*' means every customer and cannot be a customer id")
        return value


class Service(_Model):
    id: Id
    name: str | None = None
    customer: Id

    @field_validator("id")
    @classmethod
    def _not_wildcard(cls, value: str) -> str:
        if value == ANY_SERVICE:
            raise ValueError("'*' means every service and cannot be a service id")
        return value


class Holiday(_Model):
    date: date
    name: str | None = None


class Calendar(_Model):
    """Business hours in a time zone: `hours` maps days (`mon`, `mon-fri`, `sat,sun`) to
    ranges (`"08:00-12:00, 13:00-17:00"`); days not named are closed, so are holidays."""

    id: Id
    timezone: TimeZoneName
    hours: dict[
        Annotated[str, AfterValidator(_check_days)],
        Annotated[DayHours, BeforeValidator(parse_day_hours)],
    ]
    holidays: Section[Annotated[Holiday, BeforeValidator(_holiday)]] = ()

    @field_validator("hours")
    @classmethod
    def _each_day_once(cls, hours: dict[str, DayHours]) -> dict[str, DayHours]:
        seen: dict[int, str] = {}
        for spec in hours:
            for d in parse_days(spec):
                if d in seen:
                    raise ValueError(f"{WEEKDAYS[d]} is given twice ({seen[d]!r} and {spec!r})")
                seen[d] = spec
        if not any(hours.values()):
            raise ValueError("no open hours: name at least one day, e.g. mon-fri: 08:00-17:00")
        return hours

    @property
    def weekly(self) -> dict[int, DayHours]:
        weekly: dict[int, DayHours] = {}
        for spec, ranges in self.hours.items():
            for d in parse_days(spec):
                if ranges:
                    weekly[d] = ranges
        return dict(sorted(weekly.items()))

    def business_calendar(self) -> BusinessCalendar:
        return BusinessCalendar(
            tz=ZoneInfo(self.timezone),
            weekly=self.weekly,
            holidays=frozenset(h.date for h in self.holidays),
        )


ALWAYS = Calendar.model_validate(
    {"id": BUILTIN_CALENDAR, "timezone": "UTC", "hours": {"mon-sun": "00:00-24:00"}}
)


class SlaPolicy(_Model):
    id: Id
    service: Id  # a service id or "*"
    priorities: tuple[Annotated[int, Strict(), Field(ge=1, le=4)], ...] = Field(
        default=PRIORITIES, min_length=1
    )
    response_target: Duration
    resolution_target: Duration
    calendar: Id = BUILTIN_CALENDAR
    pause_states: tuple[TicketState, ...] = ("pending",)

    @field_validator("priorities")
    @classmethod
    def _sorted(cls, priorities: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(sorted(set(priorities)))


ObjectiveScope = Literal["service", "customer", "organisation"]


class Objective(_Model):
    """SPEC §6.3: `indicator` `comparator` `target` per `window`, of a `service` (an id or `*`:
    each service), of a `customer` (an id or `*`), or, naming neither, of the organisation (for
    an indicator measured neither per service nor per customer: calls, CMDB audits)."""

    service: Id | None = None
    customer: Id | None = None
    indicator: Id
    window: Window = "month"
    comparator: Literal[">=", "<="]
    target: Number
    warning: Number | None = None
    weight: Annotated[float, Strict(), Field(gt=0)] = 1.0

    @model_validator(mode="after")
    def _one_scope(self) -> Objective:
        if self.service is not None and self.customer is not None:
            raise ValueError(
                "an objective is of a service or of a customer, not both (name one of them, or "
                "neither for an organisation-wide one)"
            )
        return self

    @property
    def scope(self) -> ObjectiveScope:
        if self.service is not None:
            return "service"
        return "customer" if self.customer is not None else "organisation"


class Measurement(_Model):
    """A custom indicator fed by `itsm.measurement.recorded` (SPEC §3.5, §5.2)."""

    id: Annotated[str, AfterValidator(_check_metric_id)]
    unit: str
    aggregation: Literal["sum", "mean"] = "sum"
    direction: Direction


class CatalogSettings(_Model):
    first_contact_resolution_minutes: Annotated[int, Strict(), Field(gt=0)] = 30
    drift_windows: Annotated[int, Strict(), Field(ge=4)] = 8  # fewer than 4 never drift (§6.4)
    drift_threshold: Annotated[float, Strict(), Field(gt=0)] = 3.0


class ImprovementSettings(_Model):
    """The improvement register (SPEC §7.4): how many complete windows before the approval
    make an improvement's baseline."""

    baseline_windows: Annotated[int, Strict(), Field(ge=1, le=366)] = 4


ReviewKind = Literal["customer", "team"]
REVIEW_KINDS: tuple[ReviewKind, ...] = ("customer", "team")


def review_scope_problem(
    kind: str, service: str | None, customer: str | None, assignment_group: str | None
) -> str | None:
    """What is wrong with a review's scope (SPEC §7.3), or None: a customer review is of one
    service or one customer, a team review of one assignment group."""
    if kind == "customer":
        if assignment_group is not None:
            return "a customer review is of a service or a customer, not an assignment_group"
        if (service is None) == (customer is None):
            return "a customer review needs a service or a customer (one of them)"
    elif kind == "team":
        if service is not None or customer is not None:
            return "a team review is of an assignment_group, not a service or customer"
        if assignment_group is None:
            return "a team review needs an assignment_group"
    return None


class ScheduledReview(_Model):
    """A review held regularly (SPEC §7.3): a `customer` review of a service or a customer, or a
    `team` review of an assignment group, at `level` 1-4 of the review mechanism, `every` week,
    month or quarter, with its participants. A period's review is due from the period's end
    until `grace_days` later, then overdue. `since`: the day the schedule began — periods ending
    on or before it were never scheduled (not due, not overdue, not counted by
    `review_completion_ratio`); unset, every period counts."""

    kind: ReviewKind
    level: Annotated[int, Strict(), Field(ge=1, le=4)]
    service: Id | None = None
    customer: Id | None = None
    assignment_group: Id | None = None
    every: PeriodKind
    participants: tuple[str, ...] = ()
    grace_days: Annotated[int, Strict(), Field(ge=0, le=366)] = 5
    since: date | None = None

    @model_validator(mode="after")
    def _one_scope(self) -> ScheduledReview:
        problem = review_scope_problem(
            self.kind, self.service, self.customer, self.assignment_group
        )
        if problem is not None:
            raise ValueError(problem)
        return self

    @property
    def scope(self) -> tuple[str, str]:
        """(`service` | `customer` | `assignment_group`, its id)."""
        for key in ("service", "customer", "assignment_group"):
            value = getattr(self, key)
            if value is not None:
                return key, value
        raise AssertionError("validated: a scheduled review has a scope")


# (kind, service, customer, assignment_group, every, grace_days, since) of each scheduled review,
# and (service, customer) of each service one is of.
ReviewSchedule = tuple[
    tuple[tuple[str, str | None, str | None, str | None, str, int, date | None], ...],
    tuple[tuple[str, str], ...],
]


class Catalog(_Model):
    # Not a second owner of the reporting time zone: ITSM_REPORTING_TIMEZONE sets it for every
    # process (the windows stored are aligned in it). When given, it must name the same zone:
    # `parse_catalog(..., timezone=)` refuses a catalog that differs.
    reporting_timezone: TimeZoneName | None = None
    customers: Section[Customer] = ()
    services: Section[Service] = ()
    calendars: Section[Calendar] = Field(default=(), validate_default=True)
    sla_policies: Section[SlaPolicy] = ()
    objectives: Section[Objective] = ()
    measurements: Section[Measurement] = ()
    settings: Annotated[CatalogSettings, BeforeValidator(lambda v: {} if v is None else v)] = (
        CatalogSettings()
    )
    improvements: Annotated[
        ImprovementSettings, BeforeValidator(lambda v: {} if v is None else v)
    ] = ImprovementSettings()
    reviews: Section[ScheduledReview] = ()

    @field_validator("calendars")
    @classmethod
    def _with_builtin(cls, calendars: tuple[Calendar, ...]) -> tuple[Calendar, ...]:
        # Appended, so that the file's calendars keep their indices (and line numbers).
        if any(c.id == BUILTIN_CALENDAR for c in calendars):
            return calendars
        return (*calendars, ALWAYS)

    @classmethod
    def default(cls) -> Catalog:
        """The catalog in force before any was applied: the 24x7 calendar, nothing else."""
        return cls()

    def calendar(self, calendar_id: str) -> Calendar | None:
        return next((c for c in self.calendars if c.id == calendar_id), None)

    def service(self, service_id: str) -> Service | None:
        return next((s for s in self.services if s.id == service_id), None)

    def review_schedule(self) -> ReviewSchedule:
        """What `review_completion_ratio` reads of the catalog: each scheduled review's kind,
        scope, period kind, grace and start, and the customer of each service one is of."""
        reviewed = {r.service for r in self.reviews}
        return (
            tuple(
                (r.kind, r.service, r.customer, r.assignment_group, r.every, r.grace_days, r.since)
                for r in self.reviews
            ),
            tuple((s.id, s.customer) for s in self.services if s.id in reviewed),
        )

    def indicator_ids(self) -> set[str]:
        """Every indicator an objective may name: SPEC §5, the registry, custom measurements."""
        return known_indicator_ids() | {m.id for m in self.measurements}

    def summary(self) -> str:
        return ", ".join(
            _plural(n, word)
            for n, word in (
                (len(self.services), "service"),
                (len(self.sla_policies), "policy"),
                (len(self.objectives), "objective"),
            )
        )


def _plural(n: int, word: str) -> str:
    if n == 1:
        return f"1 {word}"
    return f"{n} {word[:-1]}ies" if word.endswith("y") else f"{n} {word}s"


def known_indicator_ids() -> set[str]:
    return set(SPEC_INDICATOR_IDS)


def policy_for(catalog: Catalog, service: str | None, priority: int | None) -> SlaPolicy | None:
    """The SLA policy of a ticket (SPEC §6.1): a policy naming the service beats a `*` one;
    among equals the first in the file wins. A ticket without a priority matches only policies
    that cover every priority; one without a service only `*` policies."""
    candidates = [
        p
        for p in catalog.sla_policies
        if (priority in p.priorities if priority is not None else p.priorities == PRIORITIES)
        and p.service in (service, ANY_SERVICE)
    ]
    exact = [p for p in candidates if p.service == service]
    best = exact or candidates
    return best[0] if best else None


# --- loading: YAML with line numbers -------------------------------------------------------------
