"""Schemathesis over the app's own /openapi.json (SPEC §7), served by uvicorn on a real database
holding a small data set and the real broker: for generated valid and invalid requests of every
operation, with no token and with the admin token, no answer is a 5xx, every answer is
documented (status, media type, schema) and every 4xx carries the error body.

Bounded for the suite's time (about a minute): a few examples per operation, derandomized (the
same requests on every run), no shrinking (a failure shows the request that failed), no example
database. Raise EXAMPLES or change the seed to search further: 200 per operation with another
seed found nothing more."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Postgres
from tests.fuzz.data import ADMIN, document, listening, served

EXAMPLES = 10
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
REFUSALS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
# Answers of an ingest route that are its result (SPEC §7.1: no event accepted), not an error.
RESULT_422 = {"/v1/events", "/v1/ingest/alertmanager"}


def error_body(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx is `{"error": {"code", "message", "details"}}` (SPEC §7), as JSON."""
    if not 400 <= response.status_code < 500:
        return None
    body = response.json()
    if response.status_code == 422 and case.path in RESULT_422 and "rejected" in body:
        return None
    assert response.headers.get("content-type", [""])[0].startswith("application/json")
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["code"], str) and isinstance(body["error"]["message"], str)
    return None


DOCUMENT = document()
schema = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=schemathesis.Config.from_dict(
        {
            "seed": 14,
            "generation": {"max-examples": EXAMPLES, "deterministic": True},
            # Invalid data may also be refused as too large: a batch over MAX_BATCH (SPEC §7).
            "checks": {"negative_data_rejection": {"expected-statuses": REFUSALS}},
        }
    ),
)


@pytest.fixture(scope="module")
def api(postgres: Postgres, kafka_bootstrap: str) -> Iterator[str]:
    """The base URL of the app over the data set, served by uvicorn as in production."""
    with served(postgres, kafka_bootstrap) as (app, _), listening(app) as url:
        assert app.openapi() == DOCUMENT
        yield url


BUDGET = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@BUDGET
def test_without_a_token(case: Any, api: str) -> None:
    case.call_and_validate(base_url=api, checks=CHECKS, additional_checks=[error_body])


@schema.parametrize()
@BUDGET
def test_with_the_admin_token(case: Any, api: str) -> None:
    case.call_and_validate(
        base_url=api, headers=ADMIN, checks=CHECKS, additional_checks=[error_body]
    )
