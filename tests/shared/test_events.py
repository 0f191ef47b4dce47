from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.events import (
    EVENT_TYPES,
    FAST_VALIDATORS,
    Envelope,
    InvalidEvent,
    example_events,
    parse_event,
    validate_event,
)


def ticket(**data: Any) -> dict[str, Any]:
    body = {"ticket_id": "INC1", "state": "new", **data}
    return {
        "specversion": "1.0",
        "id": "e1",
        "source": "servicenow://acme",
        "type": "itsm.ticket.created",
        "time": "2026-10-05T09:12:00+02:00",
        "data": body,
    }


def test_valid_ticket_event_keeps_only_the_fields_the_source_sent() -> None:
    ev = validate_event(ticket(priority=2, service=None))
    assert ev.entity_kind == "ticket"
    assert ev.entity_id == "INC1"
    assert ev.time == datetime(2026, 10, 5, 7, 12, tzinfo=UTC)
    # absent fields stay absent, an explicit null stays (it clears the previous value)
    assert ev.data == {"ticket_id": "INC1", "state": "new", "priority": 2, "service": None}
    assert ev.topic_suffix == "tickets"


def test_unknown_data_fields_are_kept_not_rejected() -> None:
    ev = validate_event(ticket(u_custom_field="x"))
    assert ev.data["u_custom_field"] == "x"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda e: e.update(time="2026-10-05T09:12:00"), "time: Input should have timezone info"),
        (lambda e: e.update(time=1760000000), "time: Value error, must be an RFC 3339"),
        (lambda e: e.update(type="itsm.ticket.exploded"), "unknown event type"),
        (lambda e: e.update(specversion="0.3"), "specversion"),
        (lambda e: e.update(id=""), "id: String should have at least 1 character"),
        (lambda e: e.pop("source"), "source: Field required"),
        (lambda e: e.update(data=[1, 2]), "data: Input should be a valid dictionary"),
        (
            lambda e: e["data"].update(priority="high"),
            "data.priority: Input should be a valid integer",
        ),
        (
            lambda e: e["data"].update(priority="2"),
            "data.priority: Input should be a valid integer",
        ),
        (
            lambda e: e["data"].update(priority=7),
            "data.priority: Input should be less than or equal to 4",
        ),
        (lambda e: e["data"].update(state="exploded"), "data.state"),
        (lambda e: e["data"].pop("state"), "data.state: Field required"),
        (lambda e: e["data"].update(opened_at="yesterday"), "data.opened_at"),
        (lambda e: e["data"].update(major="yes"), "data.major: Input should be a valid boolean"),
    ],
)
def test_invalid_events_are_refused_with_a_reason(mutate: Any, reason: str) -> None:
    event = ticket()
    mutate(event)
    with pytest.raises(InvalidEvent) as err:
        validate_event(event)
    assert reason in err.value.reason


def test_refusal_carries_the_ids_it_could_read() -> None:
    event = ticket(priority="high")
    with pytest.raises(InvalidEvent) as err:
        validate_event(event)
    assert (err.value.source, err.value.event_id, err.value.event_type) == (
        "servicenow://acme",
        "e1",
        "itsm.ticket.created",
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json at all", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        (b"[1, 2, 3]", "event must be a JSON object, got list"),
        (b'"a string"', "event must be a JSON object, got str"),
    ],
)
def test_parse_refuses_what_is_not_a_json_object(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        parse_event(raw, max_bytes=1000)
    assert reason in err.value.reason


def test_oversized_event_is_refused_before_parsing() -> None:
    raw = json.dumps(ticket(description="x" * 300_000)).encode()
    with pytest.raises(InvalidEvent) as err:
        parse_event(raw, max_bytes=256 * 1024)
    assert "over the 262144-byte limit" in err.value.reason


def test_hostile_strings_are_just_data() -> None:
    hostile = "'); DROP TABLE events; -- <script>alert(1)</script>"
    ev = validate_event(ticket(service=hostile, assignee=hostile))
    assert ev.data["service"] == hostile


def test_every_type_of_the_contract_has_a_topic_and_an_entity() -> None:
    # SPEC §3.1–3.5: 6 ticket + 6 change + 2 ci + 1 audit + 2 alert + 2 check + call + survey
    # + 3 article + measurement = 25 types
    assert len(EVENT_TYPES) == 25
    topics = {t.topic for t in EVENT_TYPES.values()}
    assert topics == {"tickets", "changes", "config", "monitoring", "servicedesk", "feedback"}


def test_offsets_other_than_utc_are_normalised_to_the_same_instant() -> None:
    ev = validate_event(ticket() | {"time": "2026-10-05T12:12:00+05:00"})
    # 12:12 at +05:00 is 07:12 UTC
    assert ev.time == datetime(2026, 10, 5, 7, 12, tzinfo=UTC)
    assert ev.time.utcoffset() == timedelta(hours=5)  # the source's offset is not lost


def test_every_data_model_has_a_valid_example() -> None:
    from shared.events import example_events

    examples = example_events()
    models = {t.model for t in EVENT_TYPES.values()}
    assert len(examples) == len(models) == 10
    for etype, body in examples.items():
        ev = validate_event(body)  # the docs' examples pass the validation they document
        assert ev.type == etype
        assert ev.data == body["data"]


# --- the hot path's validators check what the models check -----------------------------------
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(
        ["", "x", "new", "incident", "critical", "2026-10-05T09:12:00Z", "2026-10-05T09:12:00"]
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=5,
)


def _field_names(etype: str) -> list[str]:
    return sorted(EVENT_TYPES[etype].model.model_fields)


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    """An example event of some type with a few attributes or data fields replaced, removed or
    added: values of every JSON kind, right and wrong."""
    etype = draw(st.sampled_from(sorted(EVENT_TYPES)))
    model = EVENT_TYPES[etype].model
    event = {**example_events()[model.example_type], "type": etype}
    data = dict(event["data"])
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(["data", "envelope"]))
        if where == "data":
            name = draw(st.sampled_from([*_field_names(etype), "extra_field"]))
            target = data
        else:
            name = draw(st.sampled_from(["specversion", "id", "source", "time", "subject", "x"]))
            target = event
        if draw(st.booleans()):
            target[name] = draw(JSON_VALUES)
        else:
            target.pop(name, None)
    event["data"] = data
    return event


