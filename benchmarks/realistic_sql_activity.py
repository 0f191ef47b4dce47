"""The realistic month's changes, alerts, calls and surveys in SQL, around its tickets."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from benchmarks import realistic_world as rw
from benchmarks import sqlgen as g

# --- -------------------------------------------------------------


def changes_sql(seed: int) -> str:
    """Mirrors realistic_events.change."""

    def u(k: int) -> str:
        return g.u(100 + k, seed)

    types = list(rw.CHANGE_TYPE_WEIGHTS)
    normal = types.index("normal") + 1
    return f"""
    INSERT INTO changes (change_id, change_type, service, ci_ids, risk, state, requested_at,
                         approved_at, rejected_at, planned_start, planned_end, actual_start,
                         actual_end, implemented_at, outcome, release_id, approved, sequence,
                         last_event_time, event_count, snapshot)
    SELECT change_id, change_type, service, ci_ids, risk, state, {g.ts("t_req")},
           CASE WHEN approved THEN {g.ts("t_app")} END,
           CASE WHEN i_app AND rejected THEN {g.ts("t_app")} END,
           CASE WHEN approved THEN {g.ts("ps")} END, CASE WHEN approved THEN {g.ts("pe")} END,
           CASE WHEN i_impl THEN {g.ts("as_")} END, CASE WHEN i_impl THEN {g.ts("ae")} END,
           CASE WHEN i_impl THEN {g.ts("ae")} END, CASE WHEN i_impl THEN outcome END,
           release_id, approved, events,
           {
        g.ts(
            "CASE WHEN i_close THEN ae + "
            + str(rw.CHANGE_CLOSE_S)
            + " WHEN i_impl THEN ae WHEN i_app THEN t_app ELSE t_req END"
        )
    },
           events,
           {
        g.json_object(
            {
                "change_id": g.string("change_id"),
                "change_type": g.string("change_type"),
                "service": g.string("service"),
                "ci_ids": g.array("ci_ids"),
                "risk": g.string("risk"),
                "requested_at": g.string(g.iso("t_req")),
                "release_id": g.string("release_id"),
                "approved_at": f"CASE WHEN approved THEN {g.string(g.iso('t_app'))} END",
                "planned_start": f"CASE WHEN approved THEN {g.string(g.iso('ps'))} END",
                "planned_end": f"CASE WHEN approved THEN {g.string(g.iso('pe'))} END",
                "actual_start": f"CASE WHEN i_impl THEN {g.string(g.iso('as_'))} END",
                "actual_end": f"CASE WHEN i_impl THEN {g.string(g.iso('ae'))} END",
                "outcome": f"CASE WHEN i_impl THEN {g.string('outcome')} END",
                "sequence": g.number("events"),
            }
        )
    }
    FROM (
        SELECT y.*,
               CASE WHEN i_close THEN 'closed' WHEN i_impl THEN 'implemented'
                    WHEN i_app AND rejected THEN 'rejected' WHEN i_app THEN 'approved'
                    ELSE 'requested' END AS state,
               i_app AND NOT rejected AS approved,
               1 + i_app::int + i_impl::int + i_close::int AS events
        FROM (
            SELECT x.*, t_app < :as_of AS i_app,
                   NOT rejected AND ae < :as_of AS i_impl,
                   NOT rejected AND ae + {rw.CHANGE_CLOSE_S} < :as_of AS i_close
            FROM (
                SELECT d.*, as_ + round((pe - ps) * (0.7 + 0.6 * u_factor)) AS ae
                FROM (
                    SELECT c.*, ps + floor(u_jitter * 900) AS as_,
                           ps + greatest(600, round({rw.CHANGE_DURATION_MEDIAN_S}
                                * exp({rw.CHANGE_DURATION_SIGMA} * z_dur))) AS pe
                    FROM (
                        SELECT b.*, t_app + round({g.per(rw.LEAD_MEDIAN_S, "type_i")}
                                    * exp({rw.LEAD_SIGMA} * z_lead)) AS ps
                        FROM (
                            SELECT a.*, t_req + greatest(60, round(
                                       {g.per(rw.APPROVAL_MEDIAN_S, "type_i")}
                                       * exp({rw.APPROVAL_SIGMA} * z_app))) AS t_app
                            FROM (
                                SELECT g, type_i, svc,
                                       'CHG' || :yymm || lpad(g::text, 6, '0') AS change_id,
                                       {g.texts(types)}[type_i] AS change_type,
                                       (:services)[svc] AS service,
                                       {g.texts(rw.RISK_WEIGHTS)}[{
        g.bucket(u(4), rw.RISK_WEIGHTS)
    }] AS risk,
                                       floor((:slot_start)[slot] + u_within * (:slot_len)[slot]) AS t_req,
                                       type_i = {normal} AND {u(5)} < {rw.REJECTED} AS rejected,
                                       CASE WHEN type_i = {normal} AND {u(6)} < {rw.IN_RELEASE}
                                            THEN 'REL-' || to_char(to_timestamp(floor((:slot_start)[slot] + u_within * (:slot_len)[slot])) AT TIME ZONE 'UTC', 'YYMM')
                                                 || '-' || (1 + floor({u(7)} * 12))::int
                                       END AS release_id,
                                       {g.texts(rw.OUTCOME_WEIGHTS)}[{
        g.bucket(u(8), rw.OUTCOME_WEIGHTS)
    }] AS outcome,
                                       {g.z(u(9), u(10))} AS z_app, {g.z(u(11), u(12))} AS z_lead,
                                       {g.z(u(13), u(14))} AS z_dur, {u(15)} AS u_jitter,
                                       {u(16)} AS u_factor,
                                       ARRAY(SELECT {
        g.ci_id("(:svc_ci)[(:svc_ci_at)[svc] + (first + k) % n_svc]")
    }
                                             FROM generate_series(0, n_cis - 1) AS k) AS ci_ids
                                FROM (
                                    SELECT g, {g.bucket(u(1), rw.CHANGE_TYPE_WEIGHTS)} AS type_i,
                                           width_bucket({u(2)}, :svc_cdf) AS svc,
                                           {g.bucket(u(3), rw.CHANGE_CI_WEIGHTS)} AS n_cis,
                                           width_bucket({u(17)}, :slot_cdf) AS slot,
                                           {u(18)} AS u_within, {u(19)} AS u_first
                                    FROM generate_series(1::bigint, :n) AS g
                                    OFFSET 0
                                ) s,
                                LATERAL (SELECT (:svc_ci_at)[svc + 1] - (:svc_ci_at)[svc] AS n_svc) n,
                                LATERAL (SELECT floor(u_first * n_svc)::int AS first) f
                                OFFSET 0
                            ) a OFFSET 0
                        ) b OFFSET 0
                    ) c OFFSET 0
                ) d OFFSET 0
            ) x OFFSET 0
        ) y OFFSET 0
    ) z
    """  # noqa: E501


def alerts_sql(seed: int) -> str:
    """Mirrors realistic_events.alert_events."""

    def u(k: int) -> str:
        return g.u(200 + k, seed)

    severities = list(rw.SEVERITY_WEIGHTS)
    return f"""
    INSERT INTO alerts (alert_id, ci_id, service, "check", severity, outage, threshold, value,
                        state, started_at, ended_at, sequence, last_event_time, event_count,
                        snapshot)
    SELECT alert_id, ci_id, service, chk, severity, severity = 'critical', threshold, value,
           CASE WHEN resolved THEN 'resolved' ELSE 'firing' END, {g.ts("t")},
           CASE WHEN resolved THEN {g.ts("t + dur")} END, NULL,
           {g.ts("CASE WHEN resolved THEN t + dur ELSE t END")},
           CASE WHEN resolved THEN 2 ELSE 1 END,
           {
        g.json_object(
            {
                "alert_id": g.string("alert_id"),
                "ci_id": g.string("ci_id"),
                "service": g.string("service"),
                "check": g.string("chk"),
                "severity": g.string("severity"),
                "threshold": g.number("threshold"),
                "value": g.number("value"),
                "started_at": g.string(g.iso("t")),
                "ended_at": f"CASE WHEN resolved THEN {g.string(g.iso('t + dur'))} END",
            }
        )
    }
    FROM (
        SELECT a.*, t + dur < :as_of AS resolved
        FROM (
            SELECT g, 'ALR' || :yymm || lpad(g::text, 7, '0') AS alert_id,
                   {g.ci_id("ci")} AS ci_id, (:services)[(ci - 1) % {rw.N_SERVICES} + 1] AS service,
                   {g.texts(rw.CHECKS)}[1 + floor({u(2)} * {len(rw.CHECKS)})::int] AS chk,
                   {g.texts(severities)}[sev] AS severity, t,
                   least({rw.ALERT_MAX_S}, greatest(30, round({g.per(rw.ALERT_MEDIAN_S, "sev")}
                         * exp({rw.ALERT_SIGMA} * {g.z(u(4), u(5))})))) AS dur,
                   threshold, round((threshold + {u(6)} * 10)::numeric, 1)::float8 AS value
            FROM (
                SELECT g, 1 + (floor({u(1)} * {u(1)} * {rw.N_CIS})::bigint * 2654435761) % {
        rw.N_CIS
    } AS ci,
                       {g.bucket(u(3), rw.SEVERITY_WEIGHTS)} AS sev,
                       floor(:t0 + {u(7)} * :span) AS t,
                       (ARRAY[80, 90, 95, 99]::float8[])[1 + floor({u(8)} * 4)::int] AS threshold
                FROM generate_series(1::bigint, :n) AS g
                OFFSET 0
            ) s
            OFFSET 0
        ) a
        WHERE t < :as_of
        OFFSET 0
    ) x
    """


def load_calls(conn: Connection, seed: int, p: dict[str, Any]) -> int:
    """The calls that logged the month's phone tickets, then the unlogged ones (answered
    information calls and abandoned calls) at the world's ratios."""
    logged = g.execute(conn, _logged_calls_sql(seed), p)
    unlogged = round(logged / (rw.ANSWERED * rw.LOGGED) - logged)
    return logged + g.execute(conn, _unlogged_calls_sql(seed), {**p, "n": unlogged})


