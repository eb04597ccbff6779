"""What a newcomer's walkthrough tripped over (issue 13), checked in a real browser: charts,
words, downloads. Chromium via playwright (see conftest.py); one page per module."""

from __future__ import annotations

import pytest
from test_browser import open_tab

pytestmark = [pytest.mark.browser, pytest.mark.slow]


LONG_SENTENCE = ("Researchers at the university announced that the extraordinarily "
                 "complicated experiment had finally produced reproducible measurements "
                 "of the <mask> after several unsuccessful attempts last year.")

GRID_BOXES = """() => [...document.querySelectorAll(
        '#masking-grids .mask-scroll, #masking-words .mask-scroll')].map(scroll => {
    const box = scroll.closest('#masking-grids, #masking-words').getBoundingClientRect();
    return {right: scroll.getBoundingClientRect().right, container: box.right,
            scrollWidth: scroll.scrollWidth, clientWidth: scroll.clientWidth,
            cells: scroll.querySelectorAll('td.mask-cell').length};
})"""


def test_masking_grids_are_not_cut_off_on_the_right(page):
    """A long sentence's grids wrap into blocks that fit the tab (no hidden columns to scroll
    to), and every position is still shown."""
    tab = open_tab(page, "Masking")
    tab.get_by_label("Sentence").fill(LONG_SENTENCE)
    tab.get_by_role("button", name="Mask it").click()
    page.locator("#masking-grids td.mask-cell").first.wait_for()
    page.get_by_text("epoch 8").first.wait_for()
    boxes = page.evaluate(GRID_BOXES)
    assert len(boxes) > 4  # dynamic, static, whole-word, sub-word: each wrapped
    for box in boxes:
        assert box["scrollWidth"] <= box["clientWidth"], box
        assert box["right"] <= box["container"] + 1, box
    header_cells = page.locator("#masking-grids .mask-run").first.locator("th.mask-token")
    words = LONG_SENTENCE.split()
    assert header_cells.count() >= len(words) + 2  # every token, <s> and </s>


# Reference colours to name what the page drew: the nearest of these, in RGB.
COLOUR_NAMES = {"red": (255, 0, 0), "blue": (0, 0, 255), "purple": (128, 0, 128),
                "green": (0, 128, 0), "orange": (255, 165, 0)}


def colour_name(rgb: tuple[int, int, int]) -> str:
    return min(COLOUR_NAMES, key=lambda name: sum(
        (a - b) ** 2 for a, b in zip(rgb, COLOUR_NAMES[name], strict=True)))


SPAN_COLOURS = """() => [...document.querySelectorAll('#sentiment-attribution span')]
    .map(s => getComputedStyle(s).backgroundColor)
    .map(c => (c.match(/[0-9.]+/g) || []).map(Number))
    .filter(c => c.length === 4 && c[3] > 0.05)   // rgba with a visible alpha
    .map(c => c.slice(0, 3))"""


def test_the_attribution_legend_names_the_colours_drawn(page):
    """Gradio draws positive scores in one colour and negative in another: the label and the
    explanation name exactly the colours the page shows."""
    import re

    tab = open_tab(page, "Sentiment")
    tab.get_by_label("Text to classify").fill(
        "The acting was wonderful but the plot was dull, slow and far too long.")
    tab.get_by_role("button", name="Classify").click()
    explanation = tab.get_by_text(re.compile(r"^Predicted "))
    explanation.wait_for(timeout=60_000)
    page.wait_for_function(f"({SPAN_COLOURS})().length > 0")
    drawn = {colour_name(tuple(c)) for c in page.evaluate(SPAN_COLOURS)}
    label = page.locator("#sentiment-attribution").inner_text()
    named = set(re.findall(r"(\w+): (?:towards|away)", label))
    assert named == {"red", "purple"}, label
    assert drawn and drawn <= named, (drawn, label)
    said = set(re.findall(r"\((\w+)\)", explanation.inner_text()))
    assert said == named


