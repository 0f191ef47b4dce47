"""`itsm-metrics replay FILE|-` (SPEC §9): a user's history of CloudEvents, one per line (JSON
Lines, gzip accepted), produced to Kafka or posted to the api. A bad line is reported by its
number and never stops the file; duplicates are the collector's business (it dedupes by source
and id)."""

from __future__ import annotations

import gzip
import io
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

import orjson

from shared.errors import ConfigError, ItsmError
from shared.events import InvalidEvent
from shared.kafka import MAX_BODY, event_message
from shared.settings import Settings

GZIP_MAGIC = b"\x1f\x8b"
PROGRESS_SECONDS = 5.0
RETRY_SECONDS = 1.0  # after a 503 without Retry-After
MAX_RETRY_SECONDS = 60.0
RETRY_ATTEMPTS = 10


class LinesRefused(ItsmError):
    """Exit 1: the file was read to its end, but some lines were not sent."""

    code = "lines_refused"
    exit_code = 1


class TargetUnavailable(ItsmError):
    """Exit 2: the api cannot be reached or keeps answering 503."""

    code = "target_unavailable"
    exit_code = 2


class Line(NamedTuple):
    number: int
    raw: bytes


class Refused(NamedTuple):
    line: int
    reason: str


# --- reading (pure over a byte stream) ---------------------------------------------------------
def open_input(path: str, stdin: IO[bytes] | None = None) -> IO[bytes]:
    """FILE, or standard input for `-`, decompressed when it starts with gzip's magic bytes
    (whatever its name)."""
    if path == "-":
        stream: io.BufferedReader = io.BufferedReader(stdin or sys.stdin.buffer)  # type: ignore[arg-type]
    else:
        try:
            stream = open(Path(path), "rb")  # noqa: SIM115 - the caller closes it
        except OSError as err:
            raise ConfigError(f"cannot read {path}: {err.strerror}") from None
    if stream.peek(2)[:2] == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    return stream


def read_lines(stream: IO[bytes]) -> Iterator[Line]:
    """The non-blank lines of a stream with their 1-based numbers (blank lines are no event)."""
    for number, raw in enumerate(stream, start=1):
        if raw.strip():
            yield Line(number, raw)


def decode_line(line: Line) -> Any:
    """A line → its JSON value, or InvalidEvent (strict RFC 8259 in UTF-8, as the api reads)."""
    try:
        return orjson.loads(line.raw)
    except orjson.JSONDecodeError as err:
        raise InvalidEvent(f"not JSON: {err}") from None


