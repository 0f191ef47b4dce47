"""The event contract (SPEC §3): CloudEvents 1.0 envelopes and one data model per event type.

These models are the single definition used for validation (collector and api), the OpenAPI
examples and the docs. `parse_event` turns wire bytes into an `Event` or raises `InvalidEvent`
with a one-line reason; it is pure (no I/O, no settings)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any, ClassVar, Literal, NamedTuple

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from shared.indicator_ids import custom_id_problem
from shared.typed_validators import fields_validator, has_model_validators, typed_dict


def _timestamp_text(value: Any) -> Any:
    # RFC 3339 text only: pydantic would otherwise accept epoch numbers as datetimes.
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 timestamp string with offset")
    return value


# ITSM facts happen between these: a timestamp outside is a source's bug, and would have the
# aggregator recompute (or count time over) every window from year 1 or up to year 9999.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _plausible(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError("must be from 1970-01-01 up to 2100-01-01 (UTC)")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_timestamp_text), AfterValidator(_plausible)]
Id = Annotated[StrictStr, Field(min_length=1, max_length=512)]
Text = Annotated[StrictStr, Field(max_length=4096)]
Number = StrictInt | float
# Integers as wide as the columns that store them: a wider one would fail its whole batch in
# PostgreSQL ("out of range"), again and again, instead of being refused here.
Count = Annotated[StrictInt, Field(ge=0, le=2**31 - 1)]
SequenceNumber = Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)]


class _Data(BaseModel):
    # Sources send fields we do not model; they are kept in the snapshot, not rejected.
    model_config = ConfigDict(extra="allow", strict=False)
    sequence: SequenceNumber | None = None
    # Every concrete model documents itself with one valid example of one of its types.
    example: ClassVar[dict[str, Any]]
    example_type: ClassVar[str]


# --- 3.1 tickets --------------------------------------------------------------------------------
TicketKind = Literal["incident", "service_request", "problem"]
TicketState = Literal[
    "new", "assigned", "in_progress", "pending", "resolved", "closed", "cancelled"
]
Channel = Literal["phone", "email", "portal", "chat", "monitoring", "walk_in", "other"]


class TicketData(_Data):
    example: ClassVar[dict[str, Any]] = {
        "ticket_id": "INC0012345",
        "kind": "incident",
        "state": "new",
        "service": "email",
        "priority": 2,
        "channel": "portal",
        "assignment_group": "service-desk",
    }
    example_type: ClassVar[str] = "itsm.ticket.created"
    ticket_id: Id
    kind: TicketKind | None = None
    state: TicketState
    service: Text | None = None
    ci_ids: list[Id] | None = None
    priority: Annotated[StrictInt, Field(ge=1, le=4)] | None = None
    impact: Annotated[StrictInt, Field(ge=1, le=3)] | None = None
    urgency: Annotated[StrictInt, Field(ge=1, le=3)] | None = None
    channel: Channel | None = None
    assignment_group: Text | None = None
    assignee: Text | None = None
    opened_at: Timestamp | None = None
    responded_at: Timestamp | None = None
    resolved_at: Timestamp | None = None
    closed_at: Timestamp | None = None
    major: StrictBool | None = None
    problem_id: Text | None = None
    caused_by_change_id: Text | None = None
    knowledge_article_ids: list[Id] | None = None
    reassignment_count: Count | None = None
    reopen_count: Count | None = None
    first_contact_resolution: StrictBool | None = None


# --- 3.2 changes --------------------------------------------------------------------------------
class ChangeData(_Data):
    example: ClassVar[dict[str, Any]] = {
        "change_id": "CHG0004711",
        "change_type": "normal",
        "service": "erp",
        "ci_ids": ["erp-db-01"],
        "risk": "medium",
        "actual_start": "2026-10-10T22:05:00+02:00",
        "actual_end": "2026-10-10T23:40:00+02:00",
        "outcome": "successful",
    }
    example_type: ClassVar[str] = "itsm.change.implemented"
    change_id: Id
    change_type: Literal["standard", "normal", "emergency"] | None = None
    service: Text | None = None
    ci_ids: list[Id] | None = None
    risk: Literal["low", "medium", "high"] | None = None
    state: Text | None = None
    requested_at: Timestamp | None = None
    approved_at: Timestamp | None = None
    planned_start: Timestamp | None = None
    planned_end: Timestamp | None = None
    actual_start: Timestamp | None = None
    actual_end: Timestamp | None = None
    outcome: Literal["successful", "failed", "rolled_back", "partially_successful"] | None = None
    release_id: Text | None = None


# --- 3.3 configuration --------------------------------------------------------------------------
class CiData(_Data):
    example: ClassVar[dict[str, Any]] = {
        "ci_id": "erp-db-01",
        "ci_type": "database",
        "name": "ERP primary database",
        "services": ["erp"],
        "depends_on": ["san-02"],
        "critical": True,
        "change_id": "CHG0004711",
    }
    example_type: ClassVar[str] = "itsm.config.ci.upserted"
    ci_id: Id
    ci_type: Text | None = None
    name: Text | None = None
    services: list[Id] | None = None
    owner: Text | None = None
    depends_on: list[Id] | None = None
    critical: StrictBool | None = None
    attributes: dict[str, Any] | None = None
    change_id: Text | None = None


class AuditData(_Data):
    example: ClassVar[dict[str, Any]] = {
        "audit_id": "AUD-2026-10",
        "scope": "datacenter-1",
        "cis_checked": 420,
        "discrepancies": 7,
        "ci_ids_with_discrepancy": ["srv-114", "srv-207"],
    }
    example_type: ClassVar[str] = "itsm.config.audit.completed"
    audit_id: Id
    scope: Text | None = None
    cis_checked: Count
    discrepancies: Count
    ci_ids_with_discrepancy: list[Id] | None = None


# --- 3.4 monitoring -----------------------------------------------------------------------------
class AlertData(_Data):
    example: ClassVar[dict[str, Any]] = {
        "alert_id": "a1b2c3@2026-10-05T09:00:00Z",
        "ci_id": "erp-db-01",
        "service": "erp",
        "check": "PostgresDown",
        "severity": "critical",
        "started_at": "2026-10-05T09:00:00Z",
    }
    example_type: ClassVar[str] = "itsm.monitor.alert.firing"
    alert_id: Id
    ci_id: Text | None = None
    service: Text | None = None
    check: Text | None = None
    severity: Literal["critical", "warning", "info"] | None = None
    outage: StrictBool | None = None
    threshold: Number | None = None
    value: Number | None = None
    started_at: Timestamp | None = None
    ended_at: Timestamp | None = None


class CheckData(_Data):
    example: ClassVar[dict[str, Any]] = {
        "check_id": "erp-db-01/replication-lag",
        "ci_id": "erp-db-01",
        "metric": "pg_replication_lag_seconds",
        "threshold": 30,
    }
    example_type: ClassVar[str] = "itsm.monitor.check.registered"
    check_id: Id
    ci_id: Text | None = None
    metric: Text | None = None
    threshold: Number | None = None


# --- 3.5 service desk, feedback, knowledge, measurements ---------------------------------------
class CallData(_Data):
    example: ClassVar[dict[str, Any]] = {
        "call_id": "CALL-88231",
        "answered": True,
        "wait_seconds": 42,
        "handle_seconds": 315,
        "ticket_id": "INC0012345",
        "agent": "agent-17",
    }
    example_type: ClassVar[str] = "itsm.servicedesk.call.completed"
    call_id: Id
    answered: StrictBool
    wait_seconds: Annotated[Number, Field(ge=0)] | None = None
    handle_seconds: Annotated[Number, Field(ge=0)] | None = None
    ticket_id: Text | None = None
    agent: Text | None = None


class SurveyData(_Data):
    example: ClassVar[dict[str, Any]] = {
        "survey_id": "SRV-5521",
        "ticket_id": "INC0012345",
        "service": "email",
        "score": 4,
    }
    example_type: ClassVar[str] = "itsm.feedback.survey.completed"
    survey_id: Id
    ticket_id: Text | None = None
    service: Text | None = None
    score: Annotated[StrictInt, Field(ge=1, le=5)]


class ArticleData(_Data):
    example: ClassVar[dict[str, Any]] = {
        "article_id": "KB0001021",
        "service": "email",
        "title": "Reset a forgotten mailbox password",
    }
    example_type: ClassVar[str] = "itsm.knowledge.article.published"
    article_id: Id
    service: Text | None = None
    title: Text | None = None


class MeasurementData(_Data):
    example: ClassVar[dict[str, Any]] = {
        "indicator": "training_hours",
        "value": 36,
        "unit": "hours",
        "service": "email",
        "period_start": "2026-10-01T00:00:00+02:00",
        "period_end": "2026-11-01T00:00:00+01:00",
    }
    example_type: ClassVar[str] = "itsm.measurement.recorded"
    indicator: Id
    value: Number
    unit: Text | None = None
    service: Text | None = None
    period_start: Timestamp
    period_end: Timestamp

    @model_validator(mode="after")
    def _custom_indicator(self) -> MeasurementData:
        problem = custom_id_problem(self.indicator)
        if problem is not None:
            raise ValueError(problem)
        if self.period_end <= self.period_start:
            raise ValueError("period_end must be after period_start")
        return self


@dataclass(frozen=True)
class EventType:
    """What the contract knows of one `type`: its data model, entity and default topic."""

    name: str
    model: type[_Data]
    entity_kind: str
    id_field: str
    topic: str  # suffix after the configured prefix


def _types() -> dict[str, EventType]:
    spec: list[tuple[str, list[str], type[_Data], str, str, str]] = [
        (
            "itsm.ticket",
            ["created", "updated", "resolved", "closed", "reopened", "cancelled"],
            TicketData,
            "ticket",
            "ticket_id",
            "tickets",
        ),
        (
            "itsm.change",
            ["requested", "approved", "rejected", "scheduled", "implemented", "closed"],
            ChangeData,
            "change",
            "change_id",
            "changes",
        ),
        ("itsm.config.ci", ["upserted", "deleted"], CiData, "ci", "ci_id", "config"),
        ("itsm.config.audit", ["completed"], AuditData, "audit", "audit_id", "config"),
        (
            "itsm.monitor.alert",
            ["firing", "resolved"],
            AlertData,
            "alert",
            "alert_id",
            "monitoring",
        ),
        (
            "itsm.monitor.check",
            ["registered", "removed"],
            CheckData,
            "check",
            "check_id",
            "monitoring",
        ),
        ("itsm.servicedesk.call", ["completed"], CallData, "call", "call_id", "servicedesk"),
        ("itsm.feedback.survey", ["completed"], SurveyData, "survey", "survey_id", "feedback"),
        (
            "itsm.knowledge.article",
            ["published", "updated", "retired"],
            ArticleData,
            "article",
            "article_id",
            "servicedesk",
        ),
        ("itsm.measurement", ["recorded"], MeasurementData, "measurement", "indicator", "feedback"),
    ]
    out = {}
    for prefix, verbs, model, kind, id_field, topic in spec:
        for verb in verbs:
            name = f"{prefix}.{verb}"
            out[name] = EventType(name, model, kind, id_field, topic)
    return out


EVENT_TYPES: dict[str, EventType] = _types()


class Envelope(BaseModel):
    """CloudEvents 1.0 structured-mode attributes (SPEC §3)."""

    model_config = ConfigDict(extra="allow")
    specversion: Literal["1.0"]
    id: Id
    source: Id
    type: StrictStr
    time: Timestamp
    subject: Text | None = None
    datacontenttype: Literal["application/json"] | None = None
    data: dict[str, Any]


def _fast_validators() -> dict[str, TypeAdapter[Any] | None]:
    """Per type, one validator of the whole event that checks what Envelope and the type's data
    model check without building either (shared.typed_validators); None where the data model
    has model validators: those events take the models' way."""
    by_model: dict[type[_Data], TypeAdapter[Any] | None] = {}
    for etype in EVENT_TYPES.values():
        model = etype.model
        if model not in by_model:
            by_model[model] = (
                None
                if has_model_validators(model)
                else fields_validator(Envelope, data=typed_dict(model))
            )
    return {name: by_model[etype.model] for name, etype in EVENT_TYPES.items()}