def test_the_model_tab_shows_a_model_as_soon_as_it_is_chosen(page):
    """No Show click: choosing another model in the list redraws the tab for it."""
    tab = open_tab(page, "Model")
    tab.get_by_text("Where the parameters are").first.wait_for()
    tab.locator("h3", has_text="Embedded masked LM").wait_for()
    tab.get_by_label("Model", exact=True).click()
    page.get_by_role("option", name="Embedded sentiment classifier").click()
    tab.locator("h3", has_text="Embedded sentiment classifier").wait_for(timeout=30_000)
    assert tab.get_by_text("classification head on <s>").count() >= 1


def test_an_empty_sentiment_chart_promises_no_baseline(page):
    open_tab(page, "Sentiment")
    assert page.locator("#tab-sentiment").get_by_text("computing").count() == 0


def download_from(page, selector: str, tmp_path, name: str):
    """Click the download button at `selector` once and return the saved zip's path."""
    with page.expect_download(timeout=60_000) as caught:
        page.locator(selector).click()
    target = tmp_path / name
    caught.value.save_as(target)
    return target


def zipped_config(path) -> tuple[str, dict]:
    import json
    import zipfile

    with zipfile.ZipFile(path) as archive:
        config_name = next(n for n in archive.namelist() if n.endswith("/config.json"))
        return config_name.split("/")[0], json.loads(archive.read(config_name))


def choose_model(page, tab, name: str) -> None:
    tab.get_by_label("Model", exact=True).click()
    page.get_by_role("option", name=name).click()
    # the button names the model once its zip is ready
    page.locator("#model-download", has_text=name).wait_for(timeout=60_000)


def test_one_click_downloads_the_chosen_model_then_the_next(page, tmp_path, browser_app_url):
    """Model tab: choose A, one click saves A; choose B (a classifier), one click saves B, not
    A again; B imports back into the app as a classifier."""
    from gradio_client import Client, handle_file

    tab = open_tab(page, "Model")
    choose_model(page, tab, "Embedded masked LM")
    first = download_from(page, "#model-download", tmp_path, "a.zip")
    folder, config = zipped_config(first)
    assert folder.startswith("embedded-masked-lm-")
    assert config["architectures"] == ["RobertaForMaskedLM"]

    choose_model(page, tab, "Embedded sentiment classifier")
    second = download_from(page, "#model-download", tmp_path, "b.zip")
    folder, config = zipped_config(second)
    assert folder.startswith("embedded-sentiment-classifier-")
    assert config["architectures"] == ["RobertaForSequenceClassification"]
    assert set(config["id2label"].values()) == {"negative", "positive"}

    client = Client(browser_app_url, verbose=False)
    _, _, status = client.predict(handle_file(str(second)), api_name="/import_checkpoint")
    assert "sentiment classifier" in status


DRAWS = "() => window.robertaLabChartDraws || 0"


def dom_nodes_after_gc(page) -> int:
    """Every DOM node the tab holds, in the page or detached but still referenced."""
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send("Performance.enable")
        cdp.send("HeapProfiler.collectGarbage")
        metrics = cdp.send("Performance.getMetrics")["metrics"]
        return int(next(m["value"] for m in metrics if m["name"] == "Nodes"))
    finally:
        cdp.detach()


def test_redrawn_charts_do_not_pile_up_in_the_tab(page):
    """Gradio mounts a new plotly chart for every chart update and leaves the old one held by
    a resize listener (~290 DOM nodes each): the page purges them, so the tab's node count
    stays flat however many times a live run redraws (issue 13: 1.1 GB after a minute)."""
    from tiny_assets import set_up_tiny_run

    page.get_by_role("tab", name="Train").click()
    tab = page.locator("#tab-train")
    set_up_tiny_run(tab, 5000)
    page.locator("#train-start").click()
    page.wait_for_function(f"({DRAWS})() >= 10", timeout=120_000)
    page.wait_for_timeout(2500)  # the purge runs every 2 s
    before, draws_before = dom_nodes_after_gc(page), page.evaluate(DRAWS)
    page.wait_for_function(f"({DRAWS})() >= {draws_before + 30}", timeout=180_000)
    page.locator("#train-stop").click()
    page.locator("#train-status").get_by_text("Stopped after").wait_for(timeout=120_000)
    page.wait_for_timeout(2500)
    after, draws = dom_nodes_after_gc(page), page.evaluate(DRAWS) - draws_before
    assert (after - before) / draws < 40, (before, after, draws)
