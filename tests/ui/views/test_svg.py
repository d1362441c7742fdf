"""Server-side charts: well-formed SVG, accessible, and every text escaped (issue 14)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from scheduler.ui import svg

NS = "{http://www.w3.org/2000/svg}"
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>&amp;'


def _parse(text: str) -> ET.Element:
    return ET.fromstring(text)  # noqa: S314 (our own output; raises on anything that is not well-formed XML)


@pytest.mark.parametrize("draw", [svg.line_chart, svg.stacked_bars])
def test_every_text_is_escaped_and_the_chart_is_accessible(draw: object) -> None:
    labels = ["2026-12-01", XSS, "2026-12-03"]
    series = [svg.Series(name=XSS, values=[1.0, 2.0, 3.5]), svg.Series(name="rolled back", values=[0.0, 1.0, None])]
    text = draw(XSS, labels, series)  # type: ignore[operator]
    assert "<script" not in text and "<img" not in text
    root = _parse(text)
    assert root.get("role") == "img" and root.get("aria-label") == XSS
    assert root.get("viewBox") == f"0 0 {svg.WIDTH} {svg.HEIGHT}" and root.get("width") is None
    assert root.find(f"{NS}title").text == XSS  # type: ignore[union-attr]
    desc = root.find(f"{NS}desc").text or ""  # type: ignore[union-attr]
    assert "3 points" in desc and f"{XSS}: 3.50 at 2026-12-03" in desc
    texts = [t.text for t in root.iter(f"{NS}text")]
    assert XSS in texts  # the chart's title, drawn: as text
    tips = [t.text or "" for t in root.iter(f"{NS}title")]
    assert any(tip.startswith(f"{XSS} · {XSS}: 2") for tip in tips)  # the point's tooltip: label, series, value
    assert not root.findall(f".//{NS}script") and not root.findall(f".//{NS}foreignObject")


def test_line_breaks_where_a_value_is_missing_and_bars_stack() -> None:
    labels = ["a", "b", "c", "d", "e"]
    line = _parse(svg.line_chart("t", labels, [svg.Series(name="s", values=[1, 2, None, 4, 5])]))
    assert len(line.findall(f".//{NS}polyline")) == 2 and len(line.findall(f".//{NS}circle")) == 4
    bars = _parse(svg.stacked_bars("t", labels[:2], [svg.Series(name="kept", values=[2, 0]),
                                                      svg.Series(name="rolled back", values=[2, 1])]))  # fmt: skip
    rects = [r for r in bars.iter(f"{NS}rect") if r.find(f"{NS}title") is not None]
    assert len(rects) == 3  # a zero draws nothing
    first = [r for r in rects if (r.find(f"{NS}title").text or "").startswith("a ")]  # type: ignore[union-attr]
    heights = [float(r.get("height") or 0) for r in first]
    assert heights[0] == pytest.approx(heights[1])  # 2 and 2: same height, one above the other
    ys = sorted(float(r.get("y") or 0) for r in first)
    assert ys[0] + heights[0] == pytest.approx(ys[1])


def test_empty_and_wrong_input() -> None:
    empty = _parse(svg.line_chart("Cost", [], []))
    assert [t.text for t in empty.iter(f"{NS}text")][-1] == "no data yet"
    assert "no data yet" in svg.stacked_bars("Cost", ["a"], [svg.Series(name="s", values=[0])])
    with pytest.raises(ValueError, match="has 1 values for 2 labels"):
        svg.line_chart("t", ["a", "b"], [svg.Series(name="s", values=[1])])
    assert svg.nice_ticks(7.3) == [0, 2, 4, 6, 8] and svg.nice_ticks(0) == [0.0, 1.0]
