"""Printable HTML pages (SPEC §7.3: reviews and improvement reports as `?format=html`): one
self-contained page per answer — inline CSS with an A4 print layout, inline SVG charts, no script,
no font, image, stylesheet or link that would make the browser ask anything of anyone. Every
value a user or an event controls goes through `esc`. Pure: strings in, a string out."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from datetime import date, datetime

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'"
)
_CSS = """
:root { --ink: #1f2328; --muted: #656d76; --line: #d0d7de; --good: #1a7f37; --bad: #cf222e;
        --accent: #0969da; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink);
       margin: 2rem auto; max-width: 60rem; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin: 0 0 .2rem; } h2 { font-size: 1.15rem; margin: 1.6rem 0 .5rem;
     border-bottom: 1px solid var(--line); padding-bottom: .2rem; }
.sub { color: var(--muted); margin: 0 0 1rem; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0; }
th, td { border-bottom: 1px solid var(--line); padding: .25rem .5rem; text-align: left;
         vertical-align: top; }
th { color: var(--muted); font-weight: 600; } td.num { text-align: right;
     font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 0 .5rem; border-radius: 1rem; border: 1px solid
         var(--line); font-size: .85rem; } .good { color: var(--good); } .bad { color: var(--bad); }
dl { display: grid; grid-template-columns: 12rem 1fr; gap: .2rem 1rem; margin: .4rem 0; }
dt { color: var(--muted); } dd { margin: 0; }
svg { max-width: 100%; height: auto; } svg text { font: 11px system-ui, sans-serif;
      fill: var(--muted); }
.charts { display: grid; grid-template-columns: 1fr 1fr; gap: .2rem 1.5rem; }
figure { margin: .3rem 0; } figcaption { color: var(--muted); font-size: .85rem; }
@page { size: A4; margin: 15mm; }
@media print { body { margin: 0; max-width: none; font-size: 11pt; } h2, h3 { break-after: avoid; }
               table, svg, dl, figure { break-inside: avoid; } }
"""


def esc(value: object) -> str:
    """Any value as HTML text (quotes too: safe inside an attribute)."""
    if value is None:
        return "—"
    return html.escape(str(value), quote=True)


def number(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.{digits}g}" if abs(value) < 1 else f"{value:,.{digits - 1}f}"


def when(value: datetime | date | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return esc(value.strftime("%Y-%m-%d %H:%M %Z").strip())
    return esc(value.isoformat())


def page(title: str, subtitle: str, body: str) -> str:
    """A whole document; `title` and `subtitle` are escaped here, `body` is HTML already."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # The browser may fetch nothing for this page, whatever a value might smuggle in.
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        # no favicon request either
        '<link rel="icon" href="data:,">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head>"
        f"<body><h1>{esc(title)}</h1><p class='sub'>{esc(subtitle)}</p>{body}</body></html>\n"
    )


def section(heading: str, content: str) -> str:
    return f"<section><h2>{esc(heading)}</h2>{content}</section>"


def facts(pairs: Sequence[tuple[str, str]]) -> str:
    """A definition list; values are HTML already (escape them with `esc`)."""
    return "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()
) -> str:
    """A table; cells are HTML already. `numeric`: the columns aligned right."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='num'>{cell}</td>" if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    if not rows:
        body = f"<tr><td colspan='{len(headers)}'>none</td></tr>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def line_chart(
    points: Sequence[tuple[str, float | None]],
    *,
    reference: Sequence[tuple[str, float]] = (),
    split: int | None = None,
    statuses: Sequence[str] = (),
    from_zero: bool = True,
    width: int = 640,
    height: int = 220,
) -> str:
    """An inline SVG line chart of `points` (label, value; None leaves a gap), with dashed
    horizontal reference lines (label, value: a target, a baseline) and, when `split` is given,
    a dashed vertical line before the point of that index (what came before and after a change).
    `statuses`, one per point, colour the points (met, warning, breached; grey otherwise);
    `from_zero=False` fits the axis to the values (an availability between 0.998 and 1)."""
    values = [v for _, v in points if v is not None] + [v for _, v in reference]
    if not points or not values:
        return "<p class='sub'>no values to chart</p>"
    left, right, top, bottom = 56, 12, 12, 36
    lo, hi = _axis(values, from_zero)
    plot_w, plot_h = width - left - right, height - top - bottom
    # Each axis label centred under its point, the first and last inside the frame.
    label_w = max(len(label) for label, _ in points) * _CHAR_PX + 8
    inset = min(label_w / 2, plot_w / 4)
    step = (plot_w - 2 * inset) / max(1, len(points) - 1)

    def x(i: int) -> float:
        return left + (inset + i * step if len(points) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h - (v - lo) / (hi - lo) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" '
        'stroke="#d0d7de"/>',
        f'<text x="{left - 6}" y="{y(hi) + 4:.1f}" text-anchor="end">{esc(number(hi))}</text>',
        f'<text x="{left - 6}" y="{y(lo) + 4:.1f}" text-anchor="end">{esc(number(lo))}</text>',
    ]
    for label, v in reference:
        parts.append(
            f'<line x1="{left}" y1="{y(v):.1f}" x2="{width - right}" y2="{y(v):.1f}" '
            'stroke="#cf222e" stroke-dasharray="4 3"/>'
            # at the left end: the latest points, on the right, matter most
            f'<text x="{left + 4}" y="{y(v) - 4:.1f}">{esc(label)} {esc(number(v))}</text>'
        )
    if split is not None and 0 < split < len(points):
        sx = (x(split - 1) + x(split)) / 2
        parts.append(
            f'<line x1="{sx:.1f}" y1="{top}" x2="{sx:.1f}" y2="{top + plot_h}" '
            'stroke="#656d76" stroke-dasharray="2 3"/>'
        )
    run: list[str] = []
    for i, (label, value) in enumerate(points):
        if value is None:
            if len(run) > 1:
                parts.append(_polyline(run))
            run = []
            continue
        run.append(f"{x(i):.1f},{y(value):.1f}")
        status = statuses[i] if i < len(statuses) else None
        fill = _LINE if status is None else _STATUS_FILL.get(status, _NO_STATUS)
        tip = f"{label}: {number(value)}" + (f" ({status})" if status else "")
        parts.append(
            f'<circle cx="{x(i):.1f}" cy="{y(value):.1f}" r="3.5" fill="{fill}">'
            f"<title>{esc(tip)}</title></circle>"
        )
    if len(run) > 1:
        parts.append(_polyline(run))
    # As many labels as fit, counted back from the last point (the latest period).
    every = max(1, math.ceil(label_w / step)) if len(points) > 1 else 1
    for i, (label, _) in enumerate(points):
        if (len(points) - 1 - i) % every == 0:
            parts.append(
                f'<text x="{x(i):.1f}" y="{height - 14}" text-anchor="middle">{esc(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


_CHAR_PX = 6.5  # the width of a character of the 11px axis font, about
_LINE = "#0969da"
_NO_STATUS = "#afb8c1"
_STATUS_FILL = {"met": "#1a7f37", "warning": "#bf8700", "breached": "#cf222e"}


def _axis(values: Sequence[float], from_zero: bool) -> tuple[float, float]:
    """The value axis's bottom and top."""
    lo, hi = min(values), max(values)
    if from_zero:
        lo = min(0.0, lo)
    if hi > lo:
        return lo, hi
    return (lo, lo + 1.0) if from_zero else (lo - (abs(lo) * 0.01 or 1.0), hi)


