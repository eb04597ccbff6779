"""Saving what the app shows (issue 35), in a real browser with the network off: every chart
downloads as PNG and SVG from its own toolbar, bertviz's views and the neuron view as web pages
that draw when opened with no network."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(autouse=True)
def stays_offline(offline_guard):
    yield
    offline_guard.check()


def open_tab(page, name: str):
    page.get_by_role("tab", name=name).click()
    return page.locator(f"#tab-{name.lower()}")


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
