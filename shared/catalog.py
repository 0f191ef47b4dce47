"""The service catalog (SPEC §6.1): customers, services, business calendars, SLA policies,
objectives and custom measurements, read from YAML with errors that name the line, and stored
in PostgreSQL (`catalog_versions`) so that every process shares the one active version.

Pure up to "Storage": text in, a validated `Catalog` (or a `CatalogError`) out."""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_validator,
)
from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import Connection

from services.aggregator.indicators import Direction, all_indicators
from services.aggregator.sla_clock import BusinessCalendar, DayHours
from shared.db import catalog_versions
from shared.errors import ItsmError
from shared.events import TicketState

# Every indicator id of SPEC §5.1 (technical), 5.2 (process) and 5.3 (service). The aggregator's
# registry says how each is computed; this list lets a catalog name those not implemented yet.
SPEC_INDICATOR_IDS: frozenset[str] = frozenset(
    {
        # 5.1 technical
        "ci_availability_ratio",
        "ci_outage_count",
        "ci_mtbf_seconds",
        "ci_mttr_seconds",
        "monitor_alerts_count",
        "monitoring_coverage_ratio",
        "monitoring_checks_count",
        # 5.2 process
        "ticket_opened_count",
        "ticket_resolved_count",
        "incident_backlog_count",
        "incident_response_time_seconds",
        "incident_resolution_time_seconds",
        "incident_sla_response_met_ratio",
        "incident_sla_resolution_met_ratio",
        "incident_reassignment_ratio",
        "incident_dispatch_accuracy_ratio",
        "incident_reopen_ratio",
        "incident_first_contact_resolution_ratio",
        "incident_knowledge_usage_ratio",
        "major_incident_count",
        "problem_resolution_time_seconds",
        "incident_problem_linked_ratio",
        "change_count",
        "change_success_ratio",
        "change_failure_ratio",
        "change_emergency_ratio",
        "change_lead_time_seconds",
        "change_unauthorized_count",
        "cmdb_accuracy_ratio",
        "call_answer_ratio",
        "call_abandon_ratio",
        "call_handle_time_seconds",
        "call_logging_ratio",
        "knowledge_articles_count",
        "knowledge_update_ratio",
        "csat_score",
        # 5.3 service
        "service_availability_ratio",
        "service_objectives_met_ratio",
        "service_health_score",
    }
)
# Computed from the objectives themselves: an objective on them would be circular.
OBJECTIVE_DERIVED_IDS = frozenset({"service_objectives_met_ratio", "service_health_score"})

BUILTIN_CALENDAR = "24x7"
ANY_SERVICE = "*"
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
    if not re.fullmatch(r"[a-z][a-z0-9_]*", value):
        raise ValueError(
            f"bad indicator id {value!r}: use lower_snake_case (it becomes the metric itsm_<id>)"
        )
    return value


_T = TypeVar("_T")
Id = Annotated[str, AfterValidator(_check_id)]
TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Number = Annotated[float, Strict()]
Window = Literal["hour", "day", "week", "month"]


# A list section of the file; `services:` with nothing under it is an empty one.
Section = Annotated[tuple[_T, ...], BeforeValidator(_none_as_empty)]


# --- the catalog --------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Customer(_Model):
    id: Id
    name: str | None = None


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


class Objective(_Model):
    """SPEC §6.3: `service` (or `*`) `indicator` `comparator` `target` per `window`."""

    service: Id
    indicator: Id
    window: Window = "month"
    comparator: Literal[">=", "<="]
    target: Number
    warning: Number | None = None
    weight: Annotated[float, Strict(), Field(gt=0)] = 1.0


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


class Catalog(_Model):
    reporting_timezone: TimeZoneName = "UTC"
    customers: Section[Customer] = ()
    services: Section[Service] = ()
    calendars: Section[Calendar] = Field(default=(), validate_default=True)
    sla_policies: Section[SlaPolicy] = ()
    objectives: Section[Objective] = ()
    measurements: Section[Measurement] = ()
    settings: Annotated[CatalogSettings, BeforeValidator(lambda v: {} if v is None else v)] = (
        CatalogSettings()
    )

    @field_validator("calendars")
    @classmethod
    def _with_builtin(cls, calendars: tuple[Calendar, ...]) -> tuple[Calendar, ...]:
        # Appended, so that the file's calendars keep their indices (and line numbers).
        if any(c.id == BUILTIN_CALENDAR for c in calendars):
            return calendars
        return (*calendars, ALWAYS)

    @classmethod
    def default(cls) -> Catalog:
        """The catalog in force before any was applied: UTC, the 24x7 calendar, nothing else."""
        return cls()

    def calendar(self, calendar_id: str) -> Calendar | None:
        return next((c for c in self.calendars if c.id == calendar_id), None)

    def service(self, service_id: str) -> Service | None:
        return next((s for s in self.services if s.id == service_id), None)

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
    return set(SPEC_INDICATOR_IDS) | {ind.id for ind in all_indicators()}


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

