"""Inside one prediction in a real browser (issue 35): click a word to hide it, the logit lens
under Fill-mask, the neuron view under Attention."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# How many rows the logit lens's heatmap draws.
LENS_ROWS = """() => {
    const plot = document.querySelector('#logit-lens-plot .js-plotly-plot');
    return plot && plot.data && plot.data.length ? (plot.data[0].y || []).length : 0;
}"""


@pytest.fixture(autouse=True)
def stays_offline(offline_guard):
    yield
    offline_guard.check()


def open_tab(page, name: str):
    page.get_by_role("tab", name=name).click()
    return page.locator(f"#tab-{name.lower()}")


def test_clicking_a_word_hides_it_and_predicts_again(page):
    tab = open_tab(page, "Fill-mask")
    box = tab.locator("textarea").first
    box.fill("The coffee was <mask> and the food was good.")
    tab.get_by_role("button", name="Predict").click()
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


def test_the_logit_lens_draws_a_row_per_layer(page):
    tab = open_tab(page, "Fill-mask")
    tab.locator("textarea").first.fill("The coffee was <mask> and the food was good.")
    tab.get_by_text("what each layer would guess").click()
    tab.get_by_role("button", name="Show the layers").click()
    tab.get_by_text("that answer is in the top 5").wait_for(timeout=30_000)
    page.wait_for_function(LENS_ROWS, timeout=30_000)
    assert page.evaluate(LENS_ROWS) == 3  # the tiny test model's embeddings and 2 layers


def test_the_neuron_view_shows_the_computation(page):
    tab = open_tab(page, "Attention")
    tab.locator("textarea").first.fill("The cat sat on the mat.")
    tab.get_by_role("button", name="Show the computation").click()
    tab.get_by_text("of its attention to").wait_for(timeout=30_000)
    assert tab.get_by_text("Every key: score, scaled score, weight").count() == 1