def charts(items: Sequence[tuple[str, str]]) -> str:
    """Charts side by side, two a row, each kept whole on a printed page; (caption, chart):
    the caption is escaped here, the chart is HTML already."""
    figures = "".join(
        f"<figure><figcaption>{esc(caption)}</figcaption>{chart}</figure>"
        for caption, chart in items
    )
    return f"<div class='charts'>{figures}</div>"


def _polyline(coords: list[str]) -> str:
    return f'<polyline fill="none" stroke="{_LINE}" stroke-width="2" points="{" ".join(coords)}"/>'


def bars(
    rows: Sequence[tuple[str, float | None, float | None]],
    *,
    width: int = 640,
    row_height: int = 22,
) -> str:
    """An inline SVG of horizontal bars, one row per (label, value, previous): the value as a
    bar, the previous period as a thin grey bar beneath it, both to one scale."""
    values = [v for _, a, b in rows for v in (a, b) if v is not None]
    if not rows or not values:
        return "<p class='sub'>no values to chart</p>"
    label_w, right = 170, 70
    top = max(values) or 1.0
    scale = (width - label_w - right) / top
    height = row_height * len(rows) + 8
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img">']
    for i, (label, value, previous) in enumerate(rows):
        y = 4 + i * row_height
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 12}" text-anchor="end">{esc(label[:28])}</text>'
        )
        if value is not None:
            parts.append(
                f'<rect x="{label_w}" y="{y + 2}" width="{value * scale:.1f}" height="11" '
                'fill="#0969da"/>'
                f'<text x="{label_w + value * scale + 6:.1f}" y="{y + 12}">'
                f"{esc(number(value))}</text>"
            )
        if previous is not None:
            parts.append(
                f'<rect x="{label_w}" y="{y + 15}" width="{previous * scale:.1f}" height="4" '
                'fill="#afb8c1"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


def objective_bars(
    rows: Sequence[tuple[str, float | None, float, str]],
    *,
    width: int = 640,
    row_height: int = 22,
) -> str:
    """An inline SVG with one bar per objective (label, value, target, status), each to its own
    scale (objectives have different units: a CSAT of 4.5 beside a count of 1), with a tick at
    the target and the bar coloured by the status."""
    if not rows:
        return "<p class='sub'>no objectives</p>"
    label_w, right = 220, 110
    span = width - label_w - right
    height = row_height * len(rows) + 8
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img">']
    for i, (label, value, target, status) in enumerate(rows):
        y = 4 + i * row_height
        top = max(abs(target), abs(value or 0.0)) * 1.25 or 1.0
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 12}" text-anchor="end">{esc(label[:34])}</text>'
            f'<rect x="{label_w}" y="{y + 2}" width="{span}" height="12" fill="#f6f8fa"/>'
        )
        if value is not None:
            fill = _STATUS_FILL.get(status, _NO_STATUS)
            parts.append(
                f'<rect x="{label_w}" y="{y + 2}" width="{abs(value) / top * span:.1f}" '
                f'height="12" fill="{fill}"/>'
            )
        tx = label_w + abs(target) / top * span
        parts.append(
            f'<line x1="{tx:.1f}" y1="{y}" x2="{tx:.1f}" y2="{y + 16}" stroke="#1f2328" '
            'stroke-width="2"/>'
            f'<text x="{label_w + span + 6}" y="{y + 12}">'
            f"{esc(number(value))} / {esc(number(target))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
