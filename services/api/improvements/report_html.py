"""The improvement report as a printable page (`GET /v1/improvements/{id}/report?format=html`):
what was changed and why, the baseline windows and the verification windows on one chart with
the target, the outcome with its evidence, and every transition. Pure: a Report in, HTML out."""

from __future__ import annotations

from services.api import html
from services.api.html import esc, number, when
from services.api.improvements.schemas import Report, WindowValue


def render(report: Report) -> str:
    imp = report.improvement
    scope = imp.service or imp.customer or "the whole organisation"
    outcome_class = {"verified": "good", "not_achieved": "bad"}.get(report.outcome, "")
    summary = html.facts(
        [
            ("State", f"<span class='badge {outcome_class}'>{esc(report.outcome)}</span>"),
            ("Scope", esc(scope)),
            ("Indicator", f"{esc(imp.indicator)} per {esc(imp.window)} ({esc(report.unit)})"),
            ("Better", esc(report.direction)),
            ("Baseline", esc(number(report.baseline))),
            ("Target", esc(number(report.target))),
            ("Observed", esc(number(report.observed))),
            ("Change", _change(report)),
            ("Elements", esc(", ".join(imp.elements))),
            ("Source", esc(imp.source)),
            ("Owner", esc(imp.owner)),
            ("Due", when(imp.due_date)),
            ("Verification", _period(report)),
        ]
    )
    before = imp.baseline.windows if imp.baseline else []
    after = imp.evidence.windows if imp.evidence else []
    points = [(_label(w), w.value) for w in [*before, *after]]
    reference = [("target", report.target)]
    if report.baseline is not None:
        reference.append(("baseline", report.baseline))
    chart = html.line_chart(points, reference=reference, split=len(before) if after else None)
    windows = html.table(
        ["window", "part", "value", "count"],
        [
            [when(w.window_start), part, esc(number(w.value)), esc(number(w.count))]
            for part, ws in (("baseline", before), ("verification", after))
            for w in ws
        ],
        numeric=(2, 3),
    )
    evidence = ""
    if imp.evidence is not None:
        evidence = html.section(
            "Evidence",
            html.facts(
                [
                    ("Outcome", esc(imp.evidence.outcome)),
                    ("Target met", esc(imp.evidence.target_met)),
                    ("Better than baseline", esc(imp.evidence.better_than_baseline)),
                    ("Measured at", when(imp.evidence.at)),
                ]
            )
            + "<ul>"
            + "".join(f"<li>{esc(r)}</li>" for r in imp.evidence.reasons)
            + "</ul>",
        )
    decision = ""
    if imp.decision is not None:
        d = imp.decision
        decision = html.section(
            "Decision",
            html.facts(
                [
                    ("Decided", esc(d.state)),
                    ("By", esc(d.by)),
                    ("At", when(d.at)),
                    ("Reason", esc(d.reason)),
                ]
            ),
        )
    transitions = html.table(
        ["at", "from", "to", "by", "note"],
        [
            [when(t.at), esc(t.from_state), esc(t.to_state), esc(t.by), esc(t.note)]
            for t in imp.transitions or []
        ],
    )
    body = (
        html.section("Summary", summary)
        + html.section("What it changes", f"<p>{esc(imp.description or None)}</p>")
        + html.section("Before and after", chart + windows)
        + evidence
        + decision
        + html.section("History", transitions)
    )
    return html.page(f"Improvement #{imp.id}: {imp.title}", f"{scope} · {imp.indicator}", body)


def _label(w: WindowValue) -> str:
    return w.window_start.strftime("%Y-%m-%d")


def _change(report: Report) -> str:
    if report.change is None:
        return "—"
    ratio = "" if report.change_ratio is None else f" ({report.change_ratio:+.1%})"
    return esc(f"{number(report.change)}{ratio}")


def _period(report: Report) -> str:
    imp = report.improvement
    if imp.verify_from is None or imp.verify_until is None:
        return esc(f"{imp.verification_windows} {imp.window} window(s) after implementation")
    return f"{when(imp.verify_from)} – {when(imp.verify_until)}"
