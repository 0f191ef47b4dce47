"""The histories of the customer review (issue 11: "the previous period and the trend", trend
lines on the page): each objective's and key figure's last `history` periods, hand-computed over
customer_review_data.py (June to October 2026; May empty), equal to `GET /v1/indicators/{id}`,
read once per figure whatever their length, and drawn as escaped inline SVG lines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

from services.api.reviews.customer_example import EXAMPLE
from services.api.reviews.customer_schemas import CustomerReview
from tests.api.customer_review_data import HOSTILE_SERVICE, OCTOBER, READ, served

MONTHS = ["2026-05", "2026-06", "2026-07", "2026-08", "2026-09", "2026-10"]


@pytest.fixture(scope="module")
def app(postgres: Any) -> Iterator[tuple[TestClient, Engine]]:
    with served(postgres) as found:
        yield found


@pytest.fixture(scope="module")
def client(app: tuple[TestClient, Engine]) -> TestClient:
    return app[0]


def get(client: TestClient, **params: str) -> Any:
    resp = client.get("/v1/reviews/customer", params=params, headers=READ)
    assert resp.status_code == 200, resp.text
    return resp.json() if params.get("format") != "html" else resp.text


@pytest.fixture(scope="module")
def acme(client: TestClient) -> dict[str, Any]:
    review: dict[str, Any] = get(client, customer="acme", period="2026-10")
    return review


def series(history: list[dict[str, Any]], *keys: str) -> list[tuple[Any, ...]]:
    return [tuple(p[k] for k in keys) for p in history]


def approx(x: float) -> Any:
    return pytest.approx(x, rel=1e-9)


# --- hand-computed ------------------------------------------------------------------------------


def test_each_objective_has_six_months_of_values_and_stored_statuses(acme: dict[str, Any]) -> None:
    got = {(i["service"] or i["customer"], i["indicator"]): i["history"] for i in acme["sla"]}
    csat = got[("email", "csat_score")]
    assert [p["period"] for p in csat] == MONTHS
    # May nothing; June 5; July 4; August no survey; September 3; October (5 + 4) / 2. >= 4 is
    # met; the aggregator evaluated no May window (no event), and August's without a value
    assert series(csat, "value", "count", "status") == [
        (None, 0, "no_data"),
        (5.0, 1, "met"),
        (4.0, 1, "met"),
        (None, 0, "no_data"),
        (3.0, 1, "breached"),
        (4.5, 2, "met"),
    ]
    # majors of email: M0 in August, M1 in October (<= 0 met, 1 warning); a count is 0 without
    # one, May too (as the indicator API fills it), but May has no stored status
    assert series(got[("email", "major_incident_count")], "value", "status") == [
        (0.0, "no_data"),
        (0.0, "met"),
        (0.0, "met"),
        (1.0, "warning"),
        (0.0, "met"),
        (1.0, "warning"),
    ]
    assert series(got[("web", "major_incident_count")], "value") == [(0.0,)] * 6
    # acme's own objective, on its CIs' outages: A1 of CI-MAIL in October only (<= 0 met,
    # 1 warning); May has no stored status
    assert series(got[("acme", "ci_outage_count")], "value", "status") == [
        (0.0, "no_data"),
        (0.0, "met"),
        (0.0, "met"),
        (0.0, "met"),
        (0.0, "met"),
        (1.0, "warning"),
    ]
    assert (csat[0]["start"], csat[0]["end"]) == ("2026-05-01T00:00:00Z", "2026-06-01T00:00:00Z")
    assert (csat[-1]["start"], csat[-1]["end"]) == ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")


def test_the_key_figures_have_six_months(acme: dict[str, Any]) -> None:
    perf = acme["service_performance"]
    # email + web; August: M0 (priority 1) down 4 h of email's 31 days; October: M1 2 h; June
    # and July: up (their windows were computed: a survey, tickets); May: no window computed
    assert series(perf["availability"]["history"], "value", "count") == [
        (None, 0),
        (1.0, 2),
        (1.0, 2),
        (approx(1 - 14400 / (2 * OCTOBER)), 2),
        (1.0, 2),
        (approx(1 - 7200 / (2 * OCTOBER)), 2),
    ]
    # incidents resolved: July J1 10800 and J2 3600 → 7200; August M0 14400; September S1 7200;
    # October M1 7200, I1 14400, W1 3600 → 8400 (service requests are not incidents)
    assert series(perf["incident_resolution_time"]["history"], "value", "count") == [
        (None, 0),
        (None, 0),
        (7200.0, 2),
        (14400.0, 1),
        (7200.0, 1),
        (8400.0, 3),
    ]
    # acme's surveys: June 5, July 4, September 3, October 5, 4 (email) and 2 (web)
    assert series(acme["satisfaction"]["csat"]["history"], "value", "count") == [
        (None, 0),
        (5.0, 1),
        (4.0, 1),
        (None, 0),
        (3.0, 1),
        (approx(11 / 3), 3),
    ]
    # opened: July J1 J2; August M0 R0; September S1; October M1 I1 I2 R1 PB1 W1. Resolved the
    # same but October's I2 and PB1. A count with nothing to count is 0.
    opened, resolved = acme["workload"]["opened"], acme["workload"]["resolved"]
    assert series(opened["history"], "value") == [(v,) for v in (0.0, 0.0, 2.0, 2.0, 1.0, 6.0)]
    assert series(resolved["history"], "value") == [(v,) for v in (0.0, 0.0, 2.0, 2.0, 1.0, 4.0)]
    # the history ends with the figure's own value and previous
    for f in (perf["availability"], perf["incident_resolution_time"], opened, resolved):
        assert (f["history"][-1]["value"], f["history"][-2]["value"]) == (f["value"], f["previous"])


def test_history_follows_the_parameter_and_the_period_kind(client: TestClient) -> None:
    one = get(client, customer="acme", period="2026-10", history="1")
    assert [p["period"] for p in one["workload"]["opened"]["history"]] == ["2026-10"]
    assert one["workload"]["opened"]["previous"] == 1.0  # the previous period is still read
    assert [p["period"] for p in one["sla"][0]["history"]] == ["2026-10"]
    year = get(client, customer="acme", period="2026-10", history="12")
    opened = year["workload"]["opened"]["history"]
    assert [p["period"] for p in opened][:2] == ["2025-11", "2025-12"] and len(opened) == 12
    # weeks 40–42 of 2026 (28 September – 18 October): W42 has M1 and PB1
    week = get(client, customer="acme", period="2026-W42", history="3")
    points = week["workload"]["opened"]["history"]
    assert series(points, "period", "start") == [
        ("2026-W40", "2026-09-28T00:00:00Z"),
        ("2026-W41", "2026-10-05T00:00:00Z"),
        ("2026-W42", "2026-10-12T00:00:00Z"),
    ]
    # W40: I1 (2 Oct); W41: R1 (5th), W1 (8th); W42: M1 (14th), PB1 (15th)
    assert series(points, "value") == [(1.0,), (2.0,), (2.0,)]
    # quarters: Q2 nothing; Q3 J1 J2 M0 R0 S1; Q4 the six of October
    quarter = get(client, customer="acme", period="2026-Q4", history="3")
    assert series(quarter["workload"]["opened"]["history"], "period", "value") == [
        ("2026-Q2", 0.0),
        ("2026-Q3", 5.0),
        ("2026-Q4", 6.0),
    ]


@pytest.mark.parametrize("history", ["0", "13", "six"])
def test_history_out_of_bounds_is_422(client: TestClient, history: str) -> None:
    params = {"customer": "acme", "period": "2026-10", "history": history}
    resp = client.get("/v1/reviews/customer", params=params, headers=READ)
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == "validation_error"
    assert [d["loc"] for d in error["details"]] == [["query", "history"]]


# --- one source of truth, read in one go ------------------------------------------------------


def histories(review: dict[str, Any]) -> Iterator[tuple[str, dict[str, str], list[Any]]]:
    """(indicator, filters, history) of every history in a review."""
    for item in review["sla"]:
        of = {"service": item["service"]} if item["service"] else {"customer": item["customer"]}
        yield item["indicator"], of, item["history"]
    perf, workload = review["service_performance"], review["workload"]
    figures = [perf["availability"], perf["incident_resolution_time"], workload["opened"]]
    for f in [*figures, workload["resolved"], review["satisfaction"]["csat"]]:
        yield f["indicator"], f["filters"], f["history"]


@pytest.mark.parametrize("scope", [{"customer": "acme"}, {"service": "email"}])
def test_every_history_point_is_the_indicator_apis(
    client: TestClient, scope: dict[str, str]
) -> None:
    review = get(client, **scope, period="2026-10")
    seen = 0
    for indicator, filters, history in histories(review):
        resp = client.get(
            f"/v1/indicators/{indicator}",
            params={"window": "month", "start": history[0]["start"], "end": history[-1]["end"],
                    **filters},
            headers=READ,
        )  # fmt: skip
        assert resp.status_code == 200, resp.text
        api = {p["window_start"]: p for p in resp.json()["points"] if p["dimensions"] == filters}
        for point in history:
            p = api.get(point["start"])
            expected = (p["value"], p["count"], p["window_end"]) if p else (None, 0, point["end"])
            assert (point["value"], point["count"], point["end"]) == expected, (indicator, point)
            seen += p is not None
    assert seen >= 30


def test_a_history_is_one_read_per_figure_whatever_its_length(
    app: tuple[TestClient, Engine],
) -> None:
    client, engine = app
    statements = 0

    def count(*args: Any) -> None:
        nonlocal statements
        statements += 1

    get(client, customer="acme", period="2026-10", history="2")  # warm the catalog cache
    executed = {}
    event.listen(engine, "before_cursor_execute", count)
    try:
        for history in ("2", "12"):
            statements = 0
            get(client, customer="acme", period="2026-10", history=history)
            executed[history] = statements
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # two periods are what the figures read anyway; twelve cost not one statement more
    assert executed["2"] == executed["12"] > 0


# --- the page ------------------------------------------------------------------------------------


def chart(page: str, caption: str) -> str:
    """The figure (caption and SVG) of the page whose caption is `caption`."""
    (found,) = [f for f in page.split("<figure>")[1:] if f.startswith(f"<figcaption>{caption}<")]
    return found.split("</figure>")[0]


def test_the_page_draws_a_trend_line_per_objective_and_key_figure(client: TestClient) -> None:
    page = get(client, customer="acme", period="2026-10", format="html")
    assert page.count("<figure>") == 4 + 5  # the four objectives, the five key figures
    assert "<h3>Over the last 6 months</h3>" in page
    csat = chart(page, "email · csat_score &gt;= 4")
    assert all(f">{month}</text>" in csat for month in MONTHS)  # every period labelled
    assert csat.count('stroke-dasharray="4 3"') == 1 and "target 4</text>" in csat
    # June, July, October met (green), September breached (red); May and August: no point
    assert csat.count("<circle") == 4
    assert csat.count('fill="#1a7f37"') == 3 and csat.count('fill="#cf222e"') == 1
    assert csat.count("<polyline") == 2  # June–July, September–October: a gap for August
    assert "<title>2026-09: 3 (breached)</title>" in csat
    satisfaction = chart(page, "Satisfaction (mean score)")
    assert satisfaction.count("<circle") == 4 and satisfaction.count("<polyline") == 2
    # durations in hours: August's 14400 s is the top of the axis
    assert ">4</text>" in chart(page, "Mean time to resolve incidents (hours)")
    # an availability is not drawn from 0: its axis ends below August's 0.99731
    assert ">0.997</text>" in chart(page, "Availability")
    assert "table, svg, dl, figure { break-inside: avoid; }" in page  # in print


def test_a_service_named_with_markup_is_escaped_in_the_page_and_its_charts(
    client: TestClient,
) -> None:
    review = get(client, service=HOSTILE_SERVICE, period="2026-10")
    assert [i["service"] for i in review["sla"]] == [HOSTILE_SERVICE]  # as data in JSON
    page = get(client, service=HOSTILE_SERVICE, period="2026-10", format="html")
    assert "<script" not in page.lower()
    escaped = "&lt;script&gt;alert(&quot;svc&quot;)&lt;/script&gt;"
    line = chart(page, f"{escaped} · major_incident_count &lt;= 0")
    assert line.count("<circle") == 6  # a count: 0 in every month


def test_the_openapi_example_is_a_review_and_the_parameter_is_documented(
    client: TestClient,
) -> None:
    example = CustomerReview.model_validate(EXAMPLE)
    assert example.sla[0].history[0].status == "no_data"
    spec = client.get("/openapi.json").json()
    (param,) = [
        p for p in spec["paths"]["/v1/reviews/customer"]["get"]["parameters"]
        if p["name"] == "history"
    ]  # fmt: skip
    assert (param["schema"]["minimum"], param["schema"]["maximum"]) == (1, 12)
    assert param["schema"]["default"] == 6
