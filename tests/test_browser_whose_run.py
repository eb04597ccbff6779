"""Whose run holds the training slot, in a real browser (chromium via playwright, see
conftest.py): a learner who presses Compare while their own Train run goes is told it is their
own run, not "another visitor's" (issue 33, item 4)."""

from __future__ import annotations

import contextlib

import pytest
from tiny_assets import LOSS_POINTS, set_up_tiny_run

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_compare_while_training_names_the_learners_own_run(page):
    page.get_by_role("tab", name="Train").click()
    set_up_tiny_run(page.locator("#tab-train"), 3000)
    page.locator("#train-start").click()
    try:
        page.wait_for_function(f"({LOSS_POINTS})() >= 1", timeout=120_000)  # it holds the slot
        page.get_by_role("tab", name="Experiments").click()
        page.locator("#compare-start").click()
        status = page.locator("#compare-status")
        status.get_by_text("Waiting").wait_for(timeout=60_000)
        said = status.inner_text()
        assert "your own training run in the Train tab is using it" in said, said
        assert "another visitor" not in said, said
    finally:
        with contextlib.suppress(Exception):  # leave nothing running for the next test
            page.locator("#compare-stop").click(timeout=5_000)
        page.get_by_role("tab", name="Train").click()
        page.locator("#train-stop").click()
        page.locator("#train-status").get_by_text("Stopped after").wait_for(timeout=120_000)
        # the comparison left the queue rather than taking the slot the run freed
        page.wait_for_function("() => !document.querySelector('#compare-start').disabled",
                               timeout=120_000)
        assert "you left the queue" in page.locator("#compare-status").inner_text()
