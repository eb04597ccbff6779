"""A training run's memory goes back when it ends (issue #31): its reference cycles (trainer,
model, optimizer, batches) are collected at once, not whenever Python's collector next runs."""

from __future__ import annotations

import gc
import weakref

import pytest

from roberta.ui.runs import stream_run


class Cycle:
    """Holds a megabyte and itself, as a finished trainer holds its model and optimizer."""

    def __init__(self):
        self.me = self
        self.payload = bytearray(1_000_000)


@pytest.fixture
def no_automatic_collection():
    gc.collect()
    gc.disable()
    yield
    gc.enable()


def cycle_job(refs: list):
    def job(stop_requested):
        cycle = Cycle()
        refs.append(weakref.ref(cycle))
        yield "step 1"
        yield "step 2"
    return job


def test_a_run_that_ends_is_collected(no_automatic_collection):
    refs: list = []
    control: dict = {}
    assert list(stream_run(control, cycle_job(refs), lambda m: m)) == ["step 1", "step 2"]
    assert refs and refs[0]() is None
    assert control["running"] is False


def test_a_run_whose_page_goes_away_is_collected(no_automatic_collection):
    refs: list = []
    run = stream_run({}, cycle_job(refs), lambda m: m)
    assert next(run) == "step 1"
    assert refs[0]() is not None  # alive while it runs
    run.close()  # the visitor left mid-run
    assert refs[0]() is None
