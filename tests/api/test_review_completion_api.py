"""`review_completion_ratio` through the api (SPEC §7.3): a recorded review marks its deadline
dirty and the next aggregation counts it; the clock passing a deadline counts it with no
request; its value is what `GET /v1/reviews/schedule` says for the same instant; an objective on
it is listed by `GET /v1/objectives`. Aggregator and api share a fixed clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from services.api.app import create_app
from services.catalog import apply_catalog
from shared.db import make_engine
from shared.settings import Settings
from tests.aggregator.test_review_completion import CATALOG
from tests.conftest import make_settings
from tests.helpers import Clock, aggregate, aggregator, utc

ID = "review_completion_ratio"
# The catalog of the aggregator tests (tests/aggregator/test_review_completion.py). Deadlines
# (in UTC): acme's September review 6 Oct, October's 6 Nov; erp's 11 Oct and 11 Nov;
# desk's weeks every Wednesday 00:00 (W40 7 Oct … W43 28 Oct, W44 4 Nov).
MANAGE = {"Authorization": "Bearer manage-secret"}


@pytest.fixture
def zone() -> str:
    return "UTC"


@pytest.fixture
def settings(db_url: str, zone: str) -> Settings:
    # no broker (reviews are records); hours kept for 3 days only: two months of windows stay
    # cheap to compute
    return make_settings(
        db_url,
        "127.0.0.1:9",
        manage_token="manage-secret",
        reporting_timezone=zone,
        hour_retention_days=3,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(utc(2026, 11, 3, 10))  # a Tuesday


@pytest.fixture
def engine(settings: Settings, clock: Clock) -> Iterator[Engine]:
    eng = make_engine(settings.require_database_url())
    with eng.begin() as conn:
        apply_catalog(conn, CATALOG, "test", now=clock.now)
    yield eng
    eng.dispose()


@pytest.fixture
def client(settings: Settings, engine: Engine, clock: Clock) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine, clock=clock)) as c:
        yield c


def record(client: TestClient, period: str, held_at: str, **scope: str) -> dict[str, Any]:
    kind = "team" if "assignment_group" in scope else "customer"
    body = {
        "kind": kind,
        "level": 1,
        "period": period,
        "held_at": held_at,
        "participants": ["lead"],
        "recorded_by": "lead",
        **scope,
    }
    resp = client.post("/v1/reviews", json=body, headers=MANAGE)
    assert resp.status_code == 201, resp.text
    made: dict[str, Any] = resp.json()
    return made


def month(client: TestClient, start: str, end: str, **params: str) -> list[tuple[Any, ...]]:
    resp = client.get(
        f"/v1/indicators/{ID}", params={"window": "month", "start": start, "end": end, **params}
    )
    assert resp.status_code == 200, resp.text
    return [(p["dimensions"], p["value"], p["count"]) for p in resp.json()["points"]]


OCTOBER = ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")
NOVEMBER = ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")


def test_a_recorded_review_marks_its_deadline_and_the_next_aggregation_counts_it(
    client: TestClient, engine: Engine, settings: Settings, clock: Clock
) -> None:
    aggregate(engine, settings, clock)
    # October: acme's September, erp's September, desk's W40-W43 due, none held → 0 / 6
    assert month(client, *OCTOBER) == [({}, 0.0, 6)]
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM dirty_windows"))
    record(client, "2026-W42", "2026-10-19T10:00:00Z", assignment_group="desk")
    with engine.connect() as conn:
        marks = conn.execute(
            text("SELECT scope, lane, range_start, range_end FROM dirty_windows")
        ).all()
    deadline = utc(2026, 10, 21)  # W42 ends Monday 19 October, 2 days' grace
    assert [tuple(m) for m in marks] == [("review", "point", deadline, deadline)]
    aggregate(engine, settings, clock)
    assert month(client, *OCTOBER) == [({}, pytest.approx(1 / 6), 6)]
    assert month(client, *OCTOBER, review_kind="team") == [
        ({"review_kind": "team"}, 0.25, 4)  # W42 of W40-W43
    ]


def test_the_clock_passing_a_deadline_counts_it_without_a_request(
    client: TestClient, engine: Engine, settings: Settings, clock: Clock
) -> None:
    # acme's October review, held on 2 November: its deadline (6 Nov) is ahead, no sample yet
    record(client, "2026-10", "2026-11-02T10:00:00Z", customer="acme")
    aggregate(engine, settings, clock)
    assert month(client, *NOVEMBER) == []
    # the clock refresh, three days later, marks the time it passed, as the aggregator's
    # scheduled job does every ITSM_AGGREGATOR_REFRESH_SECONDS
    since, clock.now = clock.now, utc(2026, 11, 6, 12)
    aggregator(engine, settings, clock).refresh_current(since, clock.now)
    aggregate(engine, settings, clock)
    # November so far: desk W44 due 4 Nov (not held) 0, acme's October due 6 Nov (held) 1
    assert month(client, *NOVEMBER) == [({}, 0.5, 2)]
    assert month(client, *NOVEMBER, customer="acme") == [({"customer": "acme"}, 1.0, 1)]


def test_an_objective_on_it_is_listed_with_its_status(
    client: TestClient, engine: Engine, settings: Settings, clock: Clock
) -> None:
    record(client, "2026-09", "2026-10-05T10:00:00Z", service="erp")  # due 11 Oct: on time
    aggregate(engine, settings, clock)
    resp = client.get("/v1/objectives", params={"service": "erp", "window": "month"})
    assert resp.status_code == 200, resp.text
    [objective] = resp.json()["objectives"]
    assert (objective["indicator"], objective["target"]) == (ID, 0.9)
    # November: erp's October review is due on 11 November, nothing to count yet
    assert (objective["current"]["value"], objective["current"]["status"]) == (None, "no_data")
    # October: its September review, held on time: 1 ≥ 0.9
    assert (objective["previous"]["value"], objective["previous"]["status"]) == (1.0, "met")


def _expected_from_schedule(
    client: TestClient, at: datetime, start: datetime, end: datetime
) -> tuple[int, int]:
    """(held on time, due) over the periods whose deadline lies in [start, end) and has passed
    at `at`, as GET /v1/reviews/schedule shows them."""
    schedule = client.get(
        "/v1/reviews/schedule", params={"at": at.isoformat(), "periods": 24}
    ).json()
    due = on_time = 0
    for entry in schedule["entries"]:
        for p in entry["periods"]:
            until = datetime.fromisoformat(p["due_until"])
            if not (start <= until < end and until <= at):
                continue
            due += 1
            if p["review_id"] is not None:
                review = client.get(f"/v1/reviews/{p['review_id']}").json()
                on_time += datetime.fromisoformat(review["held_at"]) < until
    return on_time, due


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_its_value_is_what_the_schedule_says_at_the_same_instant(
    client: TestClient, engine: Engine, settings: Settings, clock: Clock, zone: str
) -> None:
    for period, held_at, scope in [
        ("2026-08", "2026-09-08T10:00:00Z", {"customer": "acme"}),  # late
        ("2026-09", "2026-10-02T10:00:00Z", {"customer": "acme"}),
        ("2026-08", "2026-08-28T10:00:00Z", {"service": "erp"}),  # before August ended
        ("2026-W37", "2026-09-15T10:00:00Z", {"assignment_group": "desk"}),
        ("2026-W41", "2026-10-13T22:00:00Z", {"assignment_group": "desk"}),  # 14 Oct 00:00 CEST
        ("2026-W42", "2026-10-20T22:30:00Z", {"assignment_group": "desk"}),
        ("2026-W43", "2026-10-27T23:30:00Z", {"assignment_group": "desk"}),  # after 00:00 CET
        ("2026-10", "2026-11-02T10:00:00Z", {"customer": "acme"}),  # not yet due
    ]:
        record(client, period, held_at, **scope)
    aggregate(engine, settings, clock)
    reads = 0
    for first, last in [("2026-09", "2026-10"), ("2026-10", "2026-11"), ("2026-11", "2026-12")]:
        start = _local_month(first, zone)
        end = _local_month(last, zone)
        on_time, due = _expected_from_schedule(client, clock.now, start, end)
        got = month(client, start.isoformat(), end.isoformat())
        expected = [({}, pytest.approx(on_time / due), due)] if due else []
        assert got == expected, (zone, first)
        reads += due
    assert reads == 13  # September 7 and October 6 deadlines in either zone, none in November


def _local_month(label: str, zone: str) -> datetime:
    from zoneinfo import ZoneInfo

    from shared.periods import parse_period

    return parse_period(label).start(ZoneInfo(zone))
