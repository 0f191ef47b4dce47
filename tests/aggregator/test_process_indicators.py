"""Process indicators of the slice (SPEC §5.2) on real PostgreSQL, hand-computed."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests.helpers import aggregate, points, store, ticket_event, utc

DAY5 = utc(2026, 10, 5)
DAY4 = utc(2026, 10, 4)
OCT = utc(2026, 10, 1)


@pytest.fixture
def october(engine: Engine) -> Engine:
    """INC1 email p2 09:00→10:00 (3600 s); INC2 email p3 09:30→11:30 (7200 s);
    INC3 erp p2 opened 10:00, open; SR1 email p4 service request 10:00→10:30;
    INC4 erp p2 opened 10-04 22:00, resolved 10-05 01:00 (10800 s)."""
    e = ticket_event
    store(
        engine,
        [
            e("INC1", utc(2026, 10, 5, 9), "new", service="email", priority=2),
            e("INC1", utc(2026, 10, 5, 9, 10), "assigned", assignment_group="desk"),
            e("INC1", utc(2026, 10, 5, 10), "resolved"),
            e("INC2", utc(2026, 10, 5, 9, 30), "new", service="email", priority=3),
            e("INC2", utc(2026, 10, 5, 11, 30), "resolved"),
            e("INC3", utc(2026, 10, 5, 10), "new", service="erp", priority=2),
            e(
                "SR1",
                utc(2026, 10, 5, 10),
                "new",
                service="email",
                priority=4,
                kind="service_request",
            ),
            e("SR1", utc(2026, 10, 5, 10, 30), "resolved"),
            e("INC4", utc(2026, 10, 4, 22), "new", service="erp", priority=2),
            e("INC4", utc(2026, 10, 5, 1), "resolved"),
        ],
    )
    aggregate(engine)
    return engine


def test_opened_count_per_day_service_and_kind(october: Engine) -> None:
    # 10-05: INC1, INC2, INC3, SR1 = 4; email: INC1, INC2, SR1 = 3; erp: INC3 = 1
    assert points(october, "ticket_opened_count", "day", DAY5)["value"] == 4
    assert points(october, "ticket_opened_count", "day", DAY5, service="email")["value"] == 3
    assert points(october, "ticket_opened_count", "day", DAY5, service="erp")["value"] == 1
    assert points(october, "ticket_opened_count", "day", DAY5, kind="service_request")["value"] == 1
    assert points(october, "ticket_opened_count", "day", DAY5, kind="incident")["value"] == 3
    # 10-04: INC4 only
    assert points(october, "ticket_opened_count", "day", DAY4)["value"] == 1
    # October: all five
    assert points(october, "ticket_opened_count", "month", OCT)["value"] == 5


def test_resolved_count_lands_in_the_resolution_window(october: Engine) -> None:
    # 10-05: INC1, INC2, SR1, INC4 (opened the day before) = 4; 10-04: nothing resolved
    assert points(october, "ticket_resolved_count", "day", DAY5)["value"] == 4
    assert (
        points(october, "ticket_resolved_count", "day", DAY5, service="erp", priority="2")["value"]
        == 1
    )
    # nothing resolved on 10-04: no stored point (the api presents it as 0)
    assert points(october, "ticket_resolved_count", "day", DAY4) is None


def test_resolution_time_mean_and_percentiles(october: Engine) -> None:
    # incidents resolved 10-05: 3600, 7200, 10800 (SR1 is not an incident)
    # mean 7200; p50 7200; p90 = 7200 + 0.8 × 3600 = 10080 (percentile_cont, position 1.8)
    p = points(october, "incident_resolution_time_seconds", "day", DAY5)
    assert p == {"value": 7200.0, "count": 3, "p50": 7200.0, "p90": 10080.0}
    # email: 3600, 7200 → mean 5400, p90 = 3600 + 0.9 × 3600 = 6840
    p = points(october, "incident_resolution_time_seconds", "day", DAY5, service="email")
    assert p == {"value": 5400.0, "count": 2, "p50": 5400.0, "p90": 6840.0}
    # priority 2: INC1 3600, INC4 10800 → mean 7200
    p = points(october, "incident_resolution_time_seconds", "day", DAY5, priority="2")
    assert (p["value"], p["count"]) == (7200.0, 2)


def test_empty_window_has_no_value_not_zero(october: Engine) -> None:
    # nothing was resolved on 10-04: the duration has no point at all
    assert points(october, "incident_resolution_time_seconds", "day", DAY4) is None


def test_ticket_without_service_is_grouped_as_unknown(engine: Engine) -> None:
    store(engine, [ticket_event("X1", utc(2026, 10, 5, 9), "new")])
    aggregate(engine)
    assert points(engine, "ticket_opened_count", "day", DAY5, service="unknown")["value"] == 1


def test_reopened_ticket_counts_once_in_resolution_window(engine: Engine) -> None:
    e = ticket_event
    store(engine, [e("R1", utc(2026, 10, 5, 9), "new"), e("R1", utc(2026, 10, 5, 10), "resolved")])
    aggregate(engine)
    assert points(engine, "ticket_resolved_count", "day", DAY5)["value"] == 1
    # reopened on the 6th and resolved again: the 5th loses it, the 6th has it
    store(
        engine,
        [
            e("R1", utc(2026, 10, 6, 8), "in_progress", event_type="itsm.ticket.reopened"),
            e("R1", utc(2026, 10, 6, 9), "resolved"),
        ],
    )
    aggregate(engine)
    assert points(engine, "ticket_resolved_count", "day", DAY5) is None  # emptied
    assert points(engine, "ticket_resolved_count", "day", utc(2026, 10, 6))["value"] == 1
    # resolution time measured to the last resolution: 10-05 09:00 → 10-06 09:00 = 86400 s
    p = points(engine, "incident_resolution_time_seconds", "day", utc(2026, 10, 6))
    assert (p["value"], p["count"]) == (86400.0, 1)


def test_late_event_recomputes_its_old_window(engine: Engine) -> None:
    e = ticket_event
    store(engine, [e("L1", utc(2026, 10, 5, 9), "new")])
    aggregate(engine)
    # a resolution arriving much later, for a window of a year ago, for another ticket
    store(engine, [e("OLD", utc(2025, 3, 2, 9), "new"), e("OLD", utc(2025, 3, 2, 12), "resolved")])
    # the ticket was open 09:00–12:00: hours 09, 10, 11, 12 with their day (one unit of work),
    # plus the week, the month and the quarter of 2025-03-02 = 4 units; nothing of October again
    assert aggregate(engine) == 4
    for h in (9, 10):  # in the backlog at the end of these hours (resolved at 12:00)
        assert points(engine, "incident_backlog_count", "hour", utc(2025, 3, 2, h)) is not None
    p = points(engine, "incident_resolution_time_seconds", "month", utc(2025, 3, 1))
    assert (p["value"], p["count"]) == (3 * 3600.0, 1)


def test_out_of_order_events_give_the_same_values(engine: Engine) -> None:
    e = ticket_event
    events = [
        e("O1", utc(2026, 10, 5, 9), "new", service="email", priority=1),
        e("O1", utc(2026, 10, 5, 9, 5), "assigned"),
        e("O1", utc(2026, 10, 5, 9, 45), "resolved"),
    ]
    store(engine, [events[2]])
    store(engine, [events[0]])
    store(engine, [events[1]])
    aggregate(engine)
    p = points(engine, "incident_resolution_time_seconds", "day", DAY5, service="email")
    assert (p["value"], p["count"]) == (45 * 60.0, 1)


def test_duplicates_count_once(engine: Engine) -> None:
    ev = ticket_event("D1", utc(2026, 10, 5, 9), "new")
    store(engine, [ev, ev])
    store(engine, [ev])
    aggregate(engine)
    assert points(engine, "ticket_opened_count", "day", DAY5)["value"] == 1
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 1


def test_windows_follow_the_reporting_time_zone(engine: Engine) -> None:
    from shared.settings import Settings

    # 2026-10-31 16:00 UTC is 2026-11-01 01:00 in Tokyo: a November ticket there
    store(engine, [ticket_event("TZ1", utc(2026, 10, 31, 16), "new")])
    aggregate(engine, Settings(_env_file=None, reporting_timezone="Asia/Tokyo"))  # type: ignore[call-arg]
    november_tokyo = utc(2026, 10, 31, 15)  # 2026-11-01 00:00 +09:00
    assert points(engine, "ticket_opened_count", "month", november_tokyo)["value"] == 1


def stored_keys(engine: Engine, indicator: str, kind: str, start: object) -> dict[str, float]:
    """dim_keys|dimensions → value of the stored points of one window."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT dim_keys, dimensions, value FROM indicator_points "
                "WHERE indicator = :i AND window_kind = :k AND window_start = :s"
            ),
            {"i": indicator, "k": kind, "s": start},
        ).all()
    return {
        f"{r.dim_keys}|{','.join(f'{k}={v}' for k, v in sorted(r.dimensions.items()))}": r.value
        for r in rows
    }


