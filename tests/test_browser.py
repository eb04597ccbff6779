"""The app in a real browser: Debian's chromium driven by playwright (see conftest.py).

The tests share one page (loading the frontend is the slow part). Every request that would
leave 127.0.0.1 is aborted and fails the test that caused it, so these tests also prove the app
works with the network off.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def open_tab(page, name: str):
    page.get_by_role("tab", name=name).click()
    return page.locator(f"#tab-{name.lower()}")


def test_fill_mask_shows_the_results_table(page):
    tab = open_tab(page, "Fill-mask")
    tab.locator("textarea").first.fill("The coffee was <mask> and the food was <mask>.")
    tab.get_by_role("button", name="Predict").click()
    rows = page.locator('#fill-mask-results [role="row"][data-index]')
    page.locator('#fill-mask-results [data-testid="cell-9-0"]').wait_for()  # two masks × top-5
    assert rows.count() == 10
    assert page.locator('#fill-mask-results [data-testid="cell-9-0"]').inner_text() == "2"
    assert tab.get_by_text("First guesses").is_visible()
    tab.locator(".js-plotly-plot").first.wait_for()  # the bar chart renders after the table


def test_fill_mask_error_is_a_plain_message(page, shown_toasts):
    tab = open_tab(page, "Fill-mask")
    tab.locator("textarea").first.fill("No mask in this sentence.")
    tab.get_by_role("button", name="Predict").click()
    toast = page.locator(".toast-body").filter(has_text="The text has no <mask>")
    toast.wait_for()
    assert "put <mask> where a word should be guessed" in toast.inner_text()
    assert any(t["error"] and "The text has no <mask>" in t["text"] for t in shown_toasts())
    assert page.get_by_text("Traceback").count() == 0


def test_attention_draws_bertviz_offline(page):
    tab = open_tab(page, "Attention")
    tab.get_by_role("button", name="Show attention").click()
    head_view = page.frame_locator("#bertviz-head-view iframe")
    # bertviz writes one <text> per token per side into its SVG once d3 has run
    head_view.locator("#vis svg text").first.wait_for()
    assert head_view.locator("#vis svg text").count() >= 2 * 5
    assert head_view.locator("#vis svg line, #vis svg rect").count() > 0
    model_view = page.frame_locator("#bertviz-model-view iframe")
    model_view.locator("svg").first.wait_for()
    assert model_view.locator("svg").count() >= 1
    tab.locator(".js-plotly-plot").nth(2).wait_for()  # one head, summary, rollout
    # Sandboxed (scripts only), yet sized to what was drawn: each frame posts its height and
    # the page's listener applies it.
    for view, frame in ((head_view, "#bertviz-head-view iframe"),
                        (model_view, "#bertviz-model-view iframe")):
        assert page.locator(frame).get_attribute("sandbox") == "allow-scripts"
        drawn = view.locator("body").evaluate("body => body.scrollHeight")
        page.wait_for_function(
            "([selector, height]) => document.querySelector(selector).style.height"
            " === (height + 16) + 'px'", arg=[frame, drawn], timeout=10_000)


def test_masking_colours_every_position(page):
    tab = open_tab(page, "Masking")
    tab.get_by_role("button", name="Mask it").click()
    cells = page.locator("#masking-grids td.mask-cell")
    cells.first.wait_for()
    assert page.locator('#masking-grids td[data-action="1"]').count() > 0  # some <mask>
    assert page.locator("#masking-words .mask-word-start").count() > 0


def test_every_tab_opens_without_errors(page, shown_toasts):
    before = len(shown_toasts())
    for name in ("Train", "Fill-mask", "Sentiment", "Attention", "Masking", "Model"):
        open_tab(page, name)
    page.get_by_text("What RoBERTa changed from BERT").wait_for()
    page.get_by_text("Where the parameters are").wait_for()  # the Model tab filled itself in
    new_errors = [t["text"] for t in shown_toasts()[before:] if t["error"]]
    assert not new_errors  # recorded as they appeared: one that already expired counts too


def test_javascript_errors_on_the_page_are_caught(page, page_errors):
    """The check every browser test ends with (conftest's no_javascript_errors) sees both an
    uncaught exception and a console.error; cleared here so this test itself passes."""
    page.evaluate("setTimeout(() => { throw new Error('thrown on purpose') }, 0)")
    page.evaluate("console.error('logged on purpose')")
    for _ in range(100):  # the uncaught one is reported asynchronously
        if any("thrown on purpose" in e for e in page_errors.errors):
            break
        page.wait_for_timeout(50)
    recorded = list(page_errors.errors)
    page_errors.errors.clear()
    assert any("thrown on purpose" in e for e in recorded), recorded
    assert any("logged on purpose" in e for e in recorded), recorded
