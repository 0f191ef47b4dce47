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
