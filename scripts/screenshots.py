"""Save a PNG of each tab of the app to docs/screenshots/ (the README shows them).

    python scripts/screenshots.py            # uses the embedded models in assets/
    python scripts/screenshots.py --tiny     # a throw-away untrained model, if assets/ is empty
    python scripts/screenshots.py --only 9-phone-fill-mask.png   # one picture again

The app is launched in this process and driven by Debian's chromium through playwright (no
browser download, no network: every request that would leave 127.0.0.1 is aborted). Each tab's
main button is pressed first so the picture shows results, not empty panels. Screenshots are of
the viewport, so each PNG stays around 100–300 KB. The last pictures are taken on a phone-sized
page (390 × 844, as tests/test_browser_phone.py checks it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
# (file name, tab, button to press or None, text to wait for afterwards or None); buttons are
# matched by the word in their label, so an icon in front of it may change.
SHOTS = [
    ("1-train.png", "Train", "Start", None),
    # The same run's time-lapse, under its charts (the run was stopped after 1-train.png).
    ("10-train-timelapse.png", "Train", None, None),
    ("2-fill-mask.png", "Fill-mask", "Predict", "First guesses"),
    ("3-sentiment.png", "Sentiment", "Classify", "Predicted"),
    ("4-attention.png", "Attention", "Show attention", "All heads are on"),
    ("5-masking.png", "Masking", "Mask it", "maskable tokens"),
    ("6-model.png", "Model", None, "Where the parameters are"),
    # Two runs on the same charts: stopped after --compare-seconds, then the verdict.
    ("7-experiments.png", "Experiments", "Compare", None),
    # The Experiments tab's two models, side by side in Fill-mask.
    ("8-fill-mask-compare.png", "Fill-mask", None, None),
]
# Taken on a phone-sized page, after the others: (file name, tab, button, text to wait for).
PHONE_SHOTS = [
    ("9-phone-fill-mask.png", "Fill-mask", "Predict", "First guesses"),
]
PHONE = {"width": 390, "height": 844}
EXTRA_WAIT = {"Attention": "#bertviz-head-view iframe"}
SCROLL_TO_BUTTON: dict[str, str] = {}  # tab: a button to show rather than the tab's top
WAIT_FOR = {"10-train-timelapse.png": "#train-timelapse .tl-head canvas"}
SCROLL_TO = {"10-train-timelapse.png": "#train-timelapse",
             "7-experiments.png": "#compare-paragraph",
             "8-fill-mask-compare.png": "#fill-mask-compare"}


def run_comparison(page, tab, seconds: float) -> None:
    """The default comparison (the plateau) to its end, or stopped after `seconds`, its verdict
    shown."""
    tab.get_by_text(re.compile(r"step [1-9]\d* / \d+")).first.wait_for(timeout=600_000)
    found = page.locator("#compare-paragraph").get_by_text("What this run found")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not found.count():
        time.sleep(1)
    press_stop_if_running(page.locator("#compare-stop"))
    page.locator("#compare-paragraph").get_by_text("What this run found").wait_for(
        timeout=600_000)
    page.wait_for_timeout(8000)  # let the "Stopping…" toast fade


def press_stop_if_running(stop) -> None:
    """Click Stop unless the run has ended: it may end (and Stop grey out) while we reach it."""
    if stop.is_enabled():
        with contextlib.suppress(PlaywrightTimeout):
            stop.click(timeout=5_000)


def compare_in_fill_mask(page, tab) -> None:
    """Open the side-by-side panel, put the comparison's random-start model in column B."""
    tab.get_by_text("Compare two models side by side").click()
    model_b = tab.get_by_label("Model B", exact=True)
    model_b.click()
    page.get_by_role("option", name=re.compile("^Experiment 1 B")).first.click()
    page.locator("#fill-mask-compare").click()
    tab.get_by_text("First guesses agree").wait_for()