def _logged_calls_sql(seed: int) -> str:
    def u(k: int) -> str:
        return g.ut(300 + k, seed, "ticket_id")

    return f"""
    INSERT INTO calls (call_id, answered, wait_seconds, handle_seconds, ticket_id, agent,
                       completed_at, last_event_time, event_count, snapshot)
    SELECT call_id, true, wait, handle, ticket_id, agent, at, at, 1,
           {
        g.json_object(
            {
                "call_id": g.string("call_id"),
                "answered": "'true'",
                "wait_seconds": g.number("wait"),
                "handle_seconds": g.number("handle"),
                "ticket_id": g.string("ticket_id"),
                "agent": g.string("agent"),
            }
        )
    }
    FROM (
        SELECT 'CALL' || ticket_id AS call_id, ticket_id,
               round({rw.WAIT_MEDIAN_S} * exp({rw.WAIT_SIGMA} * {g.z(u(1), u(2))})) AS wait,
               round({rw.HANDLE_MEDIAN_S} * exp({rw.HANDLE_SIGMA} * {g.z(u(3), u(4))})) AS handle,
               'eng-' || lpad(floor({u(5)} * {rw.N_ENGINEERS})::text, 3, '0') AS agent,
               opened_at + floor({u(6)} * 60) * interval '1 second' AS at
        FROM pg_temp.bench_loaded_tickets
        WHERE channel = 'phone'
        OFFSET 0
    ) c
    WHERE at < to_timestamp(:as_of)
    """


