"""Reading a catalog file: YAML with the line of every key, validation, reference checks,
and one-line `FILE:LINE: reason` errors."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ValidationError,
)

# Every indicator id of SPEC §5.1 (technical), 5.2 (process) and 5.3 (service). The aggregator's
# registry says how each is computed; this list lets a catalog name those not implemented yet.
from services.aggregator.indicators import get as registered
from services.catalog.model import (
    ANY_CUSTOMER,
    ANY_SERVICE,
    OBJECTIVE_DERIVED_IDS,
    Calendar,
    Catalog,
    CatalogError,
    CatalogSettings,
    Customer,
    Holiday,
    ImprovementSettings,
    Measurement,
    Objective,
    ScheduledReview,
    Service,
    SlaPolicy,
)

_MAX_ENTRIES = 100_000
Loc = tuple[str | int, ...]  # where in the document: keys and list indices


@dataclass(frozen=True)
class Problem:
    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


def load_catalog(path: Path | str, *, timezone: str | None = None) -> Catalog:
    return parse_catalog(read_catalog_text(path), str(path), timezone=timezone)


def read_catalog_text(path: Path | str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(f"catalog file {path} does not exist") from None
    except UnicodeDecodeError as err:
        raise CatalogError(f"{path}: not UTF-8 text ({err.reason})") from None
    except OSError as err:
        raise CatalogError(f"catalog file {path} cannot be read: {err.strerror}") from None


def parse_catalog(text_: str, source: str = "<string>", *, timezone: str | None = None) -> Catalog:
    """Validate a catalog; on any problem raise `CatalogError` naming the first line.

    `timezone` is the reporting time zone in force (ITSM_REPORTING_TIMEZONE): a catalog whose
    `reporting_timezone` names another is refused. None skips that check (reading back a stored
    version, which the running processes must not refuse: see `timezone_mismatch`)."""
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
        differs = timezone_mismatch(catalog, timezone) if timezone is not None else None
        if differs:
            located.append(_locate(lines, ("reporting_timezone",), differs))
    if located:
        found = [Problem(source, line, reason) for line, reason in sorted(located)]
        raise CatalogError(str(found[0]), details=[str(p) for p in found])
    assert catalog is not None
    return catalog


def timezone_mismatch(catalog: Catalog, timezone: str) -> str | None:
    """Why the catalog's `reporting_timezone` contradicts the one in force, or None. The setting
    owns it: the stored windows are aligned in it, and every process reads the same one."""
    if catalog.reporting_timezone is None or catalog.reporting_timezone == timezone:
        return None
    return (
        f"{catalog.reporting_timezone} differs from ITSM_REPORTING_TIMEZONE ({timezone}), which "
        "sets the time zone windows are aligned in: remove the key or make it "
        f"{timezone} (to change the zone, set ITSM_REPORTING_TIMEZONE for every process, then "
        "run `itsm-metrics recompute --since`)"
    )


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
    ("improvements",): ImprovementSettings,
    ("reviews",): ScheduledReview,
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
    yield from _check_objectives(catalog, services, customers)
    yield from _check_reviews(catalog, services, customers)


def _check_reviews(
    catalog: Catalog, services: list[str], customers: list[str]
) -> Iterator[tuple[Loc, str]]:
    """The review schedule names known services and customers (when the catalog lists any;
    assignment groups are not listed), and each scheduled review once."""
    first: dict[tuple[str, tuple[str, str], str], int] = {}
    for i, r in enumerate(catalog.reviews):
        here: Loc = ("reviews", i)
        for key, known in (("service", services), ("customer", customers)):
            value = getattr(r, key)
            if value is not None and known and value not in known:
                yield (*here, key), _unknown(key, value, known)
        key_ = (r.kind, r.scope, r.every)
        if key_ in first:
            yield (
                here,
                (
                    f"a {r.kind} review of {r.scope[0]} {r.scope[1]!r} every {r.every} is "
                    f"already scheduled by reviews[{first[key_]}]"
                ),
            )
        first.setdefault(key_, i)


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


def _check_objectives(
    catalog: Catalog, services: list[str], customers: list[str]
) -> Iterator[tuple[Loc, str]]:
    indicators = catalog.indicator_ids()
    custom = {m.id for m in catalog.measurements}
    first: dict[tuple[str | None, str | None, str, str], int] = {}
    for i, o in enumerate(catalog.objectives):
        here: Loc = ("objectives", i)
        if o.service is not None and o.service not in (ANY_SERVICE, *services):
            yield (*here, "service"), _unknown("service", o.service, services, wildcard=True)
        if o.customer is not None and o.customer not in (ANY_CUSTOMER, *customers):
            yield (*here, "customer"), _unknown("customer", o.customer, customers, wildcard=True)
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
        else:
            problem = _scope_problem(o, _dimensions(o.indicator, custom))
            if problem is not None:
                yield (*here, o.scope if o.scope != "organisation" else "indicator"), problem
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
        key = (o.service, o.customer, o.indicator, o.window)
        if key in first:
            of = "the organisation" if o.scope == "organisation" else f"{o.scope} {_scope_id(o)!r}"
            yield (
                here,
                (
                    f"objective {o.indicator} per {o.window} for {of} "
                    f"is already set by objectives[{first[key]}]"
                ),
            )
        first.setdefault(key, i)


def _scope_id(o: Objective) -> str | None:
    return o.service if o.scope == "service" else o.customer


def _dimensions(indicator: str, custom: set[str]) -> tuple[str, ...] | None:
    """The indicator's public dimensions; None for an id of SPEC §5 the registry lacks."""
    if indicator in custom:  # a measurement is recorded per service (SPEC §3.5)
        return ("service", "customer")
    ind = registered(indicator)
    return None if ind is None else ind.all_dimensions


def _scope_problem(o: Objective, dimensions: tuple[str, ...] | None) -> str | None:
    """Why the objective could never be evaluated (SPEC §6.3), or None: a service's objective
    reads the indicator's per-service points, a customer's its per-customer points, the
    organisation's its total, which only an indicator measured per neither may carry (a
    total over services would hide which one misses)."""
    if dimensions is None:
        return None
    if o.scope == "organisation":
        if "service" in dimensions or "customer" in dimensions:
            return (
                f'{o.indicator} is measured per service: name `service: "*"` (each service) '
                "or a customer; an organisation-wide objective (neither named) is for an "
                "indicator measured per neither"
            )
        return None
    if o.scope not in dimensions:
        hint = (
            f"it is measured per {', '.join(dimensions)}"
            if dimensions
            else "name neither service nor customer for an organisation-wide objective"
        )
        return (
            f"{o.indicator} has no per-{o.scope} value, so this objective could never be "
            f"evaluated: {hint}"
        )
    return None


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