FAST_VALIDATORS = _fast_validators()


class Event(NamedTuple):
    """A validated event. `data` holds the fields the source sent (absent ≠ null), JSON-ready.
    (A NamedTuple: immutable, and built in a third of a frozen dataclass's time, once per
    event on the collector's hot path.)"""

    source: str
    id: str
    type: str
    time: datetime
    subject: str | None
    entity_kind: str
    entity_id: str
    sequence: int | None
    data: dict[str, Any]
    topic_suffix: str

    def to_cloudevent(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "specversion": "1.0",
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time.isoformat(),
            "data": self.data,
        }
        if self.subject is not None:
            body["subject"] = self.subject
        return body


class InvalidEvent(ValueError):
    """Why an event was refused, with its source, id and type when they could be read."""

    def __init__(
        self,
        reason: str,
        *,
        source: str | None = None,
        event_id: str | None = None,
        event_type: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.source = source
        self.event_id = event_id
        self.event_type = event_type


def _explain(err: ValidationError, prefix: str = "") -> str:
    parts = []
    for e in err.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in e["loc"])
        parts.append(f"{prefix}{loc}: {e['msg']}")
    more = err.error_count() - 5
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def validate_event(obj: Any, *, check_values: bool = True) -> Event:
    """Validate one decoded CloudEvent (a JSON object) against the contract; `check_values`:
    also that PostgreSQL can store its values (`unstorable`), which `parse_text` checks from the
    text more cheaply."""
    if not isinstance(obj, dict):
        raise InvalidEvent(f"event must be a JSON object, got {type(obj).__name__}")
    etype = EVENT_TYPES.get(obj["type"]) if isinstance(obj.get("type"), str) else None
    fast = FAST_VALIDATORS.get(etype.name) if etype is not None else None
    if fast is not None and etype is not None:
        try:
            valid = fast.validate_python(obj)
        except ValidationError:
            pass  # the models' way, below, says why in their words
        else:
            data = valid["data"]
            return _event(
                obj, etype, valid["time"], data[etype.id_field], data.get("sequence"), check_values
            )
    ids = _ids(obj)
    try:
        env = Envelope.model_validate(obj)
    except ValidationError as err:
        raise InvalidEvent(_explain(err), **ids) from None
    etype = EVENT_TYPES.get(env.type)
    if etype is None:
        raise InvalidEvent(f"type: unknown event type {env.type!r}", **ids)
    try:
        model = etype.model.model_validate(env.data)
    except ValidationError as err:
        raise InvalidEvent(_explain(err, "data."), **ids) from None
    return _event(
        obj, etype, env.time, getattr(model, etype.id_field), model.sequence, check_values
    )


