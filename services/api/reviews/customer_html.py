"""The customer review as a printable page (`GET /v1/reviews/customer?…&format=html`): the same
sections as the JSON, in the same order (the domain notes'), each number beside the previous
period's and its trend, with bars for the SLA and the workload and a trend line over the
history of each objective and key figure. Pure: a CustomerReview in, HTML out; every value
escaped (html.esc)."""

from __future__ import annotations

from services.api import html
from services.api.html import esc, number, when
from services.api.reviews.customer_schemas import (
    Breakdown,
    CustomerReview,
    Figure,
    FigureWithHistory,
    SlaItem,
)
from services.api.reviews.schemas import ActionItem

_TREND = {
    "better": ("▲ better", "good"),
    "worse": ("▼ worse", "bad"),
    "up": ("▲", ""),
    "down": ("▼", ""),
}
# A trend line's size: two a row on the page (html.charts).
_WIDTH, _HEIGHT = 420, 180
_LEGEND = (
    "Each objective over the last periods: the dashed line is its target; a point is green "
    "when met, amber at warning, red when breached, grey without a stored status; a gap is a "
    "period without a value."
)


def render(review: CustomerReview) -> str:
    scope = review.customer or review.service or ""
    subtitle = (
        f"{scope} · {review.period} ({when(review.period_start)} – {when(review.period_end)}) · "
        f"compared with {review.previous_period} · services: {', '.join(review.services)}"
    )
    body = "".join(
        [
            html.section("Contract and SLA", _sla(review)),
            html.section("Service performance", _performance(review)),
            html.section("Satisfaction", _satisfaction(review)),
            html.section("Scope and workload", _workload(review)),
            html.section("Changes", _changes(review)),
            html.section("Problems", _problems(review)),
            html.section("Action items", _items(review)),
            html.section("Improvements", _improvements(review)),
        ]
    )
    return html.page(f"Customer review: {scope} {review.period}", subtitle, body)


def _trend(trend: str | None) -> str:
    if trend is None:
        return "—"
    text, cls = _TREND.get(trend, (trend, ""))
    return f"<span class='{cls}'>{esc(text)}</span>"


def figures_table(figures: list[Figure]) -> str:
    """Figures with the previous period's value and the trend (the team review's too)."""
    return html.table(
        ["indicator", "value", "samples", "previous", "trend"],
        [
            [
                esc(f.indicator),
                esc(number(f.value)),
                esc(number(f.count)),
                esc(number(f.previous)),
                _trend(f.trend),
            ]
            for f in figures
        ],
        numeric=(1, 2, 3),
    )


def _sla(review: CustomerReview) -> str:
    met = review.objectives_met
    status = {"met": "good", "breached": "bad"}
    rows = [
        [
            esc(s.of),
            esc(s.indicator),
            esc(f"{s.comparator} {number(s.target)}"),
            esc(number(s.value)),
            f"<span class='badge {status.get(s.status, '')}'>{esc(s.status)}</span>",
            esc(number(s.previous)),
            esc(s.previous_status),
            _trend(s.trend),
        ]
        for s in review.sla
    ]
    summary = html.facts(
        [
            ("Objectives met", esc(f"{met.met} of {met.total}")),
            ("Warning / breached", esc(f"{met.warning} / {met.breached}")),
            ("No data", esc(met.no_data)),
            ("Met ratio", esc(number(met.ratio.value))),
        ]
    )
    chart = html.objective_bars(
        [(f"{s.of} {s.indicator}", s.value, s.target, s.status) for s in review.sla]
    )
    table = html.table(
        ["service", "objective", "target", "value", "status", "previous", "then", "trend"],
        rows,
        numeric=(3, 5),
    )
    if not review.sla:
        return summary + table + chart
    lines = html.charts(
        [
            (f"{s.of} · {s.indicator} {s.comparator} {number(s.target)}", _sla_line(s))
            for s in review.sla
        ]
    )
    legend = f"<p class='sub'>{esc(_LEGEND)}</p>"
    return summary + table + chart + f"<h3>{esc(_over(review))}</h3>" + legend + lines


def _over(review: CustomerReview) -> str:
    count = len(review.satisfaction.csat.history)
    return f"Over the last {count} {review.period_kind}{'s' if count > 1 else ''}"


def _sla_line(s: SlaItem) -> str:
    return html.line_chart(
        [(p.period, p.value) for p in s.history],
        reference=[("target", s.target)],
        statuses=[p.status for p in s.history],
        from_zero=s.unit != "ratio",
        width=_WIDTH,
        height=_HEIGHT,
    )


def _lines(figures: list[tuple[str, FigureWithHistory]]) -> str:
    """A trend line per key figure (caption, figure); durations in hours, not seconds (an
    axis of 2.3 rather than 8,400: say so in the caption)."""
    items = []
    for caption, f in figures:
        scale = 1 / 3600 if f.unit == "seconds" else 1.0
        points = [(p.period, None if p.value is None else p.value * scale) for p in f.history]
        chart = html.line_chart(points, from_zero=f.unit != "ratio", width=_WIDTH, height=_HEIGHT)
        items.append((caption, chart))
    return html.charts(items)


