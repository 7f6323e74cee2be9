"""The server-drawn SVG charts: well-formed, accessible, escaped, CSP-clean, and bars
sized by their numbers."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from web import charts

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))


def bars(root: ET.Element) -> list[tuple[str, float, float, str]]:
    """(fill, width, height, tooltip) of every data bar (rects with a <title>)."""
    out = []
    for rect in root.iter(f"{SVG}rect"):
        title = rect.find(f"{SVG}title")
        if title is not None:
            out.append(
                (rect.get("fill"), float(rect.get("width")), float(rect.get("height")), title.text)
            )
    return out


def test_stacked_days_are_accessible_responsive_and_proportional() -> None:
    svg = charts.calls_per_day_chart(
        ["2026-11-21", "2026-11-22"],
        {"answered": [4, 2], "missed": [2, 0], "busy": [0, 1]},
    )
    root = parse(svg)
    assert root.get("role") == "img"
    assert root.get("aria-label") == "Calls per day by outcome"
    assert root.get("width") == "100%" and root.get("viewBox", "").startswith("0 0 1000 ")
    assert root.find(f"{SVG}title").text == "Calls per day by outcome"
    drawn = bars(root)
    # zero values draw nothing: 4 segments
    assert len(drawn) == 4
    heights = {tip: h for _, _, h, tip in drawn}
    assert heights["11-21 · answered: 4"] == pytest.approx(
        2 * heights["11-21 · missed: 2"], abs=0.2
    )
    assert heights["11-22 · answered: 2"] == pytest.approx(heights["11-21 · missed: 2"], abs=0.2)
    fills = {tip.split(" · ")[1].split(":")[0]: fill for fill, _, _, tip in drawn}
    assert fills["answered"] != fills["missed"] != fills["busy"]
    legend = [t.text for t in root.iter(f"{SVG}text")]
    assert {"answered", "missed", "busy"} <= set(legend)
    assert "11-21" in legend and "11-22" in legend


def test_no_inline_styles_or_scripts() -> None:
    for svg in (
        charts.calls_per_day_chart(["2026-11-22"], {"answered": [3]}),
        charts.busiest_hours_chart([(h, h % 5) for h in range(24)]),
        charts.bar_chart("Per rep", ["A"], [charts.Series("answered", [3], "#0a0")]),
    ):
        text = str(svg)
        assert "style=" not in text and "<script" not in text.lower()
        assert "<style" not in text


def test_labels_are_escaped() -> None:
    evil = '<script>alert("x")</script> & Co'
    svg = charts.bar_chart("Reps <b>", [evil], [charts.Series("talk", [5], "#00f")])
    text = str(svg)
    assert "<script>" not in text and "<b>" not in text
    root = parse(svg)  # still well-formed XML
    assert root.get("aria-label") == "Reps <b>"
    tips = [tip for *_, tip in bars(root)]
    assert tips == [f"{evil} · talk: 5"]


def test_horizontal_bars_stack_and_scale() -> None:
    svg = charts.bar_chart(
        "Calls per rep",
        ["Alice", "Bob"],
        [charts.Series("answered", [6, 3], "#0a0"), charts.Series("missed", [2, 0], "#a00")],
    )
    drawn = {tip: w for _, w, _, tip in bars(parse(svg))}
    assert set(drawn) == {"Alice · answered: 6", "Alice · missed: 2", "Bob · answered: 3"}
    assert drawn["Alice · answered: 6"] == pytest.approx(2 * drawn["Bob · answered: 3"], abs=0.2)
    assert drawn["Alice · answered: 6"] == pytest.approx(3 * drawn["Alice · missed: 2"], abs=0.2)


def test_duration_axis_uses_the_formatter() -> None:
    svg = charts.bar_chart(
        "Talk", ["Alice"], [charts.Series("talk", [3700], "#00f")], fmt=lambda s: f"{s / 60:g}m"
    )
    tips = [tip for *_, tip in bars(parse(svg))]
    assert tips == ["Alice · talk: 61.6667m"]


def test_hours_chart_has_all_hours_and_thinned_labels() -> None:
    hours = [(h, 10 if h == 14 else 1) for h in range(24)]
    root = parse(charts.busiest_hours_chart(hours))
    drawn = bars(root)
    assert len(drawn) == 24
    tallest = max(drawn, key=lambda b: b[2])
    assert tallest[3] == "14 · calls: 10"
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "00" in labels and "22" in labels and "01" not in labels  # every second hour


def test_empty_data_says_so() -> None:
    root = parse(charts.calls_per_day_chart(["2026-11-22"], {}))
    assert bars(root) == []
    assert "No calls in this period" in [t.text for t in root.iter(f"{SVG}text")]
    root = parse(charts.bar_chart("Per rep", [], []))
    assert "No calls in this period" in [t.text for t in root.iter(f"{SVG}text")]


@pytest.mark.parametrize(
    ("top", "expected"),
    [
        (0, (4.0, 1.0)),
        (3, (3.0, 1.0)),
        (7, (8.0, 2.0)),
        (95, (100.0, 25.0)),
        (1234, (1500.0, 500.0)),
    ],
)
def test_nice_scale(top: float, expected: tuple[float, float]) -> None:
    assert charts.nice_scale(top) == expected