def _ids(obj: dict[str, Any]) -> dict[str, str | None]:
    """What a refusal names of the event, where it could be read."""
    return {
        "source": _str_or_none(obj.get("source")),
        "event_id": _str_or_none(obj.get("id")),
        "event_type": _str_or_none(obj.get("type")),
    }


def _event(
    obj: dict[str, Any],
    etype: EventType,
    time: datetime,
    entity_id: str,
    sequence: int | None,
    check_values: bool,
) -> Event:
    """A valid event: `obj` (its attributes and data checked) and what validation parsed."""
    if check_values and (reason := unstorable(obj)) is not None:
        raise InvalidEvent(reason, **_ids(obj))
    return Event(
        source=obj["source"],
        id=obj["id"],
        type=etype.name,
        time=_standard_offset(time, obj["time"]),
        subject=obj.get("subject"),
        entity_kind=etype.entity_kind,
        entity_id=entity_id,
        sequence=sequence,
        # What the source sent, as sent (absent ≠ null, unknown fields kept): it is valid now.
        data=obj["data"],
        topic_suffix=etype.topic,
    )


def _standard_offset(parsed: datetime, text: str) -> datetime:
    """The instant with the standard library's fixed-offset tzinfo rather than pydantic's: it
    compares, hashes and formats several times faster, and the collector sorts and formats
    every event's time a few times over. Read as the projections read timestamps in `data`
    (`parse_ts`): `fromisoformat`, else pydantic's reading."""
    try:
        plain = datetime.fromisoformat(text)
    except ValueError:  # a spelling pydantic accepts and the standard library does not
        plain = None
    if plain is not None and plain.tzinfo is not None:
        return plain
    return parsed.replace(tzinfo=timezone(parsed.utcoffset() or timedelta(0)))