def test_volumes_by_channel_per_hour_and_beside_the_service_per_day(engine: Engine) -> None:
    e = ticket_event
    store(
        engine,
        [
            # 09:xx: two by phone (email, erp), one by the portal (email)
            e("CH1", utc(2026, 10, 5, 9, 10), "new", service="email", channel="phone"),
            e("CH2", utc(2026, 10, 5, 9, 20), "new", service="email", channel="portal"),
            e("CH3", utc(2026, 10, 5, 9, 40), "new", service="erp", channel="phone", major=True),
            e("CH3", utc(2026, 10, 5, 10, 30), "resolved"),
            # 11:00: no channel (unknown), a service request
            e("CH4", utc(2026, 10, 5, 11), "new", service="email", kind="service_request"),
        ],
    )
    aggregate(engine)
    hour9 = stored_keys(engine, "ticket_opened_count", "hour", utc(2026, 10, 5, 9))
    # per hour: the total and each enumerated dimension alone, channel among them
    assert {k: v for k, v in hour9.items() if k.startswith(("|", "channel|"))} == {
        "|": 3.0,
        "channel|channel=phone": 2.0,
        "channel|channel=portal": 1.0,
    }
    assert not any("service" in k for k in hour9)  # never an hour by service
    day = stored_keys(engine, "ticket_opened_count", "day", DAY5)
    assert {k: v for k, v in day.items() if k.split("|")[0] in ("channel", "channel,service")} == {
        "channel|channel=phone": 2.0,
        "channel|channel=portal": 1.0,
        "channel|channel=unknown": 1.0,
        "channel,service|channel=phone,service=email": 1.0,
        "channel,service|channel=phone,service=erp": 1.0,
        "channel,service|channel=portal,service=email": 1.0,
        "channel,service|channel=unknown,service=email": 1.0,
    }
    assert day["channel,customer|channel=phone,customer=unknown"] == 2.0
    resolved = stored_keys(engine, "ticket_resolved_count", "hour", utc(2026, 10, 5, 10))
    assert resolved["channel|channel=phone"] == 1.0
    # incident volumes: major incidents and the backlog by channel
    assert points(engine, "major_incident_count", "day", DAY5, channel="phone")["value"] == 1
    backlog = points(engine, "incident_backlog_count", "day", DAY5, channel="portal")
    assert backlog is not None and backlog["value"] == 1  # CH2 still open (CH4: a request)
    # the month adds up from its days, by channel as by anything else
    month = stored_keys(engine, "ticket_opened_count", "month", OCT)
    assert month["channel|channel=phone"] == 2.0
    # a channel beside the priority is not stored: answered at query time, the same way
    p = points(engine, "ticket_opened_count", "day", DAY5, channel="phone", priority="unknown")
    assert p is not None and p["value"] == 2.0
