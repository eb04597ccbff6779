"""The Experiments tab in a real browser (chromium via playwright, see conftest.py): run the
plateau comparison, see both runs' lines on the accuracy chart, stop both, and find both models
named. Any request that would leave 127.0.0.1 fails the test."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MASK_LINES = """() => {
    const plot = document.querySelector('#compare-accuracy-plot .js-plotly-plot');
    if (!plot || !plot.data) return 0;
    return plot.data.filter(t => t.name.endsWith('at <mask>') && t.x.length > 0).length;
}"""
LEGEND = """() => Array.from(document.querySelectorAll(
    '#compare-accuracy-plot .legendtext')).map(e => e.textContent)"""


def test_a_comparison_draws_both_lines_and_stop_stops_both(page):
    page.get_by_role("tab", name="Experiments").click()
    paragraph = page.locator("#compare-paragraph")
    assert "What the paper found" in paragraph.inner_text()
    page.locator("#compare-start").click()
    page.wait_for_function(f"({MASK_LINES})() == 2", timeout=300_000)
    legend = page.evaluate(LEGEND)
    assert "A: structured start: at <mask>" in legend
    assert "B: RoBERTa's random start: at <mask>" in legend
    assert page.locator("#compare-progress").inner_text().startswith("step ")

    page.locator("#compare-stop").click()
    status = page.locator("#compare-status")
    status.get_by_text("Stopped: A after").wait_for(timeout=120_000)
    text = status.inner_text()
    steps_a = text.split("A after ")[1].split(" steps")[0]
    steps_b = text.split("B after ")[1].split(",")[0]
    assert steps_a == steps_b
    assert "What this run found" in paragraph.inner_text()
    names = page.locator("#compare-models textarea").input_value().splitlines()
    assert [n.split(":")[0] for n in names] == ["Experiment 1 A", "Experiment 1 B"]
    assert page.locator("#compare-start").is_enabled()
    assert page.get_by_text("Traceback").count() == 0


def test_custom_shows_its_controls_and_identical_sides_are_refused(page):
    page.get_by_role("tab", name="Experiments").click()
    tab = page.locator("#tab-experiments")
    choice = tab.get_by_label("Comparison")
    choice.click()
    page.get_by_role("option", name="Custom: any two values of one Train-tab setting").click()
    side_a, side_b = tab.get_by_label("Side A's value"), tab.get_by_label("Side B's value")
    side_a.wait_for()
    side_a.fill("0.002")
    side_b.fill("2e-3")
    page.locator("#compare-start").click()
    page.get_by_text("identical").first.wait_for(timeout=30_000)
    page.wait_for_function(
        "() => !document.querySelector('#compare-start').disabled", timeout=30_000)
    assert page.locator("#compare-stop").is_disabled()
