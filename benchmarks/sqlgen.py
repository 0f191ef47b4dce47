"""SQL expression builders for the realistic loader: hashed uniforms, categorical draws,
JSON built as text, RFC 3339 instants; and the statement runner that types array
parameters. Randomness is a hash of (row number, seed, stream), `hashint8extended`, so the same
seed gives the same rows whatever plan PostgreSQL picks."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import Connection, text

from benchmarks import realistic_world as rw


def u(stream: int, seed: int, key: str = "g") -> str:
    """A uniform in (0, 1), fixed by (key, seed, stream). `key` is a bigint column."""
    return (
        f"(((hashint8extended({key}, {seed * 1000 + stream}) & 9007199254740991)::float8 + 0.5)"
        " / 9007199254740992.0)"
    )


def ut(stream: int, seed: int, key: str) -> str:
    """The same for a text key (a ticket id)."""
    return (
        f"(((hashtextextended({key}, {seed * 1000 + stream}) & 9007199254740991)::float8 + 0.5)"
        " / 9007199254740992.0)"
    )


def z(u1: str, u2: str) -> str:
    """A standard normal from two uniforms (Box–Muller)."""
    return f"(sqrt(-2 * ln({u1})) * cos(2 * pi() * {u2}))"


def floats(values: Any) -> str:
    return "ARRAY[" + ",".join(repr(float(v)) for v in values) + "]::float8[]"


def texts(values: Any) -> str:
    return "(ARRAY[" + ",".join("'" + str(v).replace("'", "''") + "'" for v in values) + "])"


def bucket(u: str, weights: Mapping[Any, float]) -> str:
    """1-based category of a uniform (Python: rw.pick(rw.cdf(weights), u) + 1)."""
    return f"width_bucket({u}, {floats(rw.cdf(weights))})"


def iso(epoch: str) -> str:
    """RFC 3339 text as the events and projections write it: `2026-10-05T09:12:00+00:00`."""
    return (
        f"""to_char(to_timestamp({epoch}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"')"""
    )


def ci_id(index: str) -> str:
    """A CI's id from its 1-based index (rw.ci_id)."""
    cases = " ".join(
        f"WHEN {index} <= {last} THEN '{prefix}-'" for prefix, _t, _l, _f, last in rw.ci_ranges()
    )
    return f"(CASE {cases} END || lpad(({index})::text, 5, '0'))"


def ts(epoch: str) -> str:
    return f"to_timestamp({epoch})"


def json_object(fields: dict[str, str]) -> str:
    """A JSON object built as text and cast once: several times cheaper per row than
    jsonb_build_object. Each value is an SQL expression of a JSON fragment (`string`, `number`,
    `array`); a NULL one leaves its key out, like a field an event does not send. Text values
    are the world's ids, names and RFC 3339 instants: nothing to escape (`realistic_sql` checks)."""
    parts = ", ".join(f"""'"{key}":' || {value}""" for key, value in fields.items())
    return f"('{{' || concat_ws(',', {parts}) || '}}')::jsonb"


def string(expr: str) -> str:
    return f"""('"' || {expr} || '"')"""


def number(expr: str) -> str:
    """A number or a boolean."""
    return f"({expr})::text"


def array(expr: str) -> str:
    """A non-empty text[] (an empty one leaves its key out)."""
    return f"CASE WHEN cardinality({expr}) > 0 THEN array_to_json({expr})::text END"


def per(values: Mapping[Any, float], index: str) -> str:
    """`values` in key order as an array, subscripted by a 1-based SQL index."""
    return f"({floats(values.values())})[{index}]"


# The array parameters' types: psycopg would send integers as numeric, which cannot subscript.
_ARRAYS = {
    "services": "text[]",
    "groups": "text[]",
    "svc_cdf": "float8[]",
    "grp_cdf": "float8[]",
    "svc_ci_at": "int[]",
    "svc_ci": "int[]",
    "slot_start": "float8[]",
    "slot_len": "float8[]",
    "slot_cdf": "float8[]",
}
_ARRAY_PARAM = re.compile(r"(?<!:):(" + "|".join(_ARRAYS) + r")\b")


def execute(conn: Connection, sql: str, params: dict[str, Any]) -> int:
    typed = _ARRAY_PARAM.sub(lambda m: f"CAST(:{m[1]} AS {_ARRAYS[m[1]]})", sql)
    return int(conn.execute(text(typed), params).rowcount)


@contextlib.contextmanager
def indexes_built_after(conn: Connection, table: str) -> Iterator[None]:
    """Fill an empty table without its secondary indexes, then build them (PostgreSQL's
    "Populating a Database" advice: a build after a bulk load is about twice as fast as
    maintaining them row by row). The same definitions, in the caller's transaction, so a
    failure rolls the drop back too. A table that already holds rows keeps its indexes."""
    if conn.execute(text(f"SELECT EXISTS (SELECT FROM {table})")).scalar_one():
        yield
        return
    secondary = conn.execute(
        text(
            """
            SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
            FROM pg_index i
            WHERE i.indrelid = CAST(:t AS regclass)
              AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid)
            """
        ),
        {"t": table},
    ).all()
    for name, _ in secondary:
        conn.execute(text(f"DROP INDEX {name}"))
    yield
    # More sort memory for the builds (the GiST over open periods builds ~20 % faster), then
    # the caller's setting back.
    before = conn.execute(text("SELECT current_setting('maintenance_work_mem')")).scalar_one()
    conn.execute(text("SELECT set_config('maintenance_work_mem', '256MB', true)"))
    for _, definition in secondary:
        conn.execute(text(definition))
    conn.execute(text("SELECT set_config('maintenance_work_mem', :v, true)"), {"v": before})
