"""Inside one prediction in a real browser (issue 35), with the network off: click a word to
hide it, the logit lens under Fill-mask, the neuron view under Attention; and saving what the
app shows: every chart downloads as PNG and SVG from its own toolbar, bertviz's views and the
neuron view as web pages that draw when opened with no network."""

from __future__ import annotations

import pytest
from test_browser import open_tab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# How many rows the logit lens's heatmap draws.
LENS_ROWS = """() => {
    const plot = document.querySelector('#logit-lens-plot .js-plotly-plot');
    return plot && plot.data && plot.data.length ? (plot.data[0].y || []).length : 0;
}"""


def test_clicking_a_word_hides_it_and_predicts_again(page):
    tab = open_tab(page, "Fill-mask")
    box = tab.locator("textarea").first
    box.fill("The coffee was <mask> and the food was good.")
    tab.get_by_role("button", name="Predict", exact=True).click()
    page.locator('#fill-mask-results [data-testid="cell-4-0"]').wait_for()  # one mask × top-5
    # The first piece of "food" (the tiny test tokenizer may split it): any piece hides it all
    pieces = tab.locator("span.token span.text")
    texts = pieces.all_inner_texts()
    first = next(i for i, t in enumerate(texts) if len(t) > 1 and "␣food".startswith(t))
    pieces.nth(first).click()
    page.wait_for_function(
        "() => document.querySelector('#tab-fill-mask textarea').value"
        " === 'The coffee was <mask> and the <mask> was good.'", timeout=30_000)
    page.locator('#fill-mask-results [data-testid="cell-9-0"]').wait_for()  # two masks now


def test_the_logit_lens_draws_a_row_per_layer_and_follows_a_click(page):
    tab = open_tab(page, "Fill-mask")
    tab.locator("textarea").first.fill("The <mask> was good.")
    tab.get_by_role("button", name="Predict", exact=True).click()  # the tokenization to click
    page.wait_for_function(  # this text's, not an earlier test's
        "() => { const spans = [...document.querySelectorAll('#tab-fill-mask span.token')];"
        " return spans.length > 0 && !spans.some(s => s.innerText.includes('coffee')); }")
    tab.get_by_text("what each layer would guess").click()
    tab.get_by_role("button", name="Show the layers").click()
    tab.get_by_text("that answer is in the top 5").wait_for(timeout=30_000)
    page.wait_for_function(LENS_ROWS, timeout=30_000)
    assert page.evaluate(LENS_ROWS) == 3  # the tiny test model's embeddings and 2 layers
    page.evaluate("() => { window.__lensDrawn = document.querySelector("
                  "'#logit-lens-plot .js-plotly-plot').data; }")
    pieces = tab.locator("span.token span.text")  # hide "good": the lens is drawn again
    texts = pieces.all_inner_texts()
    pieces.nth(next(i for i, t in enumerate(texts) if len(t) > 1 and "␣good".startswith(t))).click()
    page.wait_for_function(
        "() => document.querySelector('#tab-fill-mask textarea').value"
        " === 'The <mask> was <mask>.'", timeout=30_000)
    page.wait_for_function(  # a new drawing of the lens (Gradio draws each value anew)
        "() => { const plot = document.querySelector('#logit-lens-plot .js-plotly-plot');"
        " return plot && plot.data && plot.data !== window.__lensDrawn; }", timeout=30_000)


def test_the_neuron_view_shows_the_computation(page):
    tab = open_tab(page, "Attention")
    tab.locator("textarea").first.fill("The cat sat on the mat.")
    tab.get_by_role("button", name="Show the computation").click()
    tab.get_by_text("of its attention to").wait_for(timeout=30_000)
    assert tab.get_by_text("Every key: score, scaled score, weight").count() == 1


# --- saving ---------------------------------------------------------------------------------

def downloaded(page, button) -> bytes:
    with page.expect_download() as download:
        button.click()
    return open(download.value.path(), "rb").read()


def test_a_chart_downloads_as_png_and_svg(page):
    tab = open_tab(page, "Fill-mask")
    tab.locator("textarea").first.fill("The coffee was <mask> and the food was good.")
    tab.get_by_role("button", name="Predict", exact=True).click()
    chart = tab.locator(".js-plotly-plot:visible").first
    chart.wait_for()
    chart.hover()
    png = downloaded(page, chart.locator('.modebar-btn[data-title="Download plot as a PNG"]'))
    assert png.startswith(b"\x89PNG")
    svg = downloaded(page, chart.locator('.modebar-btn[data-title="Download plot as SVG"]'))
    assert svg.lstrip().startswith(b"<svg") and b"</svg>" in svg


def saved_page(page, files, index: int, tmp_path) -> str:
    """The `index`-th file a gr.File shows, written where a new tab can open it."""
    link = files.locator("a[download]").nth(index)
    link.wait_for(timeout=60_000)
    body = page.request.get(link.get_attribute("href")).body()
    path = tmp_path / f"page{index}.html"
    path.write_bytes(body)
    return path.as_uri()


def opened_offline(page, uri: str, drawn: str) -> None:
    """Open a saved page in a tab of its own whose every non-file request fails, and wait for
    `drawn` (a CSS selector) to appear."""
    viewer = page.context.new_page()
    outside = []
    viewer.route("**/*", lambda route: (outside.append(route.request.url), route.abort())
                 if not route.request.url.startswith("file:") else route.continue_())
    errors = []
    viewer.on("pageerror", lambda error: errors.append(str(error)))
    viewer.goto(uri)
    viewer.locator(drawn).first.wait_for(timeout=30_000)
    viewer.close()
    assert not outside and not errors, (outside, errors)


def test_bertviz_views_save_as_pages_that_draw_offline(page, tmp_path):
    tab = open_tab(page, "Attention")
    tab.locator("textarea").first.fill("The cat sat on the mat.")
    tab.get_by_role("button", name="Save both bertviz views as web pages").click()
    files = page.locator("#bertviz-pages")
    for index in (0, 1):  # the head view, then the model view: bertviz draws SVG in each
        opened_offline(page, saved_page(page, files, index, tmp_path), "svg text")


def test_the_neuron_view_saves_as_a_page_that_draws_offline(page, tmp_path):
    tab = open_tab(page, "Attention")
    tab.locator("textarea").first.fill("The cat sat on the mat.")
    tab.get_by_role("button", name="Save as a web page").click()
    uri = saved_page(page, page.locator("#neuron-view-page"), 0, tmp_path)
    opened_offline(page, uri, ".js-plotly-plot .heatmaplayer")