NUL_REASON = "contains the NUL character (\\u0000), which PostgreSQL cannot store"
# Deeper nesting is no ITSM data, and the projections could not write it back as JSON.
MAX_DEPTH = 32
DEPTH_REASON = f"nested deeper than {MAX_DEPTH} levels of objects and arrays"


def unstorable(value: Any, depth: int = 1) -> str | None:
    """Why a decoded JSON value cannot be stored (a NUL character, nesting deeper than
    MAX_DEPTH), or None."""
    if isinstance(value, str):
        return NUL_REASON if "\x00" in value else None
    if isinstance(value, dict | list):
        if depth > MAX_DEPTH:
            return DEPTH_REASON
        items = [*value, *value.values()] if isinstance(value, dict) else value
        for item in items:
            if (reason := unstorable(item, depth + 1)) is not None:
                return reason
    return None


def decode_text(raw: bytes, *, max_bytes: int) -> str:
    """Wire bytes → JSON text: within the size limit, UTF-8 (RFC 8259 §8.1)."""
    if len(raw) > max_bytes:
        raise InvalidEvent(f"event is {len(raw)} bytes, over the {max_bytes}-byte limit")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidEvent(f"not JSON: not UTF-8 text ({err.reason} at byte {err.start})") from None


def parse_text(text: str) -> Event:
    """JSON text → Event, or InvalidEvent with the reason (SPEC §3.6)."""
    try:
        # Strict RFC 8259: NaN, Infinity and lone surrogates are refused here, as PostgreSQL
        # would refuse them when storing the event.
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as err:
        raise InvalidEvent(f"not JSON: {err}") from None
    # A NUL can only arrive escaped, deep nesting only with many brackets: look properly only
    # when the text could hold either.
    event = validate_event(obj, check_values=False)
    if ("\\u0000" in text or text.count("{") + text.count("[") > MAX_DEPTH) and (
        reason := unstorable(obj)
    ) is not None:
        raise InvalidEvent(reason, source=event.source, event_id=event.id, event_type=event.type)
    return event


def parse_event(raw: bytes, *, max_bytes: int) -> Event:
    """Wire bytes → Event, or InvalidEvent with the reason (SPEC §3.6)."""
    return parse_text(decode_text(raw, max_bytes=max_bytes))


def example_events() -> dict[str, dict[str, Any]]:
    """One example CloudEvent per data model, keyed by its type: the OpenAPI examples and the
    docs come from the models, so they cannot drift from what is validated."""
    out = {}
    for n, model in enumerate(dict.fromkeys(t.model for t in EVENT_TYPES.values()), start=1):
        data = model.example
        entity = data[EVENT_TYPES[model.example_type].id_field]
        out[model.example_type] = {
            "specversion": "1.0",
            "id": f"evt-{n:04d}",
            "source": "servicenow://acme-prod",
            "type": model.example_type,
            "time": "2026-10-05T09:12:00+02:00",
            "subject": entity,
            "datacontenttype": "application/json",
            "data": data,
        }
    return out
