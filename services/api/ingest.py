"""HTTP ingest (SPEC §7.1): validate each event against the contract, produce the valid ones to
their topic with acks=all, and report accepted and rejected events."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import Request

from services.api.schemas import IngestResult, Rejected
from shared.errors import InvalidRequest, PayloadTooLarge
from shared.events import InvalidEvent
from shared.kafka import MAX_BATCH, MAX_BODY, EventTooLarge, Publisher, event_message

log = logging.getLogger("itsm.api.ingest")

BATCH_TYPES = ("application/cloudevents-batch+json",)


async def read_body(request: Request, max_body: int = MAX_BODY) -> bytes:
    """The request body of an ingest endpoint, refused with 413 when over `max_body` — from its
    declared length before reading it when the client sends one."""
    declared = request.headers.get("content-length", "")
    size = int(declared) if declared.isdigit() else None
    if size is None or size <= max_body:
        body = await request.body()
        size = len(body)
        if size <= max_body:
            return body
    raise PayloadTooLarge(f"request body is {size} bytes, over the {max_body}-byte limit")


def parse_json(body: bytes) -> Any:
    """Body bytes → a JSON value (strict RFC 8259 in UTF-8, as the collector reads events:
    NaN, Infinity and lone surrogates are refused), or InvalidRequest saying why not."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise InvalidRequest(f"body is not JSON: {err}") from None


def decode_body(body: bytes, content_type: str) -> tuple[list[Any], bool]:
    """Body bytes → (list of JSON values, whether it was a batch)."""
    doc = parse_json(body)
    is_batch = content_type.split(";")[0].strip().lower() in BATCH_TYPES or isinstance(doc, list)
    if is_batch:
        if not isinstance(doc, list):
            raise InvalidRequest("a cloudevents batch must be a JSON array")
        if len(doc) > MAX_BATCH:
            raise PayloadTooLarge(f"batch of {len(doc)} events, over the {MAX_BATCH} limit")
        return doc, True
    return [doc], False


def ingest(
    publisher: Publisher, items: list[Any], *, max_event_bytes: int, single: bool
) -> IngestResult:
    accepted: list[str] = []
    rejected: list[Rejected] = []
    messages: list[tuple[str, str, bytes]] = []
    for index, obj in enumerate(items):
        try:
            message = event_message(
                obj, topic_for=publisher.settings.topic, max_bytes=max_event_bytes
            )
        except EventTooLarge as err:
            if single:
                raise PayloadTooLarge(err.reason) from None
            rejected.append(Rejected(index=index, id=_id_of(obj), reason=err.reason))
            continue
        except InvalidEvent as err:
            rejected.append(Rejected(index=index, id=_id_of(obj), reason=err.reason))
            continue
        messages.append((message.topic, message.key, message.value))
        accepted.append(message.event_id)
    if messages:
        publisher.publish(messages)
    log.info("ingested over http", extra={"accepted": len(accepted), "rejected": len(rejected)})
    return IngestResult(accepted=accepted, rejected=rejected)


def _id_of(obj: Any) -> str | None:
    return obj.get("id") if isinstance(obj, dict) and isinstance(obj.get("id"), str) else None


def status_code(result: IngestResult) -> int:
    """202 when every event was accepted, 207 when some were, 422 when none (SPEC §7.1)."""
    return 202 if not result.rejected else (207 if result.accepted else 422)
