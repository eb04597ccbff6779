"""Models in and out of the app in a real browser (chromium via playwright, see conftest.py):
upload a checkpoint and get the library's answers from it, switch a head off and see the
probability change, download a trained model and load it in transformers."""

from __future__ import annotations

import re
import zipfile

import pytest
import torch
from tiny_assets import set_up_tiny_run

from roberta import RobertaForMaskedLM
from roberta.inference import fill_mask
from roberta.tokenizer import RobertaTokenizer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TEXT = "The cat sat on the <mask>."
UPLOADED = "Imported: sharp-lm"


@pytest.fixture(autouse=True)
def stays_offline(offline_guard):
    yield
    offline_guard.check()


@pytest.fixture(scope="module")
def sharp_checkpoint(tiny_assets, tmp_path_factory):
    """(zip, model, tokenizer): the tiny masked LM with large random weights, so its guesses
    are far from uniform and each head visibly matters (an untrained model's probabilities all
    round to the same figure)."""
    model = RobertaForMaskedLM.from_pretrained(tiny_assets / "mlm").eval()
    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "mlm")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim >= 2:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    folder = tmp_path_factory.mktemp("sharp") / "sharp-lm"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    archive = folder.parent / "sharp-lm.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for file in sorted(folder.iterdir()):
            zipped.write(file, f"sharp-lm/{file.name}")
    return archive, model, tokenizer


def open_tab(page, name: str):
    page.get_by_role("tab", name=name).click()
    return page.locator(f"#tab-{name.lower()}")


def table_rows(page, table, columns: int) -> list[list[str]]:
    """The visible cells of a gr.Dataframe, row by row."""
    rows = table.locator('[role="row"][data-index]')
    return [[rows.nth(r).locator(f'[data-testid="cell-{r}-{c}"]').inner_text().strip()
             for c in range(columns)] for r in range(rows.count())]


def import_checkpoint(page, archive) -> None:
    """Upload the zip under Fill-mask → Import (once per page: the session keeps it)."""
    tab = open_tab(page, "Fill-mask")
    model_box = tab.get_by_label("Model", exact=True)
    if model_box.input_value() == UPLOADED:
        return
    tab.get_by_text("Import a Hugging Face checkpoint (.zip)").click()
    tab.locator('input[type="file"][accept=".zip"]').set_input_files(str(archive))
    tab.get_by_role("button", name="Import", exact=True).click()
    page.get_by_text(f"as “{UPLOADED}”").first.wait_for()  # the toast: "Added sharp-lm.zip as …"
    assert model_box.input_value() == UPLOADED  # selected at once


def test_an_uploaded_checkpoint_fills_masks_as_the_library_does(page, sharp_checkpoint):
    archive, model, tokenizer = sharp_checkpoint
    import_checkpoint(page, archive)
    tab = open_tab(page, "Fill-mask")
    tab.locator("textarea").first.fill(TEXT)
    tab.get_by_role("button", name="Predict").click()
    results = page.locator("#fill-mask-results")
    results.locator('[data-testid="cell-4-0"]').wait_for()
    expected = fill_mask(model, tokenizer, TEXT, top_k=5).predictions[0].candidates
    shown = table_rows(page, results, 4)
    assert [int(row[1]) for row in shown] == [1, 2, 3, 4, 5]
    for row, candidate in zip(shown, expected, strict=True):
        assert float(row[3].rstrip("%")) == pytest.approx(
            100 * candidate.probability if row[3].endswith("%") else candidate.probability,
            abs=0.051 if row[3].endswith("%") else 5e-4), (row, candidate)


def test_switching_a_head_off_changes_the_probability_shown(page, sharp_checkpoint):
    archive, model, tokenizer = sharp_checkpoint
    import_checkpoint(page, archive)
    tab = open_tab(page, "Attention")
    tab.locator("textarea").first.fill(TEXT)
    model_box = tab.get_by_label("Model", exact=True)
    model_box.fill(UPLOADED)
    model_box.press("Enter")
    tab.get_by_text("Switch heads off").click()
    heads = page.locator("#heads-off input")
    heads.fill("L1H1")
    heads.press("Enter")
    tab.get_by_role("button", name="Show attention").click()
    tab.get_by_text("With 1 head switched off").wait_for()
    table = tab.get_by_role("grid", name="Top-5 guesses per <mask>")
    table.locator('[data-testid="cell-4-0"]').wait_for()
    shown = table_rows(page, table, 6)

    head_mask = torch.ones(model.config.num_hidden_layers, model.config.num_attention_heads)
    head_mask[0, 0] = 0
    all_on = fill_mask(model, tokenizer, TEXT, top_k=5).predictions[0].candidates
    one_off = fill_mask(model, tokenizer, TEXT, top_k=5,
                        head_mask=head_mask).predictions[0].candidates
    on = [float(row[3]) for row in shown]
    off = [float(row[5]) for row in shown]
    assert on == pytest.approx([c.probability for c in all_on], abs=1e-4)
    assert off == pytest.approx([c.probability for c in one_off], abs=1e-4)
    assert max(abs(a - b) for a, b in zip(on, off, strict=True)) > 0.01  # visibly changed


def test_download_gives_a_zip_that_transformers_loads(page, tmp_path):
    """Train a few steps, press the Train tab's download control, and load what the browser
    saved. A one-click download and a two-step one (a file link appears) both pass."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    transformers = pytest.importorskip("transformers")
    tab = open_tab(page, "Train")
    set_up_tiny_run(tab, 6)
    page.locator("#train-start").click()
    page.locator("#train-status").get_by_text("Finished after 6 steps").wait_for(timeout=180_000)
    name = tab.get_by_label("Trained model (selectable in the other tabs)").input_value()

    # The model's download control (Plotly's "Download plot as a PNG" buttons are not it).
    control = tab.get_by_role("button", name=re.compile(r"Download(?! plot)"))
    try:
        with page.expect_download(timeout=15_000) as started:
            control.click()
    except PlaywrightTimeout:  # the zip is offered as a link first
        with page.expect_download(timeout=60_000) as started:
            tab.locator('a[download$=".zip"]').first.click()
    saved = tmp_path / "download.zip"
    started.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        archive.extractall(tmp_path / "unzipped")
    folder = next(p.parent for p in (tmp_path / "unzipped").rglob("config.json"))
    theirs = transformers.AutoModelForMaskedLM.from_pretrained(folder).eval()
    ours = RobertaForMaskedLM.from_pretrained(folder).eval()
    ids = transformers.AutoTokenizer.from_pretrained(folder)(TEXT, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(theirs(**ids).logits, ours(ids["input_ids"]).logits,
                                   atol=1e-4, rtol=1e-4)
    assert name.startswith("My model 1 (")
