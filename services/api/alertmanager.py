"""Prometheus Alertmanager webhook payloads (version "4") → monitoring alert CloudEvents
(SPEC §3.4, §7.1). Pure: bytes or a decoded payload in, CloudEvent dicts out; the route
validates and produces them like any other event."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from services.api.ingest import parse_json
from shared.errors import InvalidRequest, PayloadTooLarge
from shared.kafka import MAX_BATCH

# Alertmanager has no fixed severity vocabulary; these are the common spellings. Any other value,
# or none, is a warning: the alert fired, so it is not merely informational.
SEVERITY = {
    "critical": "critical",
    "page": "critical",
    "error": "critical",
    "high": "critical",
    "warning": "warning",
    "warn": "warning",
    "medium": "warning",
    "info": "info",
    "low": "info",
    "none": "info",
}


class WebhookAlert(BaseModel):
    """One alert of the payload: the fields the mapping reads, of the types Alertmanager sends
    (other fields are allowed and ignored). `status` and `fingerprint` are judged per alert by
    the event contract, so one odd alert is a rejection beside the others' acceptance."""

    model_config = ConfigDict(extra="allow")

    status: StrictStr
    labels: dict[StrictStr, StrictStr] = {}
    annotations: dict[StrictStr, StrictStr] = {}
    startsAt: StrictStr | None = None
    endsAt: StrictStr | None = None
    fingerprint: StrictStr | None = None


class WebhookPayload(BaseModel):
    """The webhook payload (version "4"), up to MAX_BATCH alerts as `POST /v1/events` takes."""

    model_config = ConfigDict(extra="allow")

    version: StrictStr | None = Field(default=None, examples=["4"])
    receiver: StrictStr
    status: StrictStr | None = None
    alerts: list[WebhookAlert] = Field(min_length=1, max_length=MAX_BATCH)


def decode(body: bytes) -> dict[str, Any]:
    """Body bytes → the webhook payload, or InvalidRequest when it is not one (PayloadTooLarge
    past MAX_BATCH alerts)."""
    doc = parse_json(body)
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("receiver"), str)
        or not isinstance(doc.get("alerts"), list)
        or not all(isinstance(a, dict) for a in doc["alerts"])
    ):
        raise InvalidRequest(
            "not an Alertmanager webhook payload: expected an object with `receiver` "
            "and `alerts` (a list of objects)"
        )
    version = doc.get("version")
    if version is not None and version != "4":
        raise InvalidRequest(f'Alertmanager webhook version {version!r} unsupported: expected "4"')
    if not doc["alerts"]:
        raise InvalidRequest("the Alertmanager payload has no alerts")
    if len(doc["alerts"]) > MAX_BATCH:
        raise PayloadTooLarge(f"{len(doc['alerts'])} alerts, over the {MAX_BATCH} limit")
    try:
        WebhookPayload.model_validate(doc)
    except ValidationError as err:
        details = [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"]} for e in err.errors()]
        first = details[0]
        raise InvalidRequest(
            f"not an Alertmanager webhook payload: {'.'.join(first['loc'])}: {first['msg']}",
            details=details,
        ) from None
    return doc


def to_events(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """One CloudEvent per alert, in payload order (a rejection's index is the alert's)."""
    source = f"alertmanager://{payload['receiver']}"
    return [alert_event(alert, source) for alert in payload["alerts"]]


def severity(value: Any) -> str:
    return SEVERITY.get(str(value).strip().lower(), "warning") if value is not None else "warning"


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, str)}


def alert_event(alert: dict[str, Any], source: str) -> dict[str, Any]:
    """One Alertmanager alert → an `itsm.monitor.alert.firing|resolved` CloudEvent.

    `alert_id` is `<fingerprint>@<startsAt>`: the fingerprint identifies the alert (its label
    set), the start time its firing *episode*, so a second outage of the same alert is a new
    alert and does not overwrite the first. The event id `<fingerprint>:<status>:<startsAt>` is
    deterministic: Alertmanager re-sends a still-firing alert every `repeat_interval`, and those
    repeats are duplicates of (`source`, `id`) downstream. A firing alert's `endsAt` is
    Alertmanager's guess at expiry, not an end, so only a resolved alert gets `ended_at`.
    `outage` is left to the contract's default (true for critical)."""
    labels = _strings(alert.get("labels"))
    annotations = _strings(alert.get("annotations"))
    status = alert.get("status")
    fingerprint = alert.get("fingerprint")
    starts_at = alert.get("startsAt")
    resolved = status == "resolved"
    alert_id = f"{fingerprint}@{starts_at}" if fingerprint and starts_at else None
    data: dict[str, Any] = {
        "alert_id": alert_id,
        "severity": severity(labels.get("severity")),
        "started_at": starts_at,
        "sequence": 2 if resolved else 1,
        "labels": labels,
    }
    optional = {
        "ci_id": labels.get("ci") or labels.get("instance"),
        "service": labels.get("service"),
        "check": labels.get("alertname"),
        "ended_at": alert.get("endsAt") if resolved else None,
        "summary": annotations.get("summary"),
    }
    data.update({k: v for k, v in optional.items() if v})
    return {
        "specversion": "1.0",
        "id": f"{fingerprint}:{status}:{starts_at}" if alert_id else None,
        "source": source,
        "type": f"itsm.monitor.alert.{status}",
        "time": alert.get("endsAt") if resolved else starts_at,
        "subject": alert_id,
        "datacontenttype": "application/json",
        "data": data,
    }


def payload_schema() -> dict[str, Any]:
    """WebhookPayload's JSON schema for the OpenAPI document, its alert schema inlined (the
    document's components hold only the routes' own models)."""
    schema = WebhookPayload.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    inlined: dict[str, Any] = inline(schema)
    return inlined


def example_payload() -> dict[str, Any]:
    """The OpenAPI example: one firing alert, as Alertmanager posts it."""
    return {
        "version": "4",
        "groupKey": '{}:{alertname="InstanceDown"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "itsm-metrics",
        "groupLabels": {"alertname": "InstanceDown"},
        "commonLabels": {"alertname": "InstanceDown", "service": "email", "severity": "critical"},
        "commonAnnotations": {"summary": "mail-01 is down"},
        "externalURL": "http://alertmanager:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "InstanceDown",
                    "instance": "mail-01:9100",
                    "ci": "mail-01",
                    "service": "email",
                    "severity": "critical",
                },
                "annotations": {"summary": "mail-01 is down"},
                "startsAt": "2026-10-05T09:12:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=up+%3D%3D+0",
                "fingerprint": "c7a4b2f1e9d05a13",
            }
        ],
    }