_MAX_ENTRIES = 100_000
Loc = tuple[str | int, ...]  # where in the document: keys and list indices


@dataclass(frozen=True)
class Problem:
    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


def load_catalog(path: Path | str) -> Catalog:
    return parse_catalog(read_catalog_text(path), str(path))


def read_catalog_text(path: Path | str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(f"catalog file {path} does not exist") from None
    except UnicodeDecodeError as err:
        raise CatalogError(f"{path}: not UTF-8 text ({err.reason})") from None
    except OSError as err:
        raise CatalogError(f"catalog file {path} cannot be read: {err.strerror}") from None


def parse_catalog(text_: str, source: str = "<string>") -> Catalog:
    """Validate a catalog; on any problem raise `CatalogError` naming the first line."""
    data, lines, problems = _read_yaml(text_)
    located = list(problems)
    catalog = None
    if not located:
        if data is None:
            located.append((1, "the catalog is empty: expected customers, services, … (or {})"))
        elif not isinstance(data, dict):
            located.append((1, "expected a mapping of sections (customers, services, …)"))
        else:
            try:
                catalog = Catalog.model_validate(data)
            except ValidationError as err:
                located.extend(_locate(lines, *found) for found in _explain(err.errors()))
    if catalog is not None:
        located.extend(_locate(lines, path, reason) for path, reason in _check_references(catalog))
    if located:
        found = [Problem(source, line, reason) for line, reason in sorted(located)]
        raise CatalogError(str(found[0]), details=[str(p) for p in found])
    assert catalog is not None
    return catalog


class _Loader(yaml.SafeLoader):
    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # A few constructors raise a bare ValueError (e.g. the date 2026-13-01): give it a line.
        try:
            return super().construct_object(node, deep)
        except ValueError as err:
            raise yaml.constructor.ConstructorError(
                None, None, f"bad value {node.value!r}: {err}", node.start_mark
            ) from None


def _read_yaml(text_: str) -> tuple[Any, dict[Loc, int], list[tuple[int, str]]]:
    """The document, the line of every key and list item, and duplicate-key problems."""
    loader = _Loader(text_)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}, []
        duplicates = list(_duplicate_keys(node, set()))
        data = loader.construct_document(node)
        lines: dict[Loc, int] = {(): node.start_mark.line + 1}
        _record_lines(node, (), lines, set())
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = err.problem or err.context
        if not isinstance(err, yaml.constructor.ConstructorError):
            what = f"YAML syntax error: {what}"
        return None, {}, [(line, str(what))]
    except yaml.YAMLError as err:
        return None, {}, [(1, f"YAML error: {err}")]
    finally:
        loader.dispose()
    return data, lines, duplicates


def _duplicate_keys(node: yaml.Node, seen: set[int]) -> Iterator[tuple[int, str]]:
    # PyYAML keeps the last of two equal keys; a catalog must not lose the first silently.
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                line = key.start_mark.line + 1
                if key.value in first:
                    yield line, f"duplicate key {key.value!r} (first on line {first[key.value]})"
                first.setdefault(key.value, line)
            yield from _duplicate_keys(value, seen)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _duplicate_keys(item, seen)


def _record_lines(node: yaml.Node, path: Loc, lines: dict[Loc, int], stack: set[int]) -> None:
    if id(node) in stack:  # a recursive alias
        return
    if len(lines) > _MAX_ENTRIES:  # aliases of aliases can expand a small file exponentially
        raise yaml.YAMLError(f"more than {_MAX_ENTRIES} keys and list items (aliases expanded)")
    stack = stack | {id(node)}
    children: Iterable[tuple[str | int, yaml.Node, yaml.Node]] = ()
    if isinstance(node, yaml.MappingNode):
        children = ((k.value, k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode))
    elif isinstance(node, yaml.SequenceNode):
        children = ((i, item, item) for i, item in enumerate(node.value))
    for step, marked, child in children:
        # Of two equal keys (a merged `<<` one and its override) the last is the one in force.
        lines[(*path, step)] = marked.start_mark.line + 1
        _record_lines(child, (*path, step), lines, stack)


def _locate(lines: dict[Loc, int], loc: Loc, reason: str) -> tuple[int, str]:
    """The line of the deepest known part of `loc`, and the reason prefixed by where."""
    steps = [s for s in loc if s != "[key]"]
    path = tuple(str(s) if not isinstance(s, int) else s for s in steps)
    while path not in lines:
        path = path[:-1]
    where = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps).lstrip(".")
    return lines[path], f"{where}: {reason}" if where else reason


