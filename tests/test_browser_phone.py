"""The app on a phone (390 × 844, chromium via playwright, see conftest.py): every tab is one tap
away, nothing makes the page scroll sideways, and the views that broke at that width read
(issue 33): the probe table's guesses, the head summary's titles, charts without their toolbar
over the title."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHONE = {"width": 390, "height": 844}
TABS = ["Train", "Experiments", "Fill-mask", "Sentiment", "Attention", "Masking", "Model"]


@pytest.fixture(scope="module")
def phone(browser, browser_app_url, offline_guard, page_errors):
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    context.route("**/*", offline_guard.route)
    page = context.new_page()
    page.on("pageerror", page_errors.on_page_error)
    page.on("console", page_errors.on_console)
    page.set_default_timeout(60_000)
    page.goto(browser_app_url)
    page.get_by_role("tab", name="Train").wait_for()
    yield page
    context.close()
    offline_guard.check()


@pytest.fixture
def page(phone):  # conftest's JavaScript-error check runs for tests that use `page`
    return phone


def sideways_overflow(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth") - PHONE["width"]


def test_every_tab_is_one_tap_away_and_nothing_scrolls_sideways(page):
    assert page.get_by_role("button", name="More tabs").count() == 0  # no "⋯" menu
    for name in TABS:
        tab = page.get_by_role("tab", name=name)
        box = tab.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (name, box)
        tab.click()
        page.locator(f"#tab-{name.lower()}").wait_for(state="visible")
        assert sideways_overflow(page) <= 0, name


def test_the_probe_table_shows_every_guess(page):
    page.get_by_role("tab", name="Train").click()
    table = page.locator("#train-probes")
    table.wait_for()
    right = table.bounding_box()["x"] + table.bounding_box()["width"]
    headers = table.locator("th")
    assert headers.count() == 6
    for i in range(6):
        box = headers.nth(i).bounding_box()
        assert box["width"] >= 36 and box["x"] + box["width"] <= right + 1, (i, box)


def test_the_attention_views_read_at_phone_width(page):
    page.get_by_role("tab", name="Attention").click()
    tab = page.locator("#tab-attention")
    tab.get_by_role("button", name="Show attention").click()
    tab.locator(".js-plotly-plot").nth(1).wait_for()
    page.wait_for_function(
        "document.querySelectorAll('#tab-attention .js-plotly-plot').length >= 3")
    # plotly's toolbar would sit on the chart titles: hidden at this width
    assert page.evaluate("""() => [...document.querySelectorAll(
        '#tab-attention .modebar-container')].every(e => getComputedStyle(e).display === 'none')""")
    # the head summary's four panel titles side by side without overlapping
    boxes = page.evaluate("""() => {
        const plot = [...document.querySelectorAll('#tab-attention .js-plotly-plot')]
            .find(p => p.layout && p.layout.annotations && p.layout.annotations.length === 4);
        return [...plot.querySelectorAll('.annotation-text')].map(t => {
            const r = t.getBoundingClientRect(); return [r.left, r.right]; });
    }""")
    assert len(boxes) == 4
    boxes.sort()
    for (_, right), (left, _) in zip(boxes, boxes[1:], strict=False):
        assert right <= left + 1, boxes
    assert sideways_overflow(page) <= 0
    # bertviz counts layers from 1, as the Layer box and every other view here do
    head_view = page.frame_locator("#bertviz-head-view iframe")
    head_view.locator("#layer option").first.wait_for(state="attached")
    layers = head_view.locator("#layer option").all_inner_texts()
    assert layers[0] == "1" and layers[-1] == str(len(layers)), layers


def test_bertviz_model_view_says_it_scrolls_sideways_and_does(page):
    """The model view (every layer × head) is wider than a phone: the tab says so, and its
    frame scrolls sideways to its last column instead of cutting it off."""
    page.get_by_role("tab", name="Attention").click()
    tab = page.locator("#tab-attention")
    tab.get_by_role("button", name="Show attention").click()
    page.frame_locator("#bertviz-model-view iframe").locator("svg").first.wait_for()
    assert tab.get_by_text("Wider than a phone: scroll it sideways").is_visible()
    iframe = page.locator("#bertviz-model-view iframe")
    frame, frame_box = iframe.element_handle().content_frame(), iframe.bounding_box()
    assert frame_box["x"] >= 0 and frame_box["x"] + frame_box["width"] <= PHONE["width"]
    wide, seen = frame.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert wide > seen  # wider than the phone ...
    scrolled = frame.evaluate("window.scrollTo(100000, 0); window.scrollX")
    assert scrolled == wide - seen  # ... and every column can be scrolled into view
    assert sideways_overflow(page) <= 0  # the frame scrolls, not the page
