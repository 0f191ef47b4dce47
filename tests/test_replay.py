"""`itsm-metrics replay` (SPEC §9): reading JSON Lines (gzip, stdin), pacing, batching and the
api's answers mapped to line numbers (pure), then the CLI producing to the real broker."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from services.replay import (
    Line,
    Pacer,
    Refused,
    Reporter,
    batch_body,
    decode_line,
    http_batches,
    open_input,
    post_batch,
    read_lines,
    refusals_of,
    replay_kafka,
    retry_after,
)
from shared.settings import Settings
from tests.e2e.conftest import ROOT, service_env
from tests.helpers import TEST_SETTINGS, cloud_event, october, read_topic, ticket_event


def history() -> list[str]:
    """Good, duplicate and malformed lines, as a user's export might hold them."""
    e1 = ticket_event("INC1", october(9), "new", event_id="r1", service="email", priority=2)
    return [
        json.dumps(e1),  # 1
        json.dumps(ticket_event("INC1", october(10), "resolved", event_id="r2")),  # 2
        "{not json",  # 3
        json.dumps(e1),  # 4: a duplicate (same source and id): the collector's business
        "",  # 5: blank, no event
        json.dumps([e1]),  # 6: not an object
        json.dumps(cloud_event("itsm.ticket.teleported", october(11), "r3")),  # 7: unknown type
        json.dumps(
            cloud_event(
                "itsm.servicedesk.call.completed",
                october(12),
                "r4",
                source="pbx://hq",
                call_id="C1",
                answered=True,
            )
        ),  # 8
        json.dumps(ticket_event("INC2", october(13), "new", event_id="r5", priority="high")),  # 9
    ]


REFUSED_LINES = [3, 6, 7, 9]  # not JSON, an array, an unknown type, data.priority not an int
SENT = 4  # lines 1, 2, 4 and 8 (line 4 is stored once: the collector dedupes)


def text(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


# --- reading ------------------------------------------------------------------------------------
def test_gzip_is_detected_by_its_magic_bytes_not_its_name(tmp_path: Path) -> None:
    plain = tmp_path / "history.jsonl"
    plain.write_bytes(text(history()))
    packed = tmp_path / "history.export"  # no .gz suffix
    packed.write_bytes(gzip.compress(text(history())))
    with open_input(str(plain)) as a, open_input(str(packed)) as b:
        assert list(read_lines(a)) == list(read_lines(b))


def test_stdin_is_read_for_a_dash_gzip_or_not() -> None:
    for data in (text(history()), gzip.compress(text(history()))):
        with open_input("-", stdin=io.BytesIO(data)) as stream:
            numbers = [line.number for line in read_lines(stream)]
        assert numbers == [1, 2, 3, 4, 6, 7, 8, 9]  # line 5 is blank


def test_a_line_that_is_not_json_says_so() -> None:
    reason = ""
    try:
        decode_line(Line(3, b"{not json\n"))
    except ValueError as err:
        reason = str(err)
    assert reason.startswith("not JSON")


# --- pacing and batching -------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_pacer_spaces_events_to_the_rate_on_average() -> None:
    clock = FakeClock()
    pacer = Pacer(4.0, clock, clock.sleep)
    for _ in range(9):
        pacer.wait()
    # 9 events at 4/s: the 9th is due 8/4 = 2 s after the first
    assert clock.now - 100.0 == 2.0


def test_pacer_by_batches_waits_for_the_events_already_sent() -> None:
    clock = FakeClock()
    pacer = Pacer(10.0, clock, clock.sleep)
    pacer.wait(5)
    pacer.wait(5)  # 5 sent at 10/s: due 0.5 s after the start
    pacer.wait(5)
    assert clock.slept == [0.5, 0.5]


def test_no_rate_never_sleeps() -> None:
    clock = FakeClock()
    pacer = Pacer(None, clock, clock.sleep)
    for _ in range(1000):
        pacer.wait()
    assert clock.slept == []


def test_http_batches_refuse_non_json_and_split_by_count_and_size() -> None:
    lines = [Line(i, b'{"n": %d}\n' % i) for i in range(1, 8)]
    lines.insert(3, Line(99, b"oops\n"))
    out = io.StringIO()
    reporter = Reporter(out)
    batches = list(http_batches(lines, reporter, batch_size=3))
    assert [[line.number for line in b] for b in batches] == [[1, 2, 3], [4, 5, 6], [7]]
    assert out.getvalue().startswith("line 99: not JSON")
    assert reporter.summary.read == 8 and reporter.summary.refused == 1
    # each line is 9 bytes + a comma, plus 2 for the brackets: 3 lines fit in 32 bytes, not 4
    by_size = list(http_batches(lines[:3], Reporter(io.StringIO()), batch_size=10, max_body=32))
    assert [len(b) for b in by_size] == [3]
    by_size = list(http_batches(lines[:3], Reporter(io.StringIO()), batch_size=10, max_body=31))
    assert [len(b) for b in by_size] == [2, 1]


def test_a_batch_body_is_the_lines_as_one_json_array() -> None:
    batch = [Line(1, b'{"a": 1}\r\n'), Line(4, b'  {"b": 2}\n')]
    assert json.loads(batch_body(batch)) == [{"a": 1}, {"b": 2}]


def test_the_apis_rejections_are_reported_by_line_number() -> None:
    batch = [Line(10, b"{}"), Line(12, b"{}"), Line(13, b"{}")]
    answer = {"accepted": ["x"], "rejected": [{"index": 1, "id": None, "reason": "type: bad"}]}
    assert refusals_of(batch, answer) == [Refused(12, "type: bad")]


def test_retry_after_is_honoured_else_backs_off_capped() -> None:
    assert retry_after("3", 0) == 3.0
    assert retry_after(None, 0) == 1.0
    assert retry_after(None, 2) == 4.0
    assert retry_after("soon", 1) == 2.0
    assert retry_after("3600", 0) == 60.0


def test_a_503_is_retried_with_the_same_batch_after_retry_after() -> None:
    bodies: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        if len(bodies) == 1:
            return httpx.Response(503, headers={"retry-after": "2"}, json={"error": {}})
        return httpx.Response(
            207, json={"accepted": ["a"], "rejected": [{"index": 1, "reason": "r"}]}
        )

    slept: list[float] = []
    batch = [Line(1, b'{"a": 1}'), Line(2, b'{"b": 2}')]
    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        refused = post_batch(client, "http://api/v1/events", batch, slept.append)
    assert slept == [2.0]
    assert bodies[0] == bodies[1]
    assert refused == [Refused(2, "r")]


def test_a_413_splits_the_batch_until_the_lines_fit() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        items = json.loads(request.content)
        if len(items) > 1:
            return httpx.Response(413, json={"error": {"message": "too large"}})
        return httpx.Response(202, json={"accepted": ["x"], "rejected": []})

    batch = [Line(n, b"{}") for n in (1, 2, 3)]
    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        assert post_batch(client, "http://api/v1/events", batch) == []


# --- through the real broker --------------------------------------------------------------------
def cli(
    settings: Settings, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = service_env(
        ITSM_KAFKA_BOOTSTRAP_SERVERS=settings.require_kafka(),
        ITSM_TOPIC_PREFIX=settings.topic_prefix,
    )
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "replay", *args],
        env=env,
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        timeout=60,
    )


