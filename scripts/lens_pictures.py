"""The logit-lens pictures in README: three of the embedded masked LM's everyday probes (one
the model gets at its first layer, one it gets late, one it never gets), drawn by the app's own
figure (roberta/viz/lens.py) and photographed in Debian's chromium.

    python scripts/lens_pictures.py        # writes docs/screenshots/lens-*.png
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from roberta.defaults import default_model_dir  # noqa: E402
from roberta.lens import logit_lens  # noqa: E402
from roberta.model import RobertaForMaskedLM  # noqa: E402
from roberta.tokenizer import RobertaTokenizer  # noqa: E402
from roberta.viz.attention import plotly_text  # noqa: E402
from roberta.viz.lens import lens_figure  # noqa: E402

PROBES = {
    "lens-1-early.png": "The president of the United <mask> spoke on Monday.",
    "lens-2-late.png": "The movie was so <mask> that I fell asleep.",
    "lens-3-never.png": "It is raining, so take an <mask>.",
}


def main() -> None:
    directory = default_model_dir("mlm")
    model = RobertaForMaskedLM.from_pretrained(directory).eval()
    tokenizer = RobertaTokenizer.from_pretrained(directory)
    out = ROOT / "docs" / "screenshots"
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as work:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"))
        page = browser.new_page(viewport={"width": 900, "height": 480})
        for name, text in PROBES.items():
            figure = lens_figure(logit_lens(model, tokenizer, text))
            figure.update_layout(title=f"{plotly_text(text)}<br><sup>{figure.layout.title.text}</sup>",
                                 width=880)
            html = Path(work) / "lens.html"
            figure.write_html(html, include_plotlyjs=True, config={"displayModeBar": False})
            page.goto(html.as_uri())
            page.locator(".heatmaplayer").wait_for()
            page.locator(".js-plotly-plot").screenshot(path=out / name)
            print(out / name)
        browser.close()


if __name__ == "__main__":
    main()