def _performance(review: CustomerReview) -> str:
    perf = review.service_performance
    figures = figures_table(
        [
            perf.availability,
            perf.major_incident_count,
            perf.incident_resolution_time,
            perf.incident_sla_resolution_met,
        ]
    )
    lines = _lines(
        [
            ("Availability", perf.availability),
            ("Mean time to resolve incidents (hours)", perf.incident_resolution_time),
        ]
    )
    cis = html.table(
        ["CI", "name", "outages", "previous", "MTTR (s)"],
        [
            [
                esc(c.ci),
                esc(c.name),
                esc(number(c.outages.value)),
                esc(number(c.outages.previous)),
                esc(number(c.mttr_seconds.value)),
            ]
            for c in perf.cis
        ],
        numeric=(2, 3, 4),
    )
    majors = html.table(
        ["ticket", "title", "service", "opened", "resolved", "duration (h)", "timeline"],
        [
            [
                esc(m.ticket_id),
                esc(m.title),
                esc(m.service),
                when(m.opened_at),
                when(m.resolved_at),
                esc(number(None if m.duration_seconds is None else m.duration_seconds / 3600)),
                "<br>".join(f"{when(t.at)} {esc(t.state)}" for t in m.timeline),
            ]
            for m in perf.major_incidents
        ],
        numeric=(5,),
    )
    return figures + lines + "<h3>Outages per CI</h3>" + cis + "<h3>Major incidents</h3>" + majors


def _breakdown(b: Breakdown) -> str:
    return f"<h3>Opened by {esc(b.dimension)}</h3>" + html.bars(
        [(g.key, g.value, g.previous) for g in b.groups]
    )


def _satisfaction(review: CustomerReview) -> str:
    csat = review.satisfaction.csat
    return figures_table([csat]) + _lines([("Satisfaction (mean score)", csat)])


def _workload(review: CustomerReview) -> str:
    w = review.workload
    lines = _lines([("Tickets opened", w.opened), ("Tickets resolved", w.resolved)])
    return (
        figures_table([w.opened, w.resolved, w.backlog])
        + lines
        + "".join(_breakdown(b) for b in w.opened_by)
    )


def _changes(review: CustomerReview) -> str:
    c = review.changes
    outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(c.by_outcome.items())) or "none"
    listed = html.table(
        ["change", "type", "service", "risk", "outcome", "implemented", "caused incidents"],
        [
            [
                esc(r.change_id),
                esc(r.change_type),
                esc(r.service),
                esc(r.risk),
                esc(r.outcome),
                when(r.implemented_at),
                esc(", ".join(r.caused_incidents) or None),
            ]
            for r in c.changes
        ],
    )
    return (
        figures_table([c.count, c.success, c.failure])
        + html.facts([("By outcome", esc(outcomes)), ("Incidents caused", esc(c.caused_incidents))])
        + _breakdown(c.by_type).replace("Opened by", "By", 1)
        + listed
    )


def _problems(review: CustomerReview) -> str:
    p = review.problems
    note = f"<p class='sub'>{esc(p.note)}</p>" if p.note else ""
    listed = html.table(
        ["problem", "title", "service", "state", "opened", "resolved", "incidents"],
        [
            [
                esc(r.ticket_id),
                esc(r.title),
                esc(r.service),
                esc(r.state),
                when(r.opened_at),
                when(r.resolved_at),
                esc(r.linked_incidents),
            ]
            for r in p.problems
        ],
        numeric=(6,),
    )
    return figures_table([p.resolution_time, p.incident_problem_linked]) + note + listed


def items_table(items: list[ActionItem]) -> str:
    """Action items with the period of the review that recorded them (the team review's too)."""
    return html.table(
        ["from", "item", "owner", "due", "state", "note"],
        [
            [
                esc(i.period),
                esc(i.title),
                esc(i.owner),
                when(i.due),
                esc(i.state),
                esc(i.note or None),
            ]
            for i in items
        ],
    )


def _items(review: CustomerReview) -> str:
    out = "<h3>Open items</h3>" + items_table(review.action_items.open)
    previous = review.action_items.previous_review
    if previous is not None:
        out += f"<h3>Items of the {esc(previous.period)} review</h3>" + items_table(
            previous.action_items
        )
    return out


def _improvements(review: CustomerReview) -> str:
    return html.table(
        ["#", "improvement", "indicator", "target", "baseline", "state", "due"],
        [
            [
                esc(i.id),
                esc(i.title),
                esc(f"{i.indicator} per {i.window}"),
                esc(number(i.target)),
                esc(number(i.baseline.value if i.baseline else None)),
                esc(i.state),
                when(i.due_date),
            ]
            for i in review.improvements
        ],
        numeric=(3, 4),
    )
