"""GET /v1/dead-letters (SPEC §3.6): admin only, newest first, filters and pagination."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from services.api.app import create_app
from services.collector.store import DeadLetter, store_batch
from shared.db import make_engine
from shared.settings import Settings
from tests.conftest import Postgres, make_settings
from tests.helpers import add_dead_letter

ADMIN = {"Authorization": "Bearer admin-secret"}
URL = "/v1/dead-letters"


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine)) as c:
        yield c


# --- auth ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer nope"}, 401),
        ({"Authorization": "Basic admin-secret"}, 401),
        ({"Authorization": "Bearer ingest-secret"}, 403),
    ],
)
def test_dead_letters_need_the_admin_token(
    client: TestClient, headers: dict[str, str], status: int
) -> None:
    resp = client.get(URL, headers=headers)
    assert resp.status_code == status
    assert resp.json()["error"]["code"] == {401: "unauthorized", 403: "forbidden"}[status]


def test_read_token_cannot_see_raw_payloads(postgres: Postgres, kafka_bootstrap: str) -> None:
    s = make_settings(postgres.fresh(), kafka_bootstrap, read_token="reader")
    eng = make_engine(s.require_database_url())
    with TestClient(create_app(s, eng)) as c:
        assert c.get(URL, headers={"Authorization": "Bearer reader"}).status_code == 403
        assert c.get(URL, headers=ADMIN).status_code == 200
    eng.dispose()


def test_dead_letters_are_refused_when_no_admin_token_is_configured(
    postgres: Postgres, kafka_bootstrap: str
) -> None:
    s = make_settings(postgres.fresh(), kafka_bootstrap, admin_token=None)
    eng = make_engine(s.require_database_url())
    with TestClient(create_app(s, eng)) as c:
        resp = c.get(URL, headers={"Authorization": "Bearer ingest-secret"})
        assert resp.status_code == 403
        assert "ITSM_ADMIN_TOKEN" in resp.json()["error"]["message"]
    eng.dispose()


# --- content ------------------------------------------------------------------------------------
def test_a_dead_letter_comes_back_with_its_reason_origin_and_raw_bytes(
    client: TestClient, engine: Engine
) -> None:
    raw = json.dumps({"specversion": "1.0", "id": "e1", "type": "itsm.ticket.bogus"}).encode()
    with engine.begin() as conn:
        store_batch(
            conn,
            [],
            [
                DeadLetter(
                    "type: unknown event type 'itsm.ticket.bogus'",
                    raw,
                    "itsm.tickets",
                    2,
                    41,
                    "test://itsm",
                    "e1",
                    "itsm.ticket.bogus",
                )
            ],
        )
    resp = client.get(URL, headers=ADMIN)
    assert resp.status_code == 200
    [item] = resp.json()["items"]
    received = datetime.fromisoformat(item.pop("received_at"))
    assert abs((datetime.now(UTC) - received).total_seconds()) < 60
    assert item == {
        "id": item["id"],
        "reason": "type: unknown event type 'itsm.ticket.bogus'",
        "topic": "itsm.tickets",
        "partition": 2,
        "offset": 41,
        "event_source": "test://itsm",
        "event_id": "e1",
        "event_type": "itsm.ticket.bogus",
        "replayed_at": None,
        "raw_text": raw.decode(),
        "raw_base64": base64.b64encode(raw).decode(),
    }
    assert resp.json()["next_before_id"] is None


def test_raw_bytes_that_are_not_utf8_have_no_text_but_keep_their_base64(
    client: TestClient, engine: Engine
) -> None:
    raw = b"\xff\xfe{\x00binary"
    add_dead_letter(engine, raw, "not JSON: 'utf-8' codec can't decode byte 0xff")
    [item] = client.get(URL, headers=ADMIN).json()["items"]
    assert item["raw_text"] is None
    assert base64.b64decode(item["raw_base64"]) == raw


def test_hostile_strings_come_back_literally_as_json_data(
    client: TestClient, engine: Engine
) -> None:
    hostile = "x'); DROP TABLE dead_letters; -- <script>alert(1)</script> %_\\"
    add_dead_letter(engine, hostile.encode(), f"not JSON: {hostile}", event_id=hostile)
    resp = client.get(URL, params={"reason": "DROP TABLE dead_letters; --"}, headers=ADMIN)
    assert resp.headers["content-type"] == "application/json"
    [item] = resp.json()["items"]
    assert item["reason"] == f"not JSON: {hostile}"
    assert item["event_id"] == hostile
    assert item["raw_text"] == hostile
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM dead_letters")).scalar() == 1


# --- paging and filters -------------------------------------------------------------------------
def test_pages_go_from_newest_to_oldest(client: TestClient, engine: Engine) -> None:
    made = [add_dead_letter(engine, b"x", f"reason {n}") for n in range(5)]
    # 5 rows, 2 per page: [5 4] [3 2] [1]
    first = client.get(URL, params={"limit": 2}, headers=ADMIN).json()
    assert ids_of(first) == [made[4], made[3]]
    assert first["next_before_id"] == made[3]
    second = client.get(
        URL, params={"limit": 2, "before_id": first["next_before_id"]}, headers=ADMIN
    ).json()
    assert ids_of(second) == [made[2], made[1]]
    third = client.get(
        URL, params={"limit": 2, "before_id": second["next_before_id"]}, headers=ADMIN
    ).json()
    assert ids_of(third) == [made[0]]
    assert third["next_before_id"] is None


def test_a_last_page_that_is_exactly_full_says_there_is_no_more(
    client: TestClient, engine: Engine
) -> None:
    for n in range(2):
        add_dead_letter(engine, b"x", f"reason {n}")
    body = client.get(URL, params={"limit": 2}, headers=ADMIN).json()
    assert len(body["items"]) == 2
    assert body["next_before_id"] is None


def test_filters_by_replay_state_and_reason_substring(client: TestClient, engine: Engine) -> None:
    json_bad = add_dead_letter(engine, b"{", "not JSON: Expecting property name")
    prio = add_dead_letter(engine, b"{}", "data.priority: Input should be a valid integer")
    done = add_dead_letter(
        engine, b"{}", "data.priority: 100% wrong", replayed_at=datetime(2026, 10, 5, tzinfo=UTC)
    )

    def get(**params: object) -> list[int]:
        return ids_of(client.get(URL, params=params, headers=ADMIN).json())

    assert get(replayed="false") == [prio, json_bad]
    assert get(replayed="true") == [done]
    assert get(reason="PRIORITY") == [done, prio]  # case-insensitive
    assert get(reason="priority", replayed="false") == [prio]
    assert get(reason="100%") == [done]  # % is a character, not a wildcard
    assert get(reason="%") == [done]
    assert get(reason="_") == []


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"before_id": "abc"}])
def test_out_of_range_parameters_are_422(client: TestClient, params: dict[str, object]) -> None:
    resp = client.get(URL, params=params, headers=ADMIN)
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] == "validation_error"


def test_limit_up_to_1000_is_accepted(client: TestClient) -> None:
    resp = client.get(URL, params={"limit": 1000}, headers=ADMIN)
    assert resp.status_code == 200
    assert resp.json() == {"items": [], "next_before_id": None}


def ids_of(body: dict[str, list[dict[str, int]]]) -> list[int]:
    return [item["id"] for item in body["items"]]
