"""The time-lapse in a real browser (chromium via playwright, see conftest.py): a short run of
the Train tab grows its time-lapse while it trains, the slider then replays every snapshot and
redraws within 300 ms, Play runs through them; the downloaded zip shows it again once imported
(and a zip whose time-lapse is damaged says why in one line); an Experiments pair replays both
sides under one slider. One page for the module: loading Gradio's frontend is the slow part."""

from __future__ import annotations

import zipfile

import pytest
from test_browser import open_tab
from tiny_assets import set_up_tiny_run

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REDRAW_MS = 300
STEPS, EVERY = 100, 20  # 6 snapshots: 0, 20, ..., 100

STATE = "id => document.querySelector('#' + id + ' .tl-block').parentElement.robertaTimelapse"
# Move the slider to snapshot k as a drag does (an input event) and time it until the block
# has drawn that snapshot and the browser has painted the frame after.
SCRUB = """async ([id, k]) => {
    const element = document.querySelector('#' + id + ' .tl-block').parentElement;
    const slider = element.querySelector('.tl-slider');
    const drawn = new Promise(resolve => element.addEventListener('tl-drawn', function seen(e) {
        if (e.detail === k) { element.removeEventListener('tl-drawn', seen); resolve(); }
    }));
    const started = performance.now();
    slider.value = k;
    slider.dispatchEvent(new Event('input', {bubbles: true}));
    await drawn;
    await new Promise(resolve => requestAnimationFrame(() => resolve()));
    return [performance.now() - started, element.robertaTimelapse.lastMs];
}"""
# The drawn colour (r + g + b) of cell (q, k) of the n-th head's heatmap: darker is more.
CELL = """([id, n, q, k]) => {
    const canvas = document.querySelectorAll('#' + id + ' .tl-head canvas')[n];
    const h = canvas.hover, dpr = window.devicePixelRatio || 1;
    const x = (h.left + (k + 0.5) * h.cell) * dpr, y = (q + 0.5) * h.cell * dpr;
    const [r, g, b] = canvas.getContext('2d').getImageData(x, y, 1, 1).data;
    return r + g + b;
}"""


def scrub_all(page, block_id: str, indexes) -> list[float]:
    """Each move's time from the input event to the frame painted after its redraw (ms)."""
    measured = [page.evaluate(SCRUB, [block_id, k]) for k in indexes]
    print(f"{block_id}: input to paint, drawing: {[[round(t) for t in m] for m in measured]}")
    times = [total for total, _ in measured]
    assert max(times) <= REDRAW_MS, f"slider redraws took {times} ms"
    return times


def test_a_run_grows_its_timelapse_and_the_slider_replays_it(page):
    tab = open_tab(page, "Train")
    set_up_tiny_run(tab, STEPS)
    tab.get_by_label("Evaluate every (steps)").fill(str(EVERY))
    page.locator("#train-start").click()
    page.locator("#train-status").get_by_text("Finished after").wait_for(timeout=240_000)
    page.wait_for_function(f"({STATE})('train-timelapse').drawn === {STEPS // EVERY}")
    state = f"({STATE})('train-timelapse')"
    # During the run the slider went up to the latest snapshot: values with fewer came first.
    seen = page.evaluate(f"{state}.seen")
    final = STEPS // EVERY + 1
    assert seen[-1] == final and any(0 < n < final for n in seen), seen
    (run,) = page.evaluate(f"{state}.value().runs")
    assert run["steps"] == list(range(0, STEPS + 1, EVERY))
    block = page.locator("#train-timelapse")
    assert block.locator(".tl-head canvas").count() == 4  # micro: 2 layers × 2 heads
    assert block.locator(".tl-roles td").count() == 4

    # The run's last updates (the download's zip) have reached the page: it is idle but for us.
    page.locator("#train-download", has_text="My model 1 (micro,").wait_for(timeout=60_000)
    scrub_all(page, "train-timelapse", [3, 0, 5, 2, 4, 1])
    assert block.locator(".tl-step").inner_text().startswith("step 20 ")
    assert block.locator(".tl-line").inner_text().startswith("step 20 · validation accuracy")
    assert block.locator(".tl-probes b").count() == len(run["probes"][1].split("<b>")) - 1 > 0
    # What the heatmap shows is that snapshot's attention: its strongest cell darkest.
    weights = run["attention"]["frames"][1]
    T = len(run["attention"]["tokens"])
    first_head = weights[:T * T]
    top, low = first_head.index(max(first_head)), first_head.index(min(first_head))
    assert page.evaluate(CELL, ["train-timelapse", 0, *divmod(top, T)]) < \
        page.evaluate(CELL, ["train-timelapse", 0, *divmod(low, T)])

    page.evaluate(SCRUB, ["train-timelapse", final - 1])
    block.locator(".tl-play").click()  # at the end, Play starts again from the first
    page.wait_for_function(f"{state}.drawn === 0 || {state}.index < {final - 1}")
    page.wait_for_function(f"{state}.drawn === {final - 1} && !{state}.playing",
                           timeout=60_000)
    assert block.locator(".tl-play").inner_text() == "▶ Play"
    assert page.get_by_text("Traceback").count() == 0

    # On a phone the block redraws at its width and nothing scrolls the page sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        page.wait_for_function(f"{state}.lastMs !== undefined && document.querySelector("
                               f"'#train-timelapse .tl-map').width <= 390 * devicePixelRatio")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        page.set_viewport_size({"width": 1400, "height": 1000})