def _unlogged_calls_sql(seed: int) -> str:
    def u(k: int) -> str:
        return g.u(400 + k, seed)

    answered = (rw.ANSWERED * (1 - rw.LOGGED)) / (1 - rw.ANSWERED * rw.LOGGED)
    return f"""
    INSERT INTO calls (call_id, answered, wait_seconds, handle_seconds, ticket_id, agent,
                       completed_at, last_event_time, event_count, snapshot)
    SELECT call_id, answered, wait, handle, NULL, agent, {g.ts("t")}, {g.ts("t")}, 1,
           {
        g.json_object(
            {
                "call_id": g.string("call_id"),
                "answered": g.number("answered"),
                "wait_seconds": g.number("wait"),
                "handle_seconds": g.number("handle"),
                "agent": g.string("agent"),
            }
        )
    }
    FROM (
        SELECT 'CALL' || :yymm || 'X' || lpad(g::text, 7, '0') AS call_id, answered, t,
               round(CASE WHEN answered THEN {rw.WAIT_MEDIAN_S} ELSE {rw.ABANDON_WAIT_MEDIAN_S} END
                     * exp({rw.WAIT_SIGMA} * {g.z(u(1), u(2))})) AS wait,
               CASE WHEN answered
                    THEN round({rw.HANDLE_MEDIAN_S} * exp({rw.HANDLE_SIGMA} * {g.z(u(3), u(4))}))
               END AS handle,
               CASE WHEN answered
                    THEN 'eng-' || lpad(floor({u(5)} * {rw.N_ENGINEERS})::text, 3, '0')
               END AS agent
        FROM (
            SELECT g, {u(6)} < {answered} AS answered,
                   floor((:slot_start)[slot] + {u(7)} * (:slot_len)[slot]) AS t
            FROM generate_series(1::bigint, :n) AS g,
                 LATERAL (SELECT width_bucket({u(8)}, :slot_cdf) AS slot) s
            OFFSET 0
        ) a
        OFFSET 0
    ) c
    WHERE t < :as_of
    """


def surveys_sql(seed: int) -> str:
    def u(k: int) -> str:
        return g.ut(500 + k, seed, "ticket_id")

    return f"""
    INSERT INTO surveys (survey_id, ticket_id, service, score, completed_at, last_event_time,
                         event_count, snapshot)
    SELECT survey_id, ticket_id, service, score, at, at, 1,
           {
        g.json_object(
            {
                "survey_id": g.string("survey_id"),
                "ticket_id": g.string("ticket_id"),
                "service": g.string("service"),
                "score": g.number("score"),
            }
        )
    }
    FROM (
        SELECT 'SRV' || ticket_id AS survey_id, ticket_id, service,
               {g.bucket(u(2), rw.SCORE_WEIGHTS)} AS score,
               resolved_at + round({rw.SURVEY_AFTER_MEDIAN_S}
                   * exp({rw.SURVEY_AFTER_SIGMA} * {g.z(u(3), u(4))})) * interval '1 second' AS at
        FROM pg_temp.bench_loaded_tickets
        WHERE resolved_at IS NOT NULL AND {u(1)} < {rw.SURVEYED}
        OFFSET 0
    ) s
    WHERE at < to_timestamp(:as_of)
    """
