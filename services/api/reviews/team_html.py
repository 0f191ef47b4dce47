"""The team review as a printable page (`GET /v1/reviews/team?…&format=html`): the same sections
as the JSON, ticket ids linking to the tickets in this API. Pure: a TeamReview in, HTML out;
every value escaped (html.esc)."""

from __future__ import annotations

from services.api import html
from services.api.html import esc, number, when
from services.api.reviews.customer_html import figures_table, items_table
from services.api.reviews.team_schemas import TeamReview, TicketLine


def render(review: TeamReview) -> str:
    subtitle = (
        f"{review.assignment_group} · {review.period} ({when(review.period_start)} – "
        f"{when(review.period_end)}) · compared with {review.previous_period}"
    )
    plan = review.plan
    previous = ""
    if plan.previous_review is not None:
        previous = f"<h3>Items of the {esc(plan.previous_review.period)} review</h3>" + items_table(
            plan.previous_review.action_items
        )
    b = review.brief
    brief = figures_table(
        [
            b.opened,
            b.resolved,
            b.backlog,
            b.resolution_time,
            b.sla_resolution_met,
            b.reassignment,
            b.reopen,
        ]
    ) + html.bars(
        [
            ("opened", b.opened.value, b.opened.previous),
            ("resolved", b.resolved.value, b.resolved.previous),
            ("backlog", b.backlog.value, b.backlog.previous),
        ]
    )
    d = review.difficult
    difficult = (
        "<h3>Most reassigned</h3>"
        + _tickets(d.most_reassigned)
        + "<h3>Longest open</h3>"
        + _tickets(d.longest_open)
        + "<h3>Reopened</h3>"
        + _tickets(d.reopened)
    )
    u = review.unresolved
    unresolved = html.facts(
        [
            ("Open at the period's end", esc(u.count)),
            (f"Open over {u.aged_after_days} days", esc(u.aged)),
        ]
    ) + _tickets(u.tickets)
    problems = html.table(
        ["problem", "service", "state", "opened", "resolved", "incidents"],
        [
            [
                _link(p.ticket_id, p.link),
                esc(p.service),
                esc(p.state),
                when(p.opened_at),
                when(p.resolved_at),
                esc(p.linked_incidents),
            ]
            for p in review.problems
        ],
        numeric=(5,),
    )
    body = "".join(
        [
            html.section(
                "Previous plan",
                previous + "<h3>Still open</h3>" + items_table(plan.still_open),
            ),
            html.section("The group in brief", brief),
            html.section("Difficult tickets", difficult),
            html.section("Unresolved and aged", unresolved),
            html.section("Problems", problems),
            html.section("Per engineer", _engineers(review)),
            html.section("Next plan", items_table(plan.next_items)),
        ]
    )
    return html.page(f"Team review: {review.assignment_group} {review.period}", subtitle, body)


def _link(text: str, href: str) -> str:
    # a relative link into this API (the Content-Security-Policy forbids fetching, not links)
    return f'<a href="{esc(href)}">{esc(text)}</a>'


def _tickets(lines: list[TicketLine]) -> str:
    return html.table(
        ["ticket", "kind", "service", "P", "state", "opened", "age (days)", "reassign.", "reopens"],
        [
            [
                _link(t.ticket_id, t.link),
                esc(t.kind),
                esc(t.service),
                esc(t.priority),
                esc(t.state),
                when(t.opened_at),
                esc(number(t.age_days)),
                esc(t.reassignments),
                esc(t.reopens),
            ]
            for t in lines
        ],
        numeric=(6, 7, 8),
    )


def _engineers(review: TeamReview) -> str:
    return html.table(
        [
            "engineer",
            "resolved",
            "mean resolution (h)",
            "p50 (h)",
            "p90 (h)",
            "SLA met",
            "reopened",
        ],
        [
            [
                esc(e.assignee),
                esc(number(e.resolved.value)),
                esc(number(_hours(e.resolution_time.value))),
                esc(number(_hours(e.resolution_time_p50))),
                esc(number(_hours(e.resolution_time_p90))),
                esc(number(e.sla_resolution_met.value)),
                esc(number(e.reopen.value)),
            ]
            for e in review.engineers
        ],
        numeric=(1, 2, 3, 4, 5, 6),
    )


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 3600