def test_replay_to_kafka_produces_valid_lines_keyed_by_entity_and_reports_the_others(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "history.jsonl"
    path.write_bytes(text(history()))
    done = cli(settings, str(path))
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert [int(x.split(":")[0][5:]) for x in err.splitlines() if x.startswith("line ")] == (
        REFUSED_LINES
    )
    assert "line 6: event must be a JSON object, got list" in err
    assert "line 7: type: unknown event type 'itsm.ticket.teleported'" in err
    assert "8 lines read, 4 sent, 4 refused" in done.stdout.decode()
    records = read_topic(settings, "tickets", 3)
    assert sorted(r.key for r in records) == [b"INC1", b"INC1", b"INC1"]
    assert [r.key for r in read_topic(settings, "servicedesk", 1)] == [b"C1"]


def test_gzip_on_stdin_to_kafka(settings: Settings) -> None:
    good = [line for n, line in enumerate(history(), start=1) if n in (1, 2, 8)]
    done = cli(settings, "-", stdin=gzip.compress(text(good)))
    assert done.returncode == 0, done.stderr.decode()
    assert "3 lines read, 3 sent, 0 refused" in done.stdout.decode()
    assert [r.key for r in read_topic(settings, "tickets", 2)] == [b"INC1", b"INC1"]
    assert [r.key for r in read_topic(settings, "servicedesk", 1)] == [b"C1"]


def test_unreachable_broker_is_one_line_and_exit_5(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_bytes(text(history()[:1]))
    unreachable = settings.model_copy(update={"kafka_bootstrap_servers": "127.0.0.1:9"})
    done = cli(unreachable, str(path))
    assert done.returncode == 5
    assert done.stderr.decode().startswith("itsm-metrics: Kafka broker unreachable")


def test_rate_limit_is_honoured() -> None:
    sent: list[Any] = []
    lines = [
        Line(n, json.dumps(ticket_event(f"R{n}", october(9), "new")).encode()) for n in range(1, 12)
    ]
    started = time.monotonic()
    replay_kafka(
        lines, sent.extend, TEST_SETTINGS, Reporter(io.StringIO()), batch_size=5, pacer=Pacer(50.0)
    )
    elapsed = time.monotonic() - started
    # 11 events at 50/s: the 11th is due 10/50 = 0.2 s after the first
    assert len(sent) == 11
    assert 0.19 <= elapsed < 2.0


def test_an_unreachable_api_is_one_line_and_exit_2(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_bytes(text(history()))
    done = cli(settings, str(path), "--via", "http", "--url", "http://127.0.0.1:9", "--token", "t")
    assert done.returncode == 2
    assert (
        done.stderr.decode().splitlines()[-1].startswith("itsm-metrics: api at http://127.0.0.1:9")
    )


def test_http_without_a_token_is_a_usage_error(settings: Settings, tmp_path: Path) -> None:
    done = cli(settings, str(tmp_path / "missing.jsonl"), "--via", "http")
    assert done.returncode == 2
    assert "ITSM_INGEST_TOKEN" in done.stderr.decode()


def test_a_missing_file_is_one_line_and_exit_2(settings: Settings, tmp_path: Path) -> None:
    done = cli(settings, str(tmp_path / "missing.jsonl"))
    assert done.returncode == 2
    assert done.stderr.decode().startswith("itsm-metrics: cannot read")
