"""A reload, in a real browser (chromium via playwright, see conftest.py): the page asks before
leaving while a run trains, and a stopped run's model is back after the reload (issue 33)."""

from __future__ import annotations

import pytest
from tiny_assets import LOSS_POINTS, set_up_tiny_run

pytestmark = [pytest.mark.browser, pytest.mark.slow]



def leaving_asks(page) -> bool:
    """Start a reload and see whether the browser asks first (its beforeunload dialog, which
    this answers "stay"); False: the page reloaded without asking."""
    asked = []

    def answer(dialog):
        asked.append(dialog.type)
        dialog.dismiss()

    page.once("dialog", answer)
    page.evaluate("() => { setTimeout(() => location.reload(), 0); }")
    for _ in range(50):
        if asked:
            break
        page.wait_for_timeout(100)
    page.remove_listener("dialog", answer)
    assert asked in ([], ["beforeunload"]), asked
    return bool(asked)


def test_leaving_asks_while_a_run_trains_and_a_reload_keeps_the_model(page, page_errors):
    page.get_by_role("tab", name="Train").click()
    tab = page.locator("#tab-train")
    set_up_tiny_run(tab, 3000)
    page.locator("#train-start").click()
    page.wait_for_function(f"({LOSS_POINTS})() >= 2", timeout=90_000)
    assert page.evaluate("window.robertaLabRunGoing()") is True
    assert leaving_asks(page)  # training: the browser asks first, and "stay" keeps the run
    points = page.evaluate(f"({LOSS_POINTS})()")
    page.wait_for_function(f"({LOSS_POINTS})() > {points}", timeout=60_000)  # still streaming
    page.locator("#train-stop").click()
    page.locator("#train-status").get_by_text("Stopped after").wait_for(timeout=60_000)
    name = tab.get_by_label("Trained model (selectable in the other tabs)").input_value()
    assert name.startswith("My model 1 (micro,")
    page.wait_for_function("() => !window.robertaLabRunGoing()", timeout=10_000)

    with page_errors.reloading():  # stopped: nothing to lose, so no question (a dialog would
        page.reload()              # block this)
    page.get_by_text("from before the reload are back").first.wait_for(timeout=30_000)
    page.get_by_role("tab", name="Fill-mask").click()
    model_box = page.locator("#tab-fill-mask").get_by_label("Model", exact=True)
    model_box.click()
    page.get_by_role("option", name=name).wait_for(timeout=10_000)
    page.get_by_role("option", name=name).click()
    assert model_box.input_value() == name
