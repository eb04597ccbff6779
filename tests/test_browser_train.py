"""The Train tab in a real browser (chromium via playwright, see conftest.py): start a short
run, watch the loss chart gain points, stop it, and get a usable model. Any request that
would leave 127.0.0.1 fails the test (the `page` fixture aborts and records it)."""

from __future__ import annotations

import re

import pytest
from tiny_assets import LOSS_POINTS, set_up_tiny_run

pytestmark = [pytest.mark.browser, pytest.mark.slow]



def test_training_draws_the_loss_and_stops_with_a_model(page):
    page.get_by_role("tab", name="Train").click()
    tab = page.locator("#tab-train")
    # A small pasted corpus and the embedded tokenizer: the run starts within a second.
    set_up_tiny_run(tab, 3000)

    page.locator("#train-start").click()
    page.wait_for_function(f"({LOSS_POINTS})() >= 2", timeout=90_000)
    first = page.evaluate(LOSS_POINTS)
    page.wait_for_function(f"({LOSS_POINTS})() > {first}", timeout=60_000)  # it keeps growing
    assert page.locator("#train-progress").inner_text().startswith("step ")

    # Stop greys out and says "Stopping…" in the page at once, before the server has heard of
    # it: the page's request to the queue is held until then, then let through.
    held = []
    page.route("**/queue/join*", lambda route: held.append(route))
    page.locator("#train-stop").click()
    page.wait_for_function("() => document.querySelector('#train-stop').disabled",
                           timeout=5_000)
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the Stop click sent nothing to the server"
    assert page.get_by_text("Stopping after the current step").count() == 0
    assert page.locator("#train-stop").inner_text().strip() == "Stopping…"
    for route in held:
        route.continue_()
    page.unroute("**/queue/join*")
    page.get_by_text("Stopping after the current step").first.wait_for(timeout=30_000)
    status = page.locator("#train-status")
    status.get_by_text("Stopped after").wait_for(timeout=60_000)
    assert "where the input was" in status.inner_text()
    assert tab.get_by_label("Trained model (selectable in the other tabs)").input_value() \
        .startswith("My model 1 (micro,")
    assert page.locator("#train-start").is_enabled()
    page.wait_for_function("() => document.querySelector('#train-stop').innerText.trim() == "
                           "'■ Stop'", timeout=10_000)  # ready for the next run
    assert page.locator("#train-probes").get_by_text("Probe at step").count() == 1
    assert page.get_by_text("Traceback").count() == 0
    # One click on the download button saves this run's model (its zip is ready already).
    download = page.locator("#train-download", has_text="My model 1 (micro,")
    download.wait_for(timeout=60_000)
    with page.expect_download(timeout=60_000) as caught:
        download.click()
    assert caught.value.suggested_filename.startswith("my-model-1-micro-")


def start_and_see_the_buttons_restored(page, prefix: str, error: str) -> None:
    """Press #prefix-start, see `error`, and find Start enabled and Stop disabled again."""
    page.locator(f"#{prefix}-start").click()
    page.get_by_text(error).first.wait_for(timeout=30_000)
    page.wait_for_function(
        f"() => !document.querySelector('#{prefix}-start').disabled", timeout=30_000)
    assert page.locator(f"#{prefix}-stop").is_disabled()


def test_a_settings_error_leaves_the_buttons_as_they_were(page):
    page.get_by_role("tab", name="Train").click()
    tab = page.locator("#tab-train")
    probes = tab.get_by_label("Probe sentences, one per line, each with <mask>")
    if not probes.is_visible():
        tab.get_by_text("Settings: corpus, tokenizer").click()
    probes.fill("This sentence has no blank.")
    start_and_see_the_buttons_restored(page, "train", "has no <mask>")
    probes.fill("The <mask> was good.")


def test_a_finetuning_settings_error_leaves_the_buttons_as_they_were(page):
    page.get_by_role("tab", name="Sentiment").click()
    page.locator("#tab-sentiment").get_by_label("Steps", exact=True).fill("0")
    start_and_see_the_buttons_restored(page, "finetune", "Steps must be at least 1")


def test_a_new_classifier_is_selected_under_classify_at_once(page):
    """No tab switch needed: when fine-tuning ends, Classify offers the new classifier and has
    it selected, and classifying uses it."""
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Sentiment").click()
    tab = page.locator("#tab-sentiment")
    tab.get_by_label("Steps", exact=True).fill("4")
    page.locator("#finetune-start").click()
    name_box = tab.get_by_label("Fine-tuned classifier")
    expect(name_box).not_to_have_value("", timeout=180_000)
    name = name_box.input_value()
    expect(tab.get_by_label("Classifier", exact=True)).to_have_value(name, timeout=30_000)
    page.get_by_role("button", name="Classify").click()
    verdict = tab.get_by_text(re.compile(r"^Predicted "))
    verdict.wait_for(timeout=60_000)
    assert name in verdict.inner_text()