def take(page, args: argparse.Namespace, file_name: str, tab_name: str, button: str | None,
         wait_text: str | None) -> None:
    """Open the tab, press its button, wait for its results and save the viewport."""
    page.get_by_role("tab", name=tab_name).click()
    tab = page.locator(f"#tab-{tab_name.lower()}")
    if button:
        tab.get_by_role("button", name=re.compile(button)).first.click()
    if tab_name == "Train":  # first step (data prepared), then let it learn
        tab.get_by_text(re.compile(r"step [1-9]\d* / \d+")).first.wait_for()
        time.sleep(args.train_seconds)
    if tab_name == "Experiments":
        run_comparison(page, tab, args.compare_seconds)
    if file_name == "8-fill-mask-compare.png":
        compare_in_fill_mask(page, tab)
    if wait_text:
        tab.get_by_text(wait_text).first.wait_for()
    if tab_name in EXTRA_WAIT:
        page.locator(EXTRA_WAIT[tab_name]).wait_for()
    if file_name in WAIT_FOR:
        page.locator(WAIT_FOR[file_name]).first.wait_for()
    page.wait_for_timeout(1500)  # let plots and iframes finish drawing
    with contextlib.suppress(PlaywrightTimeout):  # an earlier tab's toast fades
        page.locator(".toast-body").first.wait_for(state="hidden", timeout=15_000)
    page.evaluate("window.scrollTo(0, 0)")
    if file_name in SCROLL_TO:
        box = page.locator(SCROLL_TO[file_name]).bounding_box()
        page.evaluate(f"window.scrollTo(0, {max(0, box['y'] - 20)})")
    if tab_name in SCROLL_TO_BUTTON:
        anchor = tab.get_by_role("button",
                                 name=re.compile(SCROLL_TO_BUTTON[tab_name])).first
        box = anchor.bounding_box()
        page.evaluate(f"window.scrollTo(0, {max(0, box['y'] - 250)})")
    target = args.out / file_name
    page.screenshot(path=str(target))
    print(f"{target}: {target.stat().st_size / 1e3:.0f} KB")
    if tab_name == "Train":
        press_stop_if_running(tab.get_by_role("button", name=re.compile("Stop")).first)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--tiny", action="store_true",
                        help="use a throw-away untrained nano model instead of assets/")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--train-seconds", type=float, default=20.0,
                        help="how long the Train tab runs after its first step before its "
                             "picture")
    parser.add_argument("--compare-seconds", type=float, default=600.0,
                        help="how long the Experiments tab's comparison may run before Stop")
    parser.add_argument("--only", nargs="+", default=None,
                        help="take only these files, e.g. 7-experiments.png "
                             "8-fill-mask-compare.png (8 needs 7 first, 10 needs 1)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1000)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if not Path(args.chromium).is_file():
        print(f"chromium not found at {args.chromium}: apt-get install -y chromium",
              file=sys.stderr)
        return 1
    if args.tiny:
        sys.path.insert(0, str(ROOT / "tests"))  # the tiny assets are a test fixture
        from tiny_assets import make_tiny_assets

        os.environ["ROBERTA_LAB_ASSETS"] = str(make_tiny_assets(tempfile.mkdtemp()))

    from playwright.sync_api import sync_playwright

    from roberta.ui.app import build_app, launch_kwargs

    demo = build_app()
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1",
                            **launch_kwargs())
    args.out.mkdir(parents=True, exist_ok=True)
    blocked: list[str] = []

    def stay_local(route):
        parsed = urlparse(route.request.url)
        if parsed.scheme in ("data", "blob", "about") or parsed.hostname in ("127.0.0.1",
                                                                              "localhost"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium,
                                                 args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": args.width,
                                                    "height": args.height})
            context.route("**/*", stay_local)
            page = context.new_page()
            page.set_default_timeout(120_000)
            page.goto(url)
            for shot in SHOTS:
                if not args.only or shot[0] in args.only:
                    take(page, args, *shot)
            context.close()
            phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
            phone.route("**/*", stay_local)
            page = phone.new_page()
            page.set_default_timeout(120_000)
            page.goto(url)
            for shot in PHONE_SHOTS:
                if not args.only or shot[0] in args.only:
                    take(page, args, *shot)
            browser.close()
    finally:
        demo.close()
    if blocked:
        print(f"blocked requests that tried to leave 127.0.0.1: {blocked}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