_FIELDS: dict[Loc, type[BaseModel]] = {
    (): Catalog,
    ("customers",): Customer,
    ("services",): Service,
    ("calendars",): Calendar,
    ("calendars", "holidays"): Holiday,
    ("sla_policies",): SlaPolicy,
    ("objectives",): Objective,
    ("measurements",): Measurement,
    ("settings",): CatalogSettings,
}


def _explain(errors: list[Any]) -> Iterator[tuple[Loc, str]]:
    """Where each Pydantic error is, and its reason in the words of the catalog's author. A
    missing key is not reported when an unknown key of the same mapping is its typo."""
    hints: dict[Loc, tuple[str | None, list[str]]] = {}  # unknown key → (its typo of, keys)
    for e in errors:
        if e["type"] == "extra_forbidden":
            loc = tuple(e["loc"])
            model = _FIELDS.get(tuple(s for s in loc[:-1] if isinstance(s, str)))
            keys = list(model.model_fields) if model else []
            close = difflib.get_close_matches(str(loc[-1]), keys, n=1)
            hints[loc] = (close[0] if close else None, keys)
    typos = {(*loc[:-1], key) for loc, (key, _) in hints.items() if key is not None}
    for e in errors:
        loc = tuple(e["loc"])
        if e["type"] == "missing" and loc not in typos:  # point at the item lacking the key
            yield loc[:-1], f"missing required key {loc[-1]!r}"
        elif e["type"] == "extra_forbidden":
            key, keys = hints[loc]
            hint = f"did you mean {key!r}?" if key else f"expected one of {', '.join(keys)}"
            yield loc, f"unknown key {loc[-1]!r} ({hint})"
        elif e["type"] != "missing":
            yield loc, _reason(e)


def _reason(error: Any) -> str:
    kind, value = error["type"], error.get("input")
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind in ("string_type", "string_sub_type"):
        return f"expected text, got {value!r} (quote it in YAML)"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping (key: value), got {value!r}"
    if kind in ("tuple_type", "list_type"):
        return f"expected a list, got {value!r}"
    msg = str(error["msg"])
    return f"{msg[0].lower()}{msg[1:]}, got {value!r}"


def _check_references(catalog: Catalog) -> Iterator[tuple[Loc, str]]:
    """What a single field cannot know: unique ids, references, targets that make sense."""
    for section in ("customers", "services", "calendars", "sla_policies", "measurements"):
        yield from _duplicate_ids(section, getattr(catalog, section))
    customers = [c.id for c in catalog.customers]
    services = [s.id for s in catalog.services]
    calendars = [c.id for c in catalog.calendars]
    for i, service in enumerate(catalog.services):
        if service.customer not in customers:
            yield ("services", i, "customer"), _unknown("customer", service.customer, customers)
    yield from _check_policies(catalog, services, calendars)
    yield from _check_objectives(catalog, services)
    known = known_indicator_ids()
    for i, m in enumerate(catalog.measurements):
        if m.id in known:
            yield ("measurements", i, "id"), f"{m.id!r} is a built-in indicator (SPEC §5)"


def _check_policies(
    catalog: Catalog, services: list[str], calendars: list[str]
) -> Iterator[tuple[Loc, str]]:
    covered: dict[tuple[str, int], tuple[str, int]] = {}
    for i, p in enumerate(catalog.sla_policies):
        here: Loc = ("sla_policies", i)
        if p.service != ANY_SERVICE and p.service not in services:
            yield (*here, "service"), _unknown("service", p.service, services, wildcard=True)
        if p.calendar not in calendars:
            yield (*here, "calendar"), _unknown("calendar", p.calendar, calendars)
        if p.response_target > p.resolution_target:
            yield (
                (*here, "response_target"),
                (
                    f"response target {_hours(p.response_target)} is longer than the resolution "
                    f"target {_hours(p.resolution_target)}"
                ),
            )
        for priority in p.priorities:
            other = covered.setdefault((p.service, priority), (p.id, i))
            if other[1] != i:
                # The later one could never apply: policy_for picks the first in the file.
                yield (
                    (*here, "priorities"),
                    (
                        f"priority {priority} of service {p.service!r} is already covered by "
                        f"policy {other[0]!r}"
                    ),
                )


