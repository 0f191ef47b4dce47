"""The realistic month's tickets in SQL: each ticket's plan (its draws and the instants of
every step of its life) and the ticket rows the collector's projection would derive from its
events."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from benchmarks import realistic_events as rev
from benchmarks import realistic_world as rw
from benchmarks import sqlgen as g


def load_tickets(
    conn: Connection, seed: int, p: dict[str, Any], n_tickets: int, n_changes: int
) -> int:
    """Plans first (a temp table: problems are linked to the month's own problem tickets),
    then the projection rows; what calls and surveys need of them is kept in the temp table
    `bench_loaded_tickets`, so they need not scan the wide `tickets` table again."""
    conn.execute(text("DROP TABLE IF EXISTS pg_temp.bench_ticket_plans"))
    conn.execute(text("DROP TABLE IF EXISTS pg_temp.bench_loaded_tickets"))
    conn.execute(
        text(
            "CREATE TEMP TABLE bench_loaded_tickets (ticket_id text, service text, "
            "channel text, opened_at timestamptz, resolved_at timestamptz)"
        )
    )
    g.execute(conn, _plans_sql(seed), {**p, "n": n_tickets})
    problems = conn.execute(
        text("SELECT count(*) FROM pg_temp.bench_ticket_plans WHERE kind_i = 3")
    ).scalar_one()
    with g.indexes_built_after(conn, "tickets"):
        g.execute(conn, _tickets_sql(seed), {**p, "n_problems": problems, "n_changes": n_changes})
    conn.execute(text("DROP TABLE pg_temp.bench_ticket_plans"))
    return n_tickets  # one row per plan


def _plans_sql(seed: int) -> str:
    """Each ticket's plan: its draws and the instants of every step of its life (epoch
    seconds; NULL for steps it does not take), before the cut. Mirrors
    realistic_events._ticket."""

    def u(k: int) -> str:
        return g.u(k, seed)

    kinds = list(rw.KIND_WEIGHTS)
    impact_cases = " ".join(
        f"WHEN {p} THEN ({g.floats(iu[0] for iu in pairs)})[1 + floor(iu * {len(pairs)})::int]"
        for p, pairs in rw.IMPACT_URGENCY.items()
    )
    urgency_cases = " ".join(
        f"WHEN {p} THEN ({g.floats(iu[1] for iu in pairs)})[1 + floor(iu * {len(pairs)})::int]"
        for p, pairs in rw.IMPACT_URGENCY.items()
    )
    major = {p: rw.MAJOR.get(p, 0.0) for p in rw.PRIORITY_WEIGHTS}
    non_quick = rw.NON_QUICK
    lo, hi = rw.WORK_BOUNDS_S
    return f"""
    CREATE TEMP TABLE bench_ticket_plans AS
    SELECT g, kind_i, priority, impact, urgency, svc, grp0, grp1, eng0, eng1, channel_i,
           n_cis, ci_a, ci_b, major, linked, link_u, caused, change_u, kb1, kb2, cancelled,
           t_open, t_open + resp AS t_resp,
           CASE WHEN reassigned THEN t_open + resp + greatest(1, floor(work * {rw.REASSIGN_AT}))
           END AS t_reas,
           CASE WHEN pending THEN t_open + resp + floor(work * {rw.PENDING_FROM}) END AS t_pend,
           CASE WHEN pending THEN t_open + resp + floor(work * {rw.PENDING_TO}) END AS t_unpend,
           t_open + resp + work AS t_res,
           CASE WHEN reopened THEN t_open + resp + work + reopen_after END AS t_reop,
           CASE WHEN reopened THEN t_open + resp + work + reopen_after + rework END AS t_res2,
           CASE WHEN NOT cancelled THEN t_open + resp + work
                + CASE WHEN reopened THEN reopen_after + rework ELSE 0 END + close_after
           END AS t_close
    FROM (
        SELECT d.*,
               floor((:slot_start)[slot] + u_within * (:slot_len)[slot]) AS t_open,
               CASE WHEN quick THEN {rw.QUICK_RESPONSE_S[0]} + floor(u_qr * {rw.QUICK_RESPONSE_S[1] - rw.QUICK_RESPONSE_S[0] + 1})
                    ELSE greatest(30, round({g.per(rw.RESPONSE_MEDIAN_S, "priority")} * exp({rw.RESPONSE_SIGMA} * z_resp)))
               END AS resp,
               CASE WHEN quick THEN {rw.QUICK_WORK_S[0]} + floor(u_qw * {rw.QUICK_WORK_S[1] - rw.QUICK_WORK_S[0] + 1})
                    ELSE least({hi}, greatest({lo}, round({g.per(rw.WORK_MEDIAN_S, "priority")}
                         * {g.per(rw.KIND_WORK_FACTOR, "kind_i")} * exp({rw.WORK_SIGMA} * z_work))))
               END AS work,
               NOT quick AND u_reas < {rw.REASSIGNED / non_quick} AS reassigned,
               NOT quick AND u_pend < {rw.PENDING / non_quick} AS pending,
               greatest(60, round({rw.REOPEN_AFTER_MEDIAN_S} * exp({rw.REOPEN_AFTER_SIGMA} * z_reop))) AS reopen_after,
               greatest(60, round({rw.REWORK_MEDIAN_S} * exp({rw.REWORK_SIGMA} * z_rework))) AS rework,
               CASE WHEN u_confirm < {rw.CONFIRMED}
                    THEN greatest(60, round({rw.CONFIRM_MEDIAN_S} * exp({rw.CONFIRM_SIGMA} * z_confirm)))
                    ELSE {rw.AUTO_CLOSE_S} END AS close_after,
               kind_i = 1 AND u_major < {g.per(major, "priority")} AS major,
               NOT quick AND u_cancel < {rw.CANCELLED / non_quick} AS cancelled,
               (NOT quick AND u_cancel < {rw.CANCELLED / non_quick}) IS FALSE
                   AND u_reopen < {rw.REOPENED} AS reopened,
               CASE priority {impact_cases} END::int AS impact,
               CASE priority {urgency_cases} END::int AS urgency,
               (grp0 + 1 + floor(u_shift * {rw.N_GROUPS - 1})::int) % {rw.N_GROUPS} AS grp1,
               (:svc_ci_at)[svc + 1] - (:svc_ci_at)[svc] AS ci_count
        FROM (
            SELECT g,
                   {g.bucket(u(1), rw.KIND_WEIGHTS)} AS kind_i,
                   {g.bucket(u(2), rw.PRIORITY_WEIGHTS)} AS priority,
                   {u(3)} AS iu,
                   width_bucket({u(4)}, :svc_cdf) AS svc,
                   width_bucket({u(5)}, :grp_cdf) - 1 AS grp0,
                   {u(6)} AS u_shift, {u(7)} AS u_m0, {u(8)} AS u_m1,
                   {g.bucket(u(9), rw.CHANNEL_WEIGHTS)} AS channel_i,
                   width_bucket({u(10)}, :slot_cdf) AS slot, {u(11)} AS u_within,
                   {g.bucket(u(1), rw.KIND_WEIGHTS)} <> {kinds.index("problem") + 1}
                       AND {u(12)} < {rw.QUICK_FIX} AS quick,
                   {g.z(u(13), u(14))} AS z_resp, {g.z(u(15), u(16))} AS z_work,
                   {u(17)} AS u_qr, {u(18)} AS u_qw, {u(19)} AS u_reas, {u(20)} AS u_pend,
                   {u(21)} AS u_cancel, {u(22)} AS u_reopen,
                   {g.z(u(23), u(24))} AS z_reop, {g.z(u(25), u(26))} AS z_rework,
                   {u(27)} AS u_confirm, {g.z(u(28), u(29))} AS z_confirm,
                   {u(30)} AS u_major,
                   {u(31)} < {rw.PROBLEM_LINKED} AS linked, {u(32)} AS link_u,
                   {u(33)} < {rw.CAUSED_BY_CHANGE} AS caused, {u(34)} AS change_u,
                   CASE WHEN {u(35)} < {rw.KNOWLEDGE_USED} THEN 1 + floor({u(37)} * {rw.N_ARTICLES})::int END AS kb1,
                   CASE WHEN {u(36)} < {rw.SECOND_ARTICLE} THEN 1 + floor({u(38)} * {rw.N_ARTICLES})::int END AS kb2,
                   {g.bucket(u(39), rw.CI_COUNT_WEIGHTS)} - 1 AS n_cis, {u(40)} AS u_ci
            FROM generate_series(1::bigint, :n) AS g
            OFFSET 0
        ) d
        OFFSET 0
    ) x,
    LATERAL (SELECT
        grp0 + {rw.N_GROUPS} * floor(u_m0 * (({rw.N_ENGINEERS} - grp0 + {rw.N_GROUPS - 1}) / {rw.N_GROUPS}))::int AS eng0,
        grp1 + {rw.N_GROUPS} * floor(u_m1 * (({rw.N_ENGINEERS} - grp1 + {rw.N_GROUPS - 1}) / {rw.N_GROUPS}))::int AS eng1,
        (:svc_ci)[(:svc_ci_at)[svc] + floor(u_ci * ci_count)::int] AS ci_a,
        (:svc_ci)[(:svc_ci_at)[svc] + (floor(u_ci * ci_count)::int + 1) % ci_count] AS ci_b
    ) e
    """  # noqa: E501


def _tickets_sql(seed: int) -> str:
    """The projection row of each plan, cut at :as_of (SPEC §3.1 derivations, as
    services/collector/projections/tickets.py makes them)."""
    kinds = list(rw.KIND_WEIGHTS)
    prefixes = [rev.KIND_PREFIX[k] for k in kinds]

    def inc(col: str) -> str:
        return f"coalesce({col} < :as_of, false)"

    def step(col: str, state: str) -> str:
        return f"""'["' || {g.iso(col)} || '","{state}"]'"""

    return f"""
    WITH loaded AS (
    INSERT INTO tickets (ticket_id, kind, state, service, priority, impact, urgency, channel,
                         assignment_group, assignee, ci_ids, opened_at, responded_at,
                         resolved_at, closed_at, major, problem_id, caused_by_change_id,
                         knowledge_article_ids, reassignments, reopens, paused_seconds,
                         first_contact_resolution, transitions, open_periods, sequence,
                         last_event_time, event_count, snapshot)
    SELECT ticket_id, kind, state, service, priority, impact, urgency, channel, grp, assignee,
           ci_ids, {g.ts("t_open")}, CASE WHEN i_resp THEN {g.ts("t_resp")} END,
           CASE WHEN state IN ('resolved', 'closed')
                THEN {g.ts("CASE WHEN i_res2 THEN t_res2 ELSE t_res END")} END,
           CASE WHEN state = 'closed' THEN {g.ts("t_close")} END,
           major, problem_id, change_id, articles, i_reas::int, i_reop::int,
           CASE WHEN i_unpend THEN t_unpend - t_pend ELSE 0 END, NULL,
           ('[' || concat_ws(',', {step("t_open", "new")},
                 CASE WHEN i_resp THEN {step("t_resp", "assigned")} END,
                 CASE WHEN i_pend THEN {step("t_pend", "pending")} END,
                 CASE WHEN i_unpend THEN {step("t_unpend", "in_progress")} END,
                 CASE WHEN i_res AND cancelled THEN {step("t_res", "cancelled")}
                      WHEN i_res THEN {step("t_res", "resolved")} END,
                 CASE WHEN i_reop THEN {step("t_reop", "in_progress")} END,
                 CASE WHEN i_res2 THEN {step("t_res2", "resolved")} END,
                 CASE WHEN i_close THEN {step("t_close", "closed")} END) || ']')::jsonb,
           tstzmultirange(
               tstzrange({g.ts("t_open")}, CASE WHEN i_res THEN {g.ts("t_res")} END),
               CASE WHEN i_reop THEN tstzrange({g.ts("t_reop")},
                                               CASE WHEN i_res2 THEN {g.ts("t_res2")} END)
                    ELSE 'empty'::tstzrange END),
           events, {g.ts("last_event")}, events,
           {
        g.json_object(
            {
                "ticket_id": g.string("ticket_id"),
                "kind": g.string("kind"),
                "state": g.string("state"),
                "service": g.string("service"),
                "ci_ids": g.array("ci_ids"),
                "priority": g.number("priority"),
                "impact": g.number("impact"),
                "urgency": g.number("urgency"),
                "channel": g.string("channel"),
                "assignment_group": g.string("grp"),
                "assignee": g.string("assignee"),
                "opened_at": g.string(g.iso("t_open")),
                "major": g.number("major"),
                "problem_id": g.string("problem_id"),
                "caused_by_change_id": g.string("change_id"),
                "knowledge_article_ids": g.array("articles"),
                "sequence": g.number("events"),
            }
        )
    }
    FROM (
        SELECT c.*,
               {g.texts(prefixes)}[kind_i] || :yymm || lpad(g::text, 7, '0') AS ticket_id,
               {g.texts(kinds)}[kind_i] AS kind,
               CASE WHEN i_close THEN 'closed' WHEN i_res2 THEN 'resolved'
                    WHEN i_reop THEN 'in_progress'
                    WHEN i_res THEN CASE WHEN cancelled THEN 'cancelled' ELSE 'resolved' END
                    WHEN i_unpend THEN 'in_progress' WHEN i_pend THEN 'pending'
                    WHEN i_resp THEN 'assigned' ELSE 'new' END AS state,
               (:services)[svc] AS service,
               {g.texts(rw.CHANNEL_WEIGHTS)}[channel_i] AS channel,
               (:groups)[CASE WHEN i_reas THEN grp1 ELSE grp0 END + 1] AS grp,
               CASE WHEN i_resp OR i_reas
                    THEN 'eng-' || lpad((CASE WHEN i_reas THEN eng1 ELSE eng0 END)::text, 3, '0')
               END AS assignee,
               CASE n_cis WHEN 0 THEN '{{}}'::text[] WHEN 1 THEN ARRAY[{g.ci_id("ci_a")}]
                    ELSE ARRAY[{g.ci_id("ci_a")}, {g.ci_id("ci_b")}] END AS ci_ids,
               CASE WHEN linked AND kind_i = 1 THEN pr.problem_id END AS problem_id,
               CASE WHEN caused AND kind_i = 1
                    THEN 'CHG' || :yymm || lpad((1 + floor(change_u * :n_changes))::text, 6, '0')
               END AS change_id,
               CASE WHEN i_res AND NOT cancelled AND kind_i <> 3 AND kb1 IS NOT NULL
                    THEN array_remove(ARRAY['KB' || lpad(kb1::text, 7, '0'),
                                            'KB' || lpad(kb2::text, 7, '0')], NULL)
                    ELSE '{{}}'::text[] END AS articles,
               1 + i_resp::int + i_reas::int + i_pend::int + i_unpend::int + i_res::int
                 + i_reop::int + i_res2::int + i_close::int AS events,
               greatest(t_open, CASE WHEN i_resp THEN t_resp END,
                        CASE WHEN i_reas THEN t_reas END, CASE WHEN i_pend THEN t_pend END,
                        CASE WHEN i_unpend THEN t_unpend END, CASE WHEN i_res THEN t_res END,
                        CASE WHEN i_reop THEN t_reop END, CASE WHEN i_res2 THEN t_res2 END,
                        CASE WHEN i_close THEN t_close END) AS last_event
        FROM (
            SELECT t.*,
                   {inc("t_resp")} AS i_resp, {inc("t_reas")} AS i_reas,
                   {inc("t_pend")} AS i_pend, {inc("t_unpend")} AS i_unpend,
                   {inc("t_res")} AS i_res, {inc("t_reop")} AS i_reop,
                   {inc("t_res2")} AS i_res2, {inc("t_close")} AS i_close,
                   CASE WHEN :n_problems > 0 THEN 1 + floor(link_u * :n_problems)::bigint END
                       AS link_rn
            FROM pg_temp.bench_ticket_plans t
            OFFSET 0
        ) c
        LEFT JOIN (
            SELECT 'PRB' || :yymm || lpad(g::text, 7, '0') AS problem_id,
                   row_number() OVER (ORDER BY g) AS rn
            FROM pg_temp.bench_ticket_plans WHERE kind_i = 3
        ) pr ON pr.rn = c.link_rn AND c.linked AND c.kind_i = 1
        OFFSET 0
    ) x
    RETURNING ticket_id, service, channel, opened_at, resolved_at
    )
    INSERT INTO pg_temp.bench_loaded_tickets
    SELECT * FROM loaded WHERE channel = 'phone' OR resolved_at IS NOT NULL
    """