def test_the_downloaded_zip_replays_again_once_imported(page, tmp_path):
    """After the run above: its zip carries the time-lapse; a copy whose time-lapse file is cut
    short imports as a model all the same, with the one line saying why there is none."""
    download = page.locator("#train-download", has_text="My model 1 (micro,")
    download.wait_for(timeout=60_000)
    with page.expect_download(timeout=60_000) as caught:
        download.click()
    archive = tmp_path / "run.zip"
    caught.value.save_as(archive)
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(damaged, "w") as target:
        names = [info.filename for info in source.infolist()]
        assert any(n.endswith("/timelapse.safetensors") for n in names), names
        for name in names:
            data = source.read(name)
            target.writestr(name, data[:100] if name.endswith("timelapse.safetensors") else data)

    tab = open_tab(page, "Model")
    tab.get_by_text("Import a Hugging Face checkpoint (.zip)").click()
    block = page.locator("#import-timelapse-mlm-classifier")
    for zipped in (archive, damaged):
        tab.locator('input[type="file"][accept=".zip"]').set_input_files(str(zipped))
        tab.get_by_text(f"Added Imported: {zipped.stem}").wait_for()
        if zipped is archive:
            block.locator(".tl-step").get_by_text(f"step {STEPS}").wait_for()
            assert block.locator(".tl-head canvas").count() == 4
            scrub_all(page, "import-timelapse-mlm-classifier", [0, 2])
            assert block.locator(".tl-step").inner_text().startswith("step 40 ")
        else:
            block.locator(".tl-message").get_by_text(
                "Its time-lapse was not loaded: the file is not a readable safetensors file "
                "(truncated or damaged).").wait_for()
            assert block.locator(".tl-run").count() == 0
            assert block.locator(".tl-controls").is_hidden()


def test_an_experiments_pair_replays_side_by_side_under_one_slider(page):
    tab = open_tab(page, "Experiments")
    tab.get_by_text("Budget and seed").click()
    tab.get_by_label("Steps of side A (0: the comparison's default)").fill("40")
    page.locator("#compare-start").click()
    page.locator("#compare-status").get_by_text("Finished: A after 40").wait_for(
        timeout=300_000)
    block = page.locator("#compare-timelapse")
    block.locator(".tl-run").nth(1).wait_for()
    assert block.locator(".tl-title").all_inner_texts() == [
        "A: structured start", "B: RoBERTa's random start"]
    scrub_all(page, "compare-timelapse", [0, 1, 0])
    assert block.locator(".tl-step").inner_text().startswith("A step 0 · B step 0")
    assert all(line.startswith("step 0") for line in block.locator(".tl-line").all_inner_texts())
    assert block.locator(".tl-head canvas").count() == 8  # 2 × (2 layers × 2 heads)