# --- pacing and progress (pure: the clock and the sleep are given) -----------------------------
class Pacer:
    """At most `rate` events a second on average since the start: before sending events, waits
    until the ones already sent are due (None: no limit)."""

    def __init__(
        self,
        rate: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate, self.clock, self.sleep = rate, clock, sleep
        self.sent = 0
        self.start: float | None = None

    def wait(self, n: int = 1) -> None:
        if self.rate is None:
            return
        if self.start is None:
            self.start = self.clock()
        delay = self.start + self.sent / self.rate - self.clock()
        if delay > 0:
            self.sleep(delay)
        self.sent += n


@dataclass
class Summary:
    """What a replay did: lines read, events sent, and the count of refused lines (each one is
    reported as it is found, so memory never grows with the file)."""

    read: int = 0
    sent: int = 0
    refused: int = 0
    started: float = field(default_factory=time.monotonic)

    def text(self) -> str:
        return f"{self.read} lines read, {self.sent} sent, {self.refused} refused"


class Reporter:
    """Refusals as `line N: reason` and a progress line every few seconds, on stderr."""

    def __init__(
        self,
        out: IO[str],
        interval: float = PROGRESS_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out, self.interval, self.clock = out, interval, clock
        self.summary = Summary(started=clock())
        self.last = self.summary.started

    def refused(self, refusals: Iterable[Refused]) -> None:
        for r in refusals:
            self.summary.refused += 1
            text = "".join(c if c.isprintable() else "?" for c in r.reason)[:300]
            print(f"line {r.line}: {text}", file=self.out)

    def sent(self, n: int) -> None:
        self.summary.sent += n
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            rate = self.summary.sent / max(now - self.summary.started, 1e-9)
            print(f"replay: {self.summary.text()} ({rate:.0f} events/s)", file=self.out)


# --- Kafka ------------------------------------------------------------------------------------
def replay_kafka(
    lines: Iterable[Line],
    publish: Callable[[list[tuple[str, str, bytes]]], None],
    settings: Settings,
    reporter: Reporter,
    *,
    batch_size: int,
    pacer: Pacer,
) -> None:
    """Validate each line as `POST /v1/events` does (`event_message`: same contract, topic and
    key) and produce the valid ones, `batch_size` at a time, each batch acknowledged (acks=all)
    before the next. Invalid lines are refused here, as the api refuses them: never produced."""
    batch: list[tuple[str, str, bytes]] = []
    for line in lines:
        reporter.summary.read += 1
        try:
            msg = event_message(
                decode_line(line), topic_for=settings.topic, max_bytes=settings.max_event_bytes
            )
        except InvalidEvent as err:
            reporter.refused([Refused(line.number, err.reason)])
            continue
        pacer.wait()
        batch.append((msg.topic, msg.key, msg.value))
        if len(batch) >= batch_size:
            publish(batch)
            reporter.sent(len(batch))
            batch = []
    if batch:
        publish(batch)
        reporter.sent(len(batch))


# --- HTTP -------------------------------------------------------------------------------------
def http_batches(
    lines: Iterable[Line], reporter: Reporter, *, batch_size: int, max_body: int = MAX_BODY
) -> Iterator[list[Line]]:
    """Lines that are JSON, `batch_size` at a time and under `max_body` bytes as one JSON array;
    the others refused (a JSON array cannot carry them). The api judges the rest."""
    batch: list[Line] = []
    size = 2
    for line in lines:
        reporter.summary.read += 1
        try:
            decode_line(line)
        except InvalidEvent as err:
            reporter.refused([Refused(line.number, err.reason)])
            continue
        if batch and (len(batch) >= batch_size or size + len(line.raw) + 1 > max_body):
            yield batch
            batch, size = [], 2
        batch.append(line)
        size += len(line.raw) + 1
    if batch:
        yield batch


def batch_body(batch: list[Line]) -> bytes:
    """The lines as one JSON array, their bytes as written (each one is JSON: checked before)."""
    return b"[" + b",".join(line.raw.strip() for line in batch) + b"]"


def refusals_of(batch: list[Line], answer: Any) -> list[Refused]:
    """The api's per-event rejections (`rejected[].index`, position in the batch) → line
    numbers (SPEC §7.1)."""
    out = []
    for r in answer.get("rejected", []) if isinstance(answer, dict) else []:
        index = r.get("index")
        if isinstance(index, int) and 0 <= index < len(batch):
            out.append(Refused(batch[index].number, str(r.get("reason", "rejected"))))
    return out


def retry_after(value: str | None, attempt: int) -> float:
    """Seconds to wait after a 503: the api's Retry-After (seconds) if it sent one, else a
    doubling backoff; capped."""
    try:
        seconds = float(value) if value is not None else RETRY_SECONDS * 2**attempt
    except ValueError:
        seconds = RETRY_SECONDS * 2**attempt
    return min(max(seconds, 0.0), MAX_RETRY_SECONDS)


def post_batch(
    client: Any,
    url: str,
    batch: list[Line],
    sleep: Callable[[float], None] = time.sleep,
) -> list[Refused]:
    """POST one batch to `/v1/events`, the same batch again after a 503 (Retry-After honoured),
    halves of it after a 413; returns the lines the api rejected."""
    import httpx

    body = batch_body(batch)
    headers = {"content-type": "application/cloudevents-batch+json"}
    for attempt in range(RETRY_ATTEMPTS):
        try:
            response = client.post(url, content=body, headers=headers)
        except httpx.HTTPError as err:
            raise TargetUnavailable(f"api at {url} unreachable ({err}): check --url") from None
        status = response.status_code
        if status == 503:
            sleep(retry_after(response.headers.get("retry-after"), attempt))
            continue
        if status in (202, 207, 422) and _is_ingest_result(response):
            return refusals_of(batch, response.json())
        if status == 413:
            if len(batch) == 1:
                return [Refused(batch[0].number, _message(response))]
            half = len(batch) // 2
            return [
                *post_batch(client, url, batch[:half], sleep),
                *post_batch(client, url, batch[half:], sleep),
            ]
        if status in (401, 403):
            raise ConfigError(
                f"the api refused the token ({status}): give the ingest token with --token or "
                "ITSM_INGEST_TOKEN"
            )
        raise TargetUnavailable(f"api at {url} answered {status}: {_message(response)}")
    raise TargetUnavailable(f"api at {url} still unavailable (503) after {RETRY_ATTEMPTS} tries")


def _is_ingest_result(response: Any) -> bool:
    try:
        answer = response.json()
    except ValueError:
        return False
    return isinstance(answer, dict) and "rejected" in answer


def _message(response: Any) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return str(response.text)[:200]


def replay_http(
    lines: Iterable[Line],
    client: Any,
    url: str,
    reporter: Reporter,
    *,
    batch_size: int,
    pacer: Pacer,
) -> None:
    endpoint = url.rstrip("/") + "/v1/events"
    for batch in http_batches(lines, reporter, batch_size=batch_size):
        pacer.wait(len(batch))
        refused = post_batch(client, endpoint, batch)
        reporter.refused(refused)
        reporter.sent(len(batch) - len(refused))