def _models_accept(event: dict[str, Any]) -> bool:
    try:
        env = Envelope.model_validate(event)
        EVENT_TYPES[env.type].model.model_validate(env.data)
    except ValidationError:
        return False
    return True


@settings(max_examples=1500, deadline=None)
@given(mutated_events())
def test_the_fast_validators_accept_exactly_what_the_models_accept(event: dict[str, Any]) -> None:
    fast = FAST_VALIDATORS[event["type"]]
    if fast is None:  # a model with model validators: validated by the model itself
        return
    try:
        fast.validate_python(event)
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == _models_accept(event)


def test_only_models_with_model_validators_go_without_a_fast_validator() -> None:
    slow = {EVENT_TYPES[t].model.__name__ for t, v in FAST_VALIDATORS.items() if v is None}
    assert slow == {"MeasurementData"}  # its indicator id and period are checked together


def test_a_refusal_reads_the_same_whichever_validator_ran_first() -> None:
    with pytest.raises(InvalidEvent) as err:
        validate_event(ticket(priority="urgent", state="bogus"))
    assert err.value.reason.startswith("data.state: Input should be 'new', ")
    assert "data.priority: Input should be a valid integer" in err.value.reason


def test_nesting_is_refused_past_32_levels_only() -> None:
    # the event is level 1, data 2, notes' outer array 3: 30 nested arrays reach level 32
    assert validate_event(ticket(notes=nest(30))).data["notes"] == nest(30)
    assert parse_event(json.dumps(ticket(notes=nest(30))).encode(), max_bytes=10_000)
    with pytest.raises(InvalidEvent, match="nested deeper than 32 levels"):
        validate_event(ticket(notes=nest(31)))
    with pytest.raises(InvalidEvent, match="nested deeper than 32 levels"):
        parse_event(json.dumps(ticket(notes=nest(31))).encode(), max_bytes=10_000)


def nest(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("where", "when"),
    [
        ("time", "1969-12-31T23:59:59Z"),
        ("time", "2100-01-01T00:00:00Z"),
        ("opened_at", "0001-01-01T00:00:00+14:00"),
        ("resolved_at", "9999-12-31T23:59:59-14:00"),
    ],
)
def test_timestamps_outside_1970_to_2100_are_refused(where: str, when: str) -> None:
    # the aggregator would recompute every window from year 1, or enumerate them up to 9999
    event = ticket() if where == "time" else ticket(**{where: when})
    if where == "time":
        event["time"] = when
    with pytest.raises(InvalidEvent) as err:
        validate_event(event)
    prefix = "time" if where == "time" else f"data.{where}"
    assert f"{prefix}: Value error, must be from 1970-01-01 up to 2100-01-01" in err.value.reason


def test_timestamps_at_the_edges_of_the_range_are_kept() -> None:
    assert validate_event(ticket(opened_at="1970-01-01T00:00:00Z")).data["opened_at"]
    assert validate_event(ticket(resolved_at="2099-12-31T23:59:59.999999Z"))
