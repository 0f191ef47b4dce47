"""The service catalog (SPEC §6.1): the shipped example, the YAML forms, every refusal naming
its line, policy matching, calendars for the SLA clock, and the stored active version."""

from __future__ import annotations

import textwrap
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from services.aggregator.sla_clock import deadline
from services.catalog import (
    Catalog,
    CatalogError,
    active_catalog,
    active_version,
    apply_catalog,
    catalog_history,
    load_catalog,
    parse_catalog,
    parse_duration,
    policy_for,
)
from services.catalog.model import parse_day_hours, parse_days
from shared.calendar import ALL_DAY, BusinessCalendar
from shared.db import catalog_versions
from shared.indicator_ids import SPEC_INDICATOR_IDS

EXAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "catalog.example.yaml"


def yaml(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def refusal(text: str) -> CatalogError:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(yaml(text), "cat.yaml")
    return caught.value


# --- the example and the default -----------------------------------------------------------------


def test_the_example_describes_the_simulated_company() -> None:
    catalog = load_catalog(EXAMPLE)
    assert catalog.reporting_timezone is None  # ITSM_REPORTING_TIMEZONE sets it
    assert load_catalog(EXAMPLE, timezone="Asia/Tokyo") == catalog  # so any one agrees
    assert {s.id for s in catalog.services} == {
        "email",
        "erp",
        "crm",
        "network",
        "hr-portal",
        "vpn",
    }
    assert len(catalog.customers) == 3
    assert {c.id for c in catalog.calendars} == {"24x7", "office"}
    office = catalog.calendar("office")
    assert office is not None and office.timezone == "Europe/Berlin"
    # 9 nationwide German holidays a year, 2026 and 2027.
    assert len(office.holidays) == 18
    assert date(2026, 4, 3) in {h.date for h in office.holidays}  # Good Friday 2026
    assert date(2027, 5, 17) in {h.date for h in office.holidays}  # Whit Monday 2027
    p1 = policy_for(catalog, "email", 1)
    assert p1 is not None and p1.calendar == "24x7"
    assert (p1.response_target, p1.resolution_target) == (timedelta(minutes=15), timedelta(hours=4))
    p4 = policy_for(catalog, "crm", 4)
    # 10 working days of 10 office hours.
    assert (
        p4 is not None and p4.calendar == "office" and p4.resolution_target == timedelta(hours=100)
    )
    assert all(p.pause_states == ("pending",) for p in catalog.sla_policies)
    indicators = {o.indicator for o in catalog.objectives}
    assert {
        "incident_sla_resolution_met_ratio",
        "incident_resolution_time_seconds",
        "service_availability_ratio",
        "csat_score",
        "change_success_ratio",
        "call_answer_ratio",
        "training_hours",
        "review_completion_ratio",
    } <= indicators
    assert [(m.id, m.aggregation) for m in catalog.measurements] == [
        ("training_hours", "sum"),
        ("staffing_level", "mean"),
    ]


def test_the_default_is_24x7_with_nothing_else() -> None:
    catalog = Catalog.default()
    assert catalog.reporting_timezone is None
    assert [c.id for c in catalog.calendars] == ["24x7"]
    assert catalog.calendars[0].business_calendar().is_always
    assert not (catalog.customers or catalog.services or catalog.sla_policies)
    assert not (catalog.objectives or catalog.measurements)
    assert catalog.settings.first_contact_resolution_minutes == 30
    assert (catalog.settings.drift_windows, catalog.settings.drift_threshold) == (8, 3.0)


def test_an_empty_mapping_is_the_default_and_24x7_is_always_there() -> None:
    assert parse_catalog("{}") == Catalog.default()
    catalog = parse_catalog(
        yaml("""
        calendars:
          - id: office
            timezone: Europe/Berlin
            hours: {mon-fri: "09:00-17:00"}
        """)
    )
    assert [c.id for c in catalog.calendars] == ["office", "24x7"]


def test_spec_indicator_ids_are_the_39_of_spec_section_5_and_the_reviews_one() -> None:
    assert len(SPEC_INDICATOR_IDS) == 7 + 29 + 3 + 1  # §5.1 + §5.2 + §5.3 + §7.3
    assert all(i == i.lower() and " " not in i for i in SPEC_INDICATOR_IDS)


# --- field forms ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30m", 1800),
        ("4h", 4 * 3600),
        ("2d", 2 * 86400),
        ("1h30m", 5400),
        ("90s", 90),
        ("1w", 7 * 86400),
        ("1d 4h", 28 * 3600),
        (600, 600),
    ],
)
def test_durations(text: str | int, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["4x", "h", "", "1.5h", "0m", 0, -5, True, "30 minutes"])
def test_bad_durations_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_time_ranges() -> None:
    assert parse_day_hours("08:00-17:00") == ((time(8), time(17)),)
    assert parse_day_hours("13:00-17:00, 08:00-12:00") == (
        (time(8), time(12)),
        (time(13), time(17)),
    )
    # Adjacent ranges are one; 24:00 is the midnight that ends the day.
    assert parse_day_hours("00:00-12:00, 12:00-24:00") == ALL_DAY
    assert parse_day_hours("00:00-24:00") == ((time(0), None),)
    assert parse_day_hours("22:00-24:00") == ((time(22), None),)
    assert parse_day_hours(["08:00-12:00", "13:00-17:00"]) == parse_day_hours(
        "8:00-12:00,13:00-17:00"
    )
    assert parse_day_hours("closed") == ()


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("22:00-06:00", "ends before it starts"),
        ("09:00-09:00", "ends before it starts"),
        ("24:00-24:00", "24:00 only as an end"),
        ("08:00-12:00, 11:00-13:00", "overlap"),
        ("8-17", "use HH:MM"),
        ("08:00", "bad time range"),
        ("08:60-09:00", "bad time"),
    ],
)
def test_bad_time_ranges_are_refused(bad: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_day_hours(bad)


def test_days() -> None:
    assert parse_days("mon-fri") == (0, 1, 2, 3, 4)
    assert parse_days("sat,sun") == (5, 6)
    assert parse_days("Monday") == (0,)
    assert parse_days("fri-mon") == (4, 5, 6, 0)  # wraps over the weekend
    assert parse_days("mon-sun") == tuple(range(7))


# --- refusals name the line ---------------------------------------------------------------------


def test_yaml_syntax_error_names_its_line() -> None:
    err = refusal("""
        customers:
          - id: acme
            name: [ACME
        services: []
        """)
    assert err.message.startswith("cat.yaml:4: YAML syntax error")


def test_unknown_key_names_its_line_and_suggests_the_key() -> None:
    err = refusal("""
        sla_policies:
          - id: p1
            service: "*"
            response_target: 15m
            resolution_targt: 4h
        """)
    assert err.message == (
        "cat.yaml:5: sla_policies[0].resolution_targt: unknown key 'resolution_targt' "
        "(did you mean 'resolution_target'?)"
    )
    assert len(err.details) == 1  # the typo explains the missing resolution_target


def test_unknown_top_level_section_is_refused() -> None:
    err = refusal("""
        reporting_timezone: UTC
        sla_policy: []
        """)
    assert (
        err.message
        == "cat.yaml:2: sla_policy: unknown key 'sla_policy' (did you mean 'sla_policies'?)"
    )


def test_duplicate_id_names_the_second_one() -> None:
    err = refusal("""
        customers:
          - id: acme
          - id: globex
          - id: acme
        """)
    assert err.message == "cat.yaml:4: customers[2].id: duplicate id 'acme' (also customers[0])"


def test_duplicate_yaml_key_is_refused_not_overwritten() -> None:
    err = refusal("""
        customers:
          - id: acme
            name: ACME
            name: Acme Corp
        """)
    assert err.message == "cat.yaml:4: duplicate key 'name' (first on line 3)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            """
            customers: [{id: acme}]
            services:
              - id: email
                customer: acne
            """,
            "cat.yaml:4: services[0].customer: unknown customer 'acne' (did you mean 'acme'?)",
        ),
        (
            """
            sla_policies:
              - id: p3
                service: "*"
                response_target: 4h
                resolution_target: 3d
                calendar: ofice
            """,
            "cat.yaml:6: sla_policies[0].calendar: unknown calendar 'ofice' (known: 24x7)",
        ),
        (
            """
            sla_policies:
              - id: p1
                service: email
                response_target: 15m
                resolution_target: 4h
            """,
            "cat.yaml:3: sla_policies[0].service: unknown service 'email' "
            "(no service is defined; '*' means every service)",
        ),
    ],
)
def test_unknown_references_name_their_line(text: str, expected: str) -> None:
    assert refusal(text).message == expected


def test_bad_duration_names_its_line() -> None:
    err = refusal("""
        sla_policies:
          - id: p1
            service: "*"
            response_target: 15 min
            resolution_target: 4h
        """)
    assert err.message.startswith("cat.yaml:4: sla_policies[0].response_target: bad duration")


def test_bad_time_range_and_bad_day_name_their_lines() -> None:
    err = refusal("""
        calendars:
          - id: night
            timezone: UTC
            hours:
              mon-fri: "22:00-06:00"
              sonday: "10:00-12:00"
        """)
    assert err.message.startswith("cat.yaml:5: calendars[0].hours.mon-fri: time range")
    assert err.details[1].startswith("cat.yaml:6: calendars[0].hours.sonday: bad day 'sonday'")


def test_a_day_given_twice_is_refused() -> None:
    err = refusal("""
        calendars:
          - id: office
            timezone: UTC
            hours:
              mon-fri: "08:00-17:00"
              fri: "08:00-12:00"
        """)
    assert err.message == "cat.yaml:4: calendars[0].hours: fri is given twice ('mon-fri' and 'fri')"


@pytest.mark.parametrize(
    ("comparator", "target", "warning", "side"),
    [(">=", 0.95, 0.97, "below"), ("<=", 28800, 20000, "above"), (">=", 0.95, 0.95, "below")],
)
def test_warning_on_the_wrong_side_of_the_target(
    comparator: str, target: float, warning: float, side: str
) -> None:
    err = refusal(f"""
        objectives:
          - service: "*"
            indicator: incident_resolution_time_seconds
            comparator: "{comparator}"
            target: {target}
            warning: {warning}
        """)
    assert err.message.startswith(
        f"cat.yaml:6: objectives[0].warning: warning {warning:g} must be {side}"
    )


def test_unknown_indicator_names_its_line() -> None:
    err = refusal("""
        objectives:
          - service: "*"
            indicator: csat_scor
            comparator: ">="
            target: 4.2
        """)
    assert err.message == (
        "cat.yaml:3: objectives[0].indicator: unknown indicator 'csat_scor' "
        "(did you mean 'csat_score'?)"
    )


def test_custom_indicator_must_be_declared() -> None:
    objective = """
        objectives:
          - service: "*"
            indicator: training_hours
            comparator: ">="
            target: 40
        """
    assert "declare a custom one under measurements" in refusal(objective).message
    declared = (
        objective
        + """
        measurements:
          - {id: training_hours, unit: hours, direction: higher_is_better}
        """
    )
    assert parse_catalog(yaml(declared)).objectives[0].indicator == "training_hours"


# Measured neither per service nor per customer (calls and audits carry no service, SPEC §3):
# an objective on them is the organisation's.
ORGANISATION_WIDE = {
    "call_answer_ratio",
    "call_abandon_ratio",
    "call_handle_time_seconds",
    "call_logging_ratio",
    "cmdb_accuracy_ratio",
}


def test_every_spec_indicator_is_accepted_in_an_objective_of_its_scopes() -> None:
    for indicator in sorted(
        SPEC_INDICATOR_IDS - {"service_health_score", "service_objectives_met_ratio"}
    ):
        scopes = [""] if indicator in ORGANISATION_WIDE else ["service: '*', ", "customer: '*', "]
        for scope in scopes:
            parse_catalog(
                f"objectives: [{{{scope}indicator: {indicator}, comparator: '>=', target: 0}}]"
            )


@pytest.mark.parametrize(
    ("objective", "expected"),
    [
        (
            '{service: "*", indicator: call_answer_ratio, comparator: ">=", target: 0.9}',
            "cat.yaml:6: objectives[0].service: call_answer_ratio has no per-service value, so "
            "this objective could never be evaluated: name neither service nor customer for an "
            "organisation-wide objective",
        ),
        (
            '{customer: acme, indicator: cmdb_accuracy_ratio, comparator: ">=", target: 0.9}',
            "cat.yaml:6: objectives[0].customer: cmdb_accuracy_ratio has no per-customer value, "
            "so this objective could never be evaluated: name neither service nor customer for "
            "an organisation-wide objective",
        ),
        (
            '{indicator: service_availability_ratio, comparator: ">=", target: 0.99}',
            "cat.yaml:6: objectives[0].indicator: service_availability_ratio is measured per "
            'service: name `service: "*"` (each service) or a customer; an organisation-wide '
            "objective (neither named) is for an indicator measured per neither",
        ),
        (
            '{indicator: training_hours, comparator: ">=", target: 40}',
            "cat.yaml:6: objectives[0].indicator: training_hours is measured per service: name "
            '`service: "*"` (each service) or a customer; an organisation-wide objective '
            "(neither named) is for an indicator measured per neither",
        ),
        (
            '{service: erp, customer: acme, indicator: csat_score, comparator: ">=", target: 4}',
            "cat.yaml:6: objectives[0]: an objective is of a service or of a customer, not both "
            "(name one of them, or neither for an organisation-wide one)",
        ),
        (
            '{customer: acmee, indicator: csat_score, comparator: ">=", target: 4}',
            "cat.yaml:6: objectives[0].customer: unknown customer 'acmee' (did you mean 'acme'?)",
        ),
        (
            '{customer: acme, indicator: csat_score, window: year, comparator: ">=", target: 4}',
            "cat.yaml:6: objectives[0].window: input should be 'hour', 'day', 'week', 'month' or "
            "'quarter', got 'year'",
        ),
    ],
)
def test_an_objective_that_could_never_be_evaluated_is_refused_at_its_line(
    objective: str, expected: str
) -> None:
    err = refusal(f"""
        customers: [{{id: acme}}]
        services: [{{id: erp, customer: acme}}]
        measurements:
          - {{id: training_hours, unit: hours, direction: higher_is_better}}
        objectives:
          - {objective}
        """)
    assert err.message == expected


def test_objectives_of_a_customer_and_of_the_organisation() -> None:
    catalog = parse_catalog(
        yaml("""
        customers: [{id: acme}]
        services: [{id: erp, customer: acme}]
        measurements:
          - {id: training_hours, unit: hours, direction: higher_is_better}
        objectives:
          - {customer: acme, indicator: ci_outage_count, comparator: "<=", target: 3}
          - {customer: "*", indicator: training_hours, comparator: ">=", target: 40}
          - {indicator: call_answer_ratio, comparator: ">=", target: 0.9}
        """)
    )
    assert [o.scope for o in catalog.objectives] == ["customer", "customer", "organisation"]
    err = refusal("""
        objectives:
          - {indicator: call_answer_ratio, comparator: ">=", target: 0.9}
          - {indicator: call_answer_ratio, comparator: ">=", target: 0.8}
        """)
    assert err.message == (
        "cat.yaml:3: objectives[1]: objective call_answer_ratio per month for the organisation "
        "is already set by objectives[0]"
    )


def test_a_customer_id_is_never_the_wildcard() -> None:
    err = refusal("""
        customers: [{id: "*"}]
        """)
    assert err.message == (
        "cat.yaml:1: customers[0].id: '*' means every customer and cannot be a customer id"
    )


def test_ratio_targets_are_fractions() -> None:
    err = refusal("""
        objectives:
          - service: "*"
            indicator: incident_reopen_ratio
            comparator: ">="
            target: 90
        """)
    assert (
        err.message == "cat.yaml:5: objectives[0].target: target 90 of a ratio must be within 0..1"
    )


# --- the reporting time zone: ITSM_REPORTING_TIMEZONE owns it, the catalog may only repeat it ---
BERLIN = yaml("""
    customers: [{id: acme}]
    reporting_timezone: Europe/Berlin
    """)


def test_a_catalog_naming_another_reporting_time_zone_is_refused_at_its_line() -> None:
    with pytest.raises(CatalogError) as caught:
        parse_catalog(BERLIN, "cat.yaml", timezone="UTC")
    assert caught.value.message.startswith(
        "cat.yaml:2: reporting_timezone: Europe/Berlin differs from ITSM_REPORTING_TIMEZONE "
        "(UTC), which sets the time zone windows are aligned in: remove the key or make it UTC"
    )
    assert "itsm-metrics recompute --since" in caught.value.message


def test_a_matching_or_absent_reporting_time_zone_is_accepted() -> None:
    assert parse_catalog(BERLIN, timezone="Europe/Berlin").reporting_timezone == "Europe/Berlin"
    assert parse_catalog(SMALL, timezone="Europe/Berlin").reporting_timezone is None
    # reading a stored version back checks nothing (timezone=None): a running one is never refused
    assert parse_catalog(BERLIN).reporting_timezone == "Europe/Berlin"


def test_apply_refuses_another_zone_and_keeps_the_previous_catalog(engine: Engine) -> None:
    with engine.begin() as conn:
        good, _ = apply_catalog(conn, SMALL, "small.yaml", timezone="UTC")
    with (
        pytest.raises(CatalogError, match=r"^berlin.yaml:2: reporting_timezone"),
        engine.begin() as conn,
    ):
        apply_catalog(conn, BERLIN, "berlin.yaml", timezone="UTC")
    with engine.connect() as conn:
        assert active_catalog(conn) == good


def test_bad_time_zone_names_its_line() -> None:
    err = refusal("""
        reporting_timezone: UTC
        calendars:
          - id: office
            timezone: Europe/Berln
            hours: {mon-fri: "08:00-18:00"}
        """)
    assert err.message.startswith(
        "cat.yaml:4: calendars[0].timezone: unknown time zone 'Europe/Berln'"
    )


def test_every_problem_is_listed_in_line_order() -> None:
    err = refusal("""
        customers:
          - id: acme
        services:
          - id: email
            customer: nobody
          - id: email
            customer: acme
        """)
    assert [d.split(": ")[0] for d in err.details] == ["cat.yaml:5", "cat.yaml:6"]
    assert err.message == err.details[0]


def test_other_bad_shapes() -> None:
    assert (
        refusal("").message
        == "cat.yaml:1: the catalog is empty: expected customers, services, … (or {})"
    )
    assert refusal("- a\n").message.startswith("cat.yaml:1: expected a mapping")
    assert (
        refusal("customers: acme\n").message == "cat.yaml:1: customers: expected a list, got 'acme'"
    )
    assert refusal("customers:\n  - id: 2026\n").message == (
        "cat.yaml:2: customers[0].id: expected text, got 2026 (quote it in YAML)"
    )
    assert refusal(
        "calendars:\n  - {id: x, timezone: UTC, hours: {mon: '0-1'}, holidays: [2026-13-01]}\n"
    ).message == ("cat.yaml:2: bad value '2026-13-01': month must be in 1..12")
    assert refusal("settings: {drift_windows: 2}\n").message.startswith(
        "cat.yaml:1: settings.drift_windows: input should be greater than or equal to 4"
    )


def test_improvements_baseline_windows_default_4_and_bad_values_name_their_line() -> None:
    assert Catalog.default().improvements.baseline_windows == 4
    assert parse_catalog("improvements:\n").improvements.baseline_windows == 4
    assert parse_catalog("improvements: {baseline_windows: 6}\n").improvements.baseline_windows == 6
    assert refusal("customers: []\nimprovements:\n  baseline_windows: 0\n").message == (
        "cat.yaml:3: improvements.baseline_windows: input should be greater than or equal to 1, "
        "got 0"
    )
    assert refusal("improvements: {baseline_windows: '4'}\n").message == (
        "cat.yaml:1: improvements.baseline_windows: input should be a valid integer, got '4'"
    )
    assert refusal("improvements: {baseline_window: 4}\n").message == (
        "cat.yaml:1: improvements.baseline_window: unknown key 'baseline_window' "
        "(did you mean 'baseline_windows'?)"
    )


def test_the_example_schedules_team_and_customer_reviews() -> None:
    reviews = load_catalog(EXAMPLE).reviews
    assert {(r.kind, r.scope, r.every) for r in reviews} >= {
        ("team", ("assignment_group", "service-desk"), "week"),
        ("customer", ("customer", "acme"), "month"),
        ("customer", ("service", "erp"), "quarter"),
    }
    assert {r.level for r in reviews} <= {1, 2, 3, 4}


def test_review_schedule_defaults_and_forms() -> None:
    assert Catalog.default().reviews == ()
    assert parse_catalog("reviews:\n").reviews == ()
    (team,) = parse_catalog(
        yaml("""
        reviews:
          - {kind: team, level: 1, assignment_group: desk, every: week}
        """)
    ).reviews
    assert (team.scope, team.participants, team.grace_days) == (("assignment_group", "desk"), (), 5)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "{kind: customer, level: 5, customer: acme, every: month}",
            "cat.yaml:5: reviews[0].level: input should be less than or equal to 4, got 5",
        ),
        (
            "{kind: customer, level: 2, customer: acme, every: year}",
            "cat.yaml:5: reviews[0].every: input should be 'week', 'month' or 'quarter', "
            "got 'year'",
        ),
        (
            "{kind: meeting, level: 2, customer: acme, every: month}",
            "cat.yaml:5: reviews[0].kind: input should be 'customer' or 'team', got 'meeting'",
        ),
        (
            "{kind: customer, level: 2, every: month}",
            "cat.yaml:5: reviews[0]: a customer review needs a service or a customer (one of them)",
        ),
        (
            "{kind: customer, level: 2, customer: acme, service: email, every: month}",
            "cat.yaml:5: reviews[0]: a customer review needs a service or a customer (one of them)",
        ),
        (
            "{kind: customer, level: 2, assignment_group: desk, every: month}",
            "cat.yaml:5: reviews[0]: a customer review is of a service or a customer, not an "
            "assignment_group",
        ),
        (
            "{kind: team, level: 1, service: email, every: week}",
            "cat.yaml:5: reviews[0]: a team review is of an assignment_group, not a service or "
            "customer",
        ),
        (
            "{kind: team, level: 1, every: week}",
            "cat.yaml:5: reviews[0]: a team review needs an assignment_group",
        ),
        (
            "{kind: customer, level: 2, customer: initech, every: month}",
            "cat.yaml:5: reviews[0].customer: unknown customer 'initech' (known: acme)",
        ),
        (
            "{kind: customer, level: 2, service: emial, every: month}",
            "cat.yaml:5: reviews[0].service: unknown service 'emial' (did you mean 'email'?)",
        ),
        (
            "{kind: team, level: 1, assignment_group: desk, every: week, grace_day: 2}",
            "cat.yaml:5: reviews[0].grace_day: unknown key 'grace_day' (did you mean "
            "'grace_days'?)",
        ),
        (
            "{kind: team, level: 1, assignment_group: desk, every: week, grace_days: -1}",
            "cat.yaml:5: reviews[0].grace_days: input should be greater than or equal to 0, got -1",
        ),
    ],
)
def test_bad_scheduled_reviews_name_their_line(entry: str, message: str) -> None:
    text = (
        "customers: [{id: acme}]\n"
        "services: [{id: email, customer: acme}]\n"
        "reviews:\n"
        "  # the schedule\n"
        f"  - {entry}\n"
    )
    assert refusal(text).message == message


def test_a_review_scheduled_twice_is_refused_and_unlisted_scopes_pass() -> None:
    err = refusal("""
        reviews:
          - {kind: customer, level: 2, customer: acme, every: month}
          - {kind: customer, level: 3, customer: acme, every: quarter}
          - {kind: customer, level: 3, customer: acme, every: month}
        """)
    assert err.message == (
        "cat.yaml:4: reviews[2]: a customer review of customer 'acme' every month is already "
        "scheduled by reviews[0]"
    )
    # No customers listed: a schedule naming one is not refused (as with the api's checks).
    assert (
        len(
            parse_catalog("reviews: [{kind: customer, level: 2, customer: x, every: week}]").reviews
        )
        == 1
    )


def test_a_priority_covered_twice_for_one_service_is_refused() -> None:
    err = refusal("""
        sla_policies:
          - {id: all, service: "*", response_target: 1h, resolution_target: 8h}
          - {id: p1, service: "*", priorities: [1], response_target: 15m, resolution_target: 4h}
        """)
    assert err.message == (
        "cat.yaml:3: sla_policies[1].priorities: priority 1 of service '*' is already covered "
        "by policy 'all'"
    )


def test_response_target_longer_than_resolution_is_refused() -> None:
    err = refusal("""
        sla_policies:
          - {id: swapped, service: "*", response_target: 8h, resolution_target: 1h}
        """)
    assert "response target 8h is longer than the resolution target 1h" in err.message


def test_load_catalog_of_a_missing_file() -> None:
    with pytest.raises(CatalogError, match="does not exist"):
        load_catalog("/nonexistent/catalog.yaml")


# --- policy matching and calendars --------------------------------------------------------------


POLICIES = yaml("""
    customers: [{id: acme}]
    services: [{id: erp, customer: acme}, {id: email, customer: acme}]
    sla_policies:
      - {id: any-p1, service: "*", priorities: [1], response_target: 15m, resolution_target: 4h}
      - {id: any-rest, service: "*", priorities: [2, 3, 4], response_target: 4h,
         resolution_target: 3d}
      - {id: erp-p3, service: erp, priorities: [3], response_target: 2h, resolution_target: 1d}
      - {id: email-all, service: email, response_target: 1h, resolution_target: 1d}
    """)


@pytest.mark.parametrize(
    ("service", "priority", "expected"),
    [
        ("erp", 3, "erp-p3"),  # the service's own policy beats "*"
        ("erp", 1, "any-p1"),  # it covers only P3; "*" fills in
        ("crm", 2, "any-rest"),  # a service not in the catalog gets the "*" policies
        (None, 4, "any-rest"),
        ("email", 1, "email-all"),
        ("email", None, "email-all"),  # no priority: only a policy covering every priority
        ("erp", None, None),
    ],
)
def test_policy_for_picks_the_most_specific(
    service: str | None, priority: int | None, expected: str | None
) -> None:
    policy = policy_for(parse_catalog(POLICIES), service, priority)
    assert (policy.id if policy else None) == expected


def test_policy_for_ties_go_to_the_first_in_the_file() -> None:
    # Validation refuses overlapping policies of one service; a catalog built in code may still
    # hold them, and the rule stays deterministic.
    catalog = parse_catalog(POLICIES)
    first = catalog.sla_policies[0]
    twin = first.model_copy(update={"id": "twin"})
    tied = catalog.model_copy(update={"sla_policies": (first, twin)})
    assert policy_for(tied, "erp", 1) is first


def test_calendar_converts_to_the_sla_clock_calendar() -> None:
    catalog = parse_catalog(
        yaml("""
        calendars:
          - id: support
            timezone: Europe/Berlin
            hours:
              mon-fri: "08:00-12:00, 13:00-17:00"
              sat: "09:00-12:00"
              sun: closed
            holidays:
              - 2026-12-25
              - {date: "2026-12-26", name: 2. Weihnachtstag}
          - id: night
            timezone: UTC
            hours:
              fri: "22:00-24:00"
              sat: "00:00-24:00"
        """)
    )
    support = catalog.calendar("support")
    assert support is not None
    split = ((time(8), time(12)), (time(13), time(17)))
    assert support.business_calendar() == BusinessCalendar(
        tz=ZoneInfo("Europe/Berlin"),
        weekly={0: split, 1: split, 2: split, 3: split, 4: split, 5: ((time(9), time(12)),)},
        holidays=frozenset({date(2026, 12, 25), date(2026, 12, 26)}),
    )
    night = catalog.calendar("night")
    assert night is not None
    assert night.business_calendar().weekly == {4: ((time(22), None),), 5: ALL_DAY}
    builtin = catalog.calendar("24x7")
    assert builtin is not None and builtin.business_calendar() == BusinessCalendar.always()


def test_the_example_p3_deadline_skips_office_closures_and_easter() -> None:
    catalog = load_catalog(EXAMPLE)
    p3 = policy_for(catalog, "email", 3)
    assert p3 is not None
    office = catalog.calendar(p3.calendar)
    assert office is not None
    berlin = ZoneInfo("Europe/Berlin")
    opened = datetime(2026, 4, 2, 16, 0, tzinfo=berlin)  # Thursday before Easter
    # 30 office hours: Thu 16-18 (2 h); Good Friday, the weekend and Easter Monday closed;
    # Tue 7 April 10 h (12), Wed 10 h (22), Thu 9 April 08:00 + 8 h = 16:00 (30).
    due = deadline(office.business_calendar(), opened, p3.resolution_target.total_seconds())
    assert due == datetime(2026, 4, 9, 16, 0, tzinfo=berlin)


# --- storage -------------------------------------------------------------------------------------


SMALL = yaml("""
    customers: [{id: acme}]
    services: [{id: email, customer: acme}]
    """)


def test_apply_makes_the_catalog_active(engine: Engine) -> None:
    with engine.begin() as conn:
        assert active_catalog(conn) == Catalog.default()
        assert active_version(conn) is None
        catalog, changed = apply_catalog(conn, SMALL, "small.yaml")
    assert changed
    with engine.connect() as conn:
        assert active_catalog(conn) == catalog
        version = active_version(conn)
    assert version is not None and version.source == "small.yaml" and version.active


def test_the_same_text_again_changes_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        apply_catalog(conn, SMALL, "small.yaml")
    with engine.begin() as conn:
        _, changed = apply_catalog(conn, SMALL, "elsewhere/small.yaml")
        count = conn.execute(select(func.count()).select_from(catalog_versions)).scalar()
    assert not changed
    assert count == 1


def test_an_invalid_catalog_leaves_the_previous_one_active(engine: Engine) -> None:
    with engine.begin() as conn:
        good, _ = apply_catalog(conn, SMALL, "small.yaml")
    with (
        pytest.raises(CatalogError, match=r"^bad.yaml:2: services\[0\].customer"),
        engine.begin() as conn,
    ):
        apply_catalog(conn, "services:\n  - {id: email, customer: nobody}\n", "bad.yaml")
    with engine.connect() as conn:
        assert active_catalog(conn) == good
        assert len(catalog_history(conn)) == 1


def test_history_lists_versions_newest_first_with_one_active(engine: Engine) -> None:
    texts = [SMALL, EXAMPLE.read_text(), SMALL]  # going back to an earlier text is a new version
    for i, text in enumerate(texts):
        with engine.begin() as conn:
            _, changed = apply_catalog(conn, text, f"v{i}.yaml")
            assert changed
    with engine.connect() as conn:
        history = catalog_history(conn, limit=10)
        assert [v.source for v in history] == ["v2.yaml", "v1.yaml", "v0.yaml"]
        assert [v.active for v in history] == [True, False, False]
        assert history[0].sha256 == history[2].sha256 != history[1].sha256
        assert [v.source for v in catalog_history(conn, limit=1)] == ["v2.yaml"]
