"""The printable pages' building blocks (services/api/html.py): escaping, self-containment and
the inline SVG chart, checked on their output."""

from __future__ import annotations

from html.parser import HTMLParser

from services.api import html


class Links(HTMLParser):
    """Every tag and every attribute that could make a browser fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.fetching: list[tuple[str, str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "action", "poster", "data"):
                self.fetching.append((tag, name, value))


def test_a_page_is_self_contained_and_forbids_fetching_anything() -> None:
    hostile = '<img src="http://evil.example/x.png"><script>alert(1)</script>'
    page = html.page(
        hostile, hostile, html.section(hostile, html.facts([(hostile, html.esc(hostile))]))
    )
    found = Links()
    found.feed(page)
    assert "script" not in found.tags and "img" not in found.tags
    assert found.fetching == [("link", "href", "data:,")]  # the empty favicon, nothing else
    assert f'content="{html.CSP}"' in page and "default-src 'none'" in html.CSP
    assert "url(" not in page  # no stylesheet fetch either


def test_esc_and_numbers() -> None:
    assert html.esc(None) == "—"
    assert html.esc('a"b<c>&') == "a&quot;b&lt;c&gt;&amp;"
    assert [html.number(v) for v in (2.0, 1234.0, 0.12345, 12.3456, None)] == [
        "2",
        "1,234",
        "0.123",
        "12.35",
        "—",
    ]


def test_a_line_chart_leaves_gaps_marks_references_and_the_split() -> None:
    svg = html.line_chart(
        [("d1", 2.0), ("d2", None), ("d3", 1.0), ("d4", 3.0)],
        reference=[("target <1>", 1.0)],
        split=2,
    )
    assert svg.count("<circle") == 3  # the missing value is no point
    assert svg.count("<polyline") == 1  # d1 alone, then d3–d4: one line
    assert "target &lt;1&gt; 1" in svg and svg.count('stroke-dasharray="2 3"') == 1
    assert html.line_chart([("d1", None)]) == "<p class='sub'>no values to chart</p>"


def test_a_line_chart_colours_points_by_status_labels_every_period_that_fits() -> None:
    months = [f"2026-{m:02d}" for m in range(5, 11)]
    svg = html.line_chart(
        list(zip(months, [None, 5.0, 4.0, None, 3.0, 4.5], strict=True)),
        reference=[("target", 4.0)],
        statuses=["no_data", "met", "met", "no_data", "breached", "<b>"],
        width=420,
        height=180,
    )
    # 420 − 56 − 12 = 352 px of plot, 7 × 6.5 + 8 = 53.5 px a label, 26.75 px in from each
    # side: (352 − 53.5) / 5 = 59.7 px between points, every label fits
    assert all(f">{m}</text>" in svg for m in months)
    # May's label at 56 + 26.75 (no point: no value); October's point at + 5 × 59.7
    assert '<text x="82.8" y="166" text-anchor="middle">2026-05</text>' in svg
    assert svg.count("<circle") == 4 and 'cx="381.2"' in svg
    assert svg.count('fill="#1a7f37"') == 2 and svg.count('fill="#cf222e"') == 1
    assert svg.count('fill="#afb8c1"') == 1  # an unknown status is grey, and escaped
    assert "<title>2026-10: 4.50 (&lt;b&gt;)</title>" in svg
    assert '<text x="50" y="16.0" text-anchor="end">5</text>' in svg  # top of the axis
    twelve = html.line_chart([(f"2026-W{w}", 1.0) for w in range(31, 43)], width=420)
    # 8 × 6.5 + 8 = 60 px a label, (352 − 60) / 11 = 26.5 px apart: every third, from the last
    assert [w for w in range(31, 43) if f">2026-W{w}</text>" in twelve] == [33, 36, 39, 42]


def test_a_line_chart_fits_its_axis_to_the_values_when_not_from_zero() -> None:
    ratio = html.line_chart([("a", 0.9973), ("b", 1.0)], from_zero=False)
    assert ">0.997</text>" in ratio and ">0</text>" not in ratio
    flat = html.line_chart([("a", 1.0), ("b", 1.0)], from_zero=False)
    assert ">0.99</text>" in flat  # a flat line along the top, 1 % below it the bottom
    assert ">0</text>" in html.line_chart([("a", 0.9973), ("b", 1.0)])


def test_objective_bars_each_to_their_own_scale_with_the_target_marked() -> None:
    svg = html.objective_bars(
        [("email csat_score", 4.5, 4.0, "met"), ("email major_incident_count", 1.0, 0.0, "warning")]
    )
    # each bar to its own scale (1.25 × the larger of value and target, over 310 px): CSAT 4.5
    # of 5.625 and one incident of 1.25 are both 248 px; the targets' ticks at 4 and at 0
    assert svg.count('width="248.0"') == 2
    assert 'x1="440.4"' in svg and 'x1="220.0"' in svg  # 220 + 4 / 5.625 × 310; 220 + 0
    assert 'fill="#1a7f37"' in svg and 'fill="#bf8700"' in svg  # met green, warning amber
    assert "4.50 / 4" in svg and "1 / 0" in svg
    assert html.objective_bars([]) == "<p class='sub'>no objectives</p>"