def _check_objectives(catalog: Catalog, services: list[str]) -> Iterator[tuple[Loc, str]]:
    indicators = catalog.indicator_ids()
    custom = {m.id for m in catalog.measurements}
    first: dict[tuple[str, str, str], int] = {}
    for i, o in enumerate(catalog.objectives):
        here: Loc = ("objectives", i)
        if o.service != ANY_SERVICE and o.service not in services:
            yield (*here, "service"), _unknown("service", o.service, services, wildcard=True)
        if o.indicator not in indicators:
            close = difflib.get_close_matches(o.indicator, indicators, n=1)
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else "declare a custom one under measurements"
            )
            yield (*here, "indicator"), f"unknown indicator {o.indicator!r} ({hint})"
        elif o.indicator in OBJECTIVE_DERIVED_IDS:
            yield (*here, "indicator"), f"{o.indicator} is computed from the objectives"
        if o.warning is not None and (
            o.warning >= o.target if o.comparator == ">=" else o.warning <= o.target
        ):
            side = "below" if o.comparator == ">=" else "above"
            yield (
                (*here, "warning"),
                (
                    f"warning {o.warning:g} must be {side} the target {o.target:g} "
                    f"for {o.comparator} (the warning band lies between them)"
                ),
            )
        if o.indicator.endswith("_ratio") and o.indicator not in custom:
            for name in ("target", "warning"):
                value = getattr(o, name)
                if value is not None and not 0 <= value <= 1:
                    yield (*here, name), f"{name} {value:g} of a ratio must be within 0..1"
        key = (o.service, o.indicator, o.window)
        if key in first:
            yield (
                here,
                (
                    f"objective {o.indicator} per {o.window} for service {o.service!r} "
                    f"is already set by objectives[{first[key]}]"
                ),
            )
        first.setdefault(key, i)


def _duplicate_ids(section: str, items: Iterable[Any]) -> Iterator[tuple[Loc, str]]:
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.id in first:
            yield (section, i, "id"), f"duplicate id {item.id!r} (also {section}[{first[item.id]}])"
        first.setdefault(item.id, i)


def _unknown(what: str, value: str, known: list[str], *, wildcard: bool = False) -> str:
    close = difflib.get_close_matches(value, known, n=1)
    if close:
        hint = f"did you mean {close[0]!r}?"
    else:
        hint = (
            f"known: {', '.join(known[:12])}{', …' if len(known) > 12 else ''}"
            if known
            else (f"no {what} is defined")
        )
        hint += f"; '*' means every {what}" if wildcard else ""
    return f"unknown {what} {value!r} ({hint})"


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:g}h"


# --- storage: catalog_versions --------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogVersion:
    id: int
    applied_at: datetime
    source: str
    sha256: str
    active: bool


_VERSION_COLUMNS = (
    catalog_versions.c.id,
    catalog_versions.c.applied_at,
    catalog_versions.c.source,
    catalog_versions.c.sha256,
    catalog_versions.c.active,
)


def apply_catalog(conn: Connection, text_: str, source: str) -> tuple[Catalog, bool]:
    """Validate, then store as the active version unless the same text already is. The caller
    owns the transaction; an invalid catalog raises `CatalogError` and changes nothing."""
    catalog = parse_catalog(text_, source)
    digest = hashlib.sha256(text_.encode("utf-8")).hexdigest()
    # Two appliers at once: the second waits, then sees the first's version (readers never wait).
    conn.execute(text("LOCK TABLE catalog_versions IN SHARE ROW EXCLUSIVE MODE"))
    active = active_version(conn)
    if active is not None and active.sha256 == digest:
        return catalog, False
    conn.execute(update(catalog_versions).where(catalog_versions.c.active).values(active=False))
    conn.execute(
        insert(catalog_versions).values(source=source, sha256=digest, content=text_, active=True)
    )
    return catalog, True


def active_version(conn: Connection) -> CatalogVersion | None:
    row = conn.execute(select(*_VERSION_COLUMNS).where(catalog_versions.c.active)).one_or_none()
    return CatalogVersion(*row) if row is not None else None


def active_catalog(conn: Connection) -> Catalog:
    """The active catalog, or the built-in default when none was ever applied."""
    row = conn.execute(
        select(catalog_versions.c.id, catalog_versions.c.source, catalog_versions.c.content).where(
            catalog_versions.c.active
        )
    ).one_or_none()
    if row is None:
        return Catalog.default()
    try:
        return parse_catalog(row.content, row.source)
    except CatalogError as err:  # valid when applied, refused by a stricter release since
        raise CatalogError(
            f"the active catalog (version {row.id}) no longer validates: {err.message}; "
            "fix it and run `itsm-metrics catalog apply`",
            details=err.details,
        ) from None


def catalog_history(conn: Connection, limit: int = 20) -> list[CatalogVersion]:
    """Applied versions, newest first."""
    rows = conn.execute(
        select(*_VERSION_COLUMNS).order_by(catalog_versions.c.id.desc()).limit(limit)
    )
    return [CatalogVersion(*row) for row in rows]
