"""`load_month`: the realistic world's month written straight into the projection tables, set-based
(INSERT … SELECT over generate_series; no per-row Python), with the distributions of
`realistic_world` and every column as the collector's projections would derive it from the
events `realistic_events` produces.

Randomness is a hash of (row number, seed, stream), `hashint8extended`, rather than
`setseed()` + `random()`: the same seed gives the same rows whatever plan, parallelism or
evaluation order PostgreSQL picks, and any statement can recompute a row's draws."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from benchmarks import realistic_events as rev
from benchmarks import realistic_world as rw
from benchmarks import sqlgen as g
from benchmarks.realistic_sql_activity import alerts_sql, changes_sql, load_calls, surveys_sql
from benchmarks.realistic_sql_tickets import load_tickets

Progress = Callable[[str], None]
_SAFE_TEXT = re.compile(r"[A-Za-z0-9 ._/-]+")


def _params(seed: int, start: datetime, end: datetime) -> dict[str, Any]:
    w = rw.world(seed)
    unsafe = [t for t in (*w.services, *w.groups) if not _SAFE_TEXT.fullmatch(t)]
    if unsafe:
        raise ValueError(f"names the SQL writes into JSON unescaped: {unsafe[:3]}")
    arr = rw.arrivals(start, end)
    flat: list[int] = []
    offsets = [1]
    for cis in w.service_cis:
        flat.extend(cis)
        offsets.append(len(flat) + 1)
    return {
        "services": list(w.services),
        "svc_cdf": list(w.service_cdf),
        "groups": list(w.groups),
        "grp_cdf": list(w.group_cdf),
        "svc_ci_at": offsets,
        "svc_ci": flat,
        "slot_start": list(arr.starts),
        "slot_len": list(arr.lengths),
        "slot_cdf": list(arr.bounds),
        "yymm": f"{start:%y%m}",
        "t0": start.timestamp(),
        "span": (end - start).total_seconds(),
    }


def load_month(
    conn: Connection,
    n_tickets: int,
    month_start: datetime,
    seed: int = 1,
    *,
    as_of: datetime | None = None,
    progress: Progress | None = print,
) -> dict[str, int]:
    """Load one month (`month_start` to the next month) of the world into the projections:
    `n_tickets` tickets and, at the world's ratios, changes, alerts, calls and surveys, plus
    the 5,000 CIs, their checks and the knowledge base. `as_of` (default: the month's end) is
    "now": everything opens before it and lifecycles are cut at it, as if later events had not
    arrived yet. Marks no window dirty; the caller owns the transaction. Returns the rows
    loaded per table."""
    end = rev.month_end(month_start)
    stop = min(end, as_of) if as_of is not None else end
    if stop <= month_start:
        raise ValueError("as_of must be after month_start")
    cut = stop.timestamp()
    p = _params(seed, month_start, stop)
    p["as_of"] = cut
    counts: dict[str, int] = {}

    def step(name: str, fn: Callable[[], int]) -> None:
        started = time.perf_counter()
        counts[name] = fn()
        if progress is not None:
            elapsed = time.perf_counter() - started
            progress(f"  loaded {counts[name]:>9,} {name} in {elapsed:.1f} s")

    step("config_items", lambda: _config_items(conn, seed, month_start))
    step("monitor_checks", lambda: _checks(conn, seed, month_start))
    step("knowledge_articles", lambda: _articles(conn, seed, month_start, end, cut))
    n_changes = max(1, round(n_tickets * rw.CHANGES_PER_TICKET))
    step("changes", lambda: g.execute(conn, changes_sql(seed), {**p, "n": n_changes}))
    step("tickets", lambda: load_tickets(conn, seed, p, n_tickets, n_changes))
    n_alerts = round(n_tickets * rw.ALERTS_PER_TICKET)
    with g.indexes_built_after(conn, "alerts"):
        step("alerts", lambda: g.execute(conn, alerts_sql(seed), {**p, "n": n_alerts}))
    with g.indexes_built_after(conn, "calls"):
        step("calls", lambda: load_calls(conn, seed, p))
    step("surveys", lambda: g.execute(conn, surveys_sql(seed), p))
    conn.execute(text("DROP TABLE pg_temp.bench_loaded_tickets"))
    return counts


# --- reference data: built once in Python (the world's fixed size), one statement each ----------


def _config_items(conn: Connection, seed: int, start: datetime) -> int:
    w = rw.world(seed)
    rows = []
    for ci in w.cis:
        data = rev.ci_data(w, ci)
        rows.append({**data, "created": rev.ci_created(ci, start), "snapshot": data})
    sql = """
        INSERT INTO config_items (ci_id, ci_type, name, services, owner, depends_on, critical,
                                  attributes, created_at, sequence, last_event_time,
                                  event_count, snapshot)
        SELECT r.ci_id, r.ci_type, r.name, r.services, r.owner, r.depends_on, r.critical,
               r.attributes, to_timestamp(r.created), NULL, to_timestamp(r.created), 1, r.snapshot
        FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
            ci_id text, ci_type text, name text, services text[], owner text,
            depends_on text[], critical boolean, attributes jsonb, created float8, snapshot jsonb)
    """
    return g.execute(conn, sql, {"rows": json.dumps(rows)})


def _checks(conn: Connection, seed: int, start: datetime) -> int:
    w = rw.world(seed)
    rows = []
    for index, metric in rw.checks(seed):
        ci = w.cis[index - 1]
        check_id = f"{ci.ci_id}/{metric}"
        data = {"check_id": check_id, "ci_id": ci.ci_id, "metric": metric, "threshold": 90}
        rows.append({**data, "at": rev.ci_created(ci, start) + 3600, "snapshot": data})
    sql = """
        INSERT INTO monitor_checks (check_id, ci_id, metric, threshold, registered_at,
                                    last_event_time, event_count, snapshot)
        SELECT r.check_id, r.ci_id, r.metric, r.threshold, to_timestamp(r.at),
               to_timestamp(r.at), 1, r.snapshot
        FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
            check_id text, ci_id text, metric text, threshold float8, at float8, snapshot jsonb)
    """
    return g.execute(conn, sql, {"rows": json.dumps(rows)})


def _articles(conn: Connection, seed: int, start: datetime, end: datetime, cut: float) -> int:
    w = rw.world(seed)
    rows = []
    for a in rw.articles(seed, start, end):
        service = w.services[a.service]
        data = {
            "article_id": a.article_id,
            "service": service,
            "title": f"How to fix {service} issue {a.article_id[-4:]}",
        }
        updated = a.updated if a.updated is not None and a.updated < cut else None
        rows.append({**data, "published": a.published, "updated": updated, "snapshot": data})
    sql = """
        INSERT INTO knowledge_articles (article_id, service, title, published_at,
                                        last_updated_at, last_event_time, event_count, snapshot)
        SELECT r.article_id, r.service, r.title, to_timestamp(r.published),
               to_timestamp(coalesce(r.updated, r.published)),
               to_timestamp(coalesce(r.updated, r.published)),
               CASE WHEN r.updated IS NULL THEN 1 ELSE 2 END, r.snapshot
        FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
            article_id text, service text, title text, published float8, updated float8,
            snapshot jsonb)
    """
    return g.execute(conn, sql, {"rows": json.dumps(rows)})
