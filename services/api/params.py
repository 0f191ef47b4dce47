"""What a request's parameters and body fields may hold (SPEC §7): checked where the request
comes in, so a hostile value is a 422 with the error body and never reaches PostgreSQL (a NUL,
an integer past its column) or date arithmetic (a year at the edge of the calendar) to come back
as a 500."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, TypeVar

from fastapi import Path, Request
from pydantic import AfterValidator, BeforeValidator

from shared.errors import InvalidRequest
from shared.windows import FIRST_YEAR, LAST_YEAR

# C0 control characters and DEL: PostgreSQL cannot store a NUL in text, and none of them belongs
# in an id, a filter or a period; in a log line they would forge lines.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The same rule as the OpenAPI document states it for every string parameter.
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"
# Text of a request body (titles, notes: lines and tabs allowed) that PostgreSQL can store.
STORABLE = r"^[^\x00]*$"
# Every row id of the database is a PostgreSQL bigint.
BIGINT_MAX = 2**63 - 1
# A row id in a path (`/v1/improvements/{improvement_id}`).
RowId = Annotated[int, Path(ge=1, le=BIGINT_MAX)]


async def refuse_control_characters(request: Request) -> None:
    """A query parameter (name or value) or a path parameter holding a control character is a
    422 naming it. On every route (the app's dependency), declared parameters or not: the
    indicator route reads its dimension filters from the query string as they come."""
    path = [("path", k) for k, v in request.path_params.items() if CONTROL.search(str(v))]
    query = [
        ("query", k)
        for k, v in request.query_params.multi_items()
        if CONTROL.search(k) or CONTROL.search(v)
    ]
    if path or query:
        details = [
            {"loc": [where, CONTROL.sub("?", name)], "msg": "control characters are refused"}
            for where, name in dict.fromkeys(path + query)
        ]
        raise InvalidRequest(
            "a parameter holds a control character (U+0000-U+001F or U+007F)", details=details
        )


# RFC 3339's date, and date and time: pydantic would also read a number (`0.5`) as a Unix time.
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _date_text(value: object) -> object:
    if not isinstance(value, str | date) or (isinstance(value, str) and not _DATE.fullmatch(value)):
        raise ValueError("expected a date, e.g. 2026-10-31")
    return value


def _date_time_text(value: object) -> object:
    if not isinstance(value, str | datetime) or (
        isinstance(value, str) and not _DATE_TIME.match(value)
    ):
        raise ValueError("expected an RFC 3339 date and time, e.g. 2026-10-01T00:00:00Z")
    return value


_Day = TypeVar("_Day", bound=date)


def _in_calendar(day: _Day) -> _Day:
    # Windows and periods step a year or so past an instant in any time zone; years far from
    # now would overflow Python's calendar (years 1-9999) before PostgreSQL ever saw them.
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise ValueError(f"the year must be {FIRST_YEAR}-{LAST_YEAR}")
    return day


# An instant (a query parameter, a body field): RFC 3339 text, within the years the api computes
# windows for.
Instant = Annotated[datetime, BeforeValidator(_date_time_text), AfterValidator(_in_calendar)]
# A day (a due date): `2026-10-31`, within the same years.
Day = Annotated[date, BeforeValidator(_date_text), AfterValidator(_in_calendar)]
