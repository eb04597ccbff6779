"""Requests on large models take turns in a lane of their own (issue #31): they never hold the
slots other visitors' requests on the host's models are answered in."""

from __future__ import annotations

import threading
import time

import gradio as gr
import pytest
import torch

from roberta.config import RobertaConfig
from roberta.import_checks import inference_cost
from roberta.model import RobertaForMaskedLM
from roberta.tokenizer import RobertaTokenizer
from roberta.ui import heavy_lane, registry
from roberta.ui.heavy_lane import BUSY, OWN_BUSY, HeavyLane
from roberta.ui.limits import ENV_HEAVY_GFLOPS, ENV_MAX_HEAVY_REQUESTS, Limits


class Holder:
    """A thread holding a place in `lane` for `owner` until released."""

    def __init__(self, lane: HeavyLane, owner: object):
        self.inside, self.release, self.error = threading.Event(), threading.Event(), None
        self.thread = threading.Thread(target=self._run, args=(lane, owner), daemon=True)
        self.thread.start()

    def _run(self, lane, owner):
        try:
            with lane.turn(owner):
                self.inside.set()
                self.release.wait(30)
        except gr.Error as err:
            self.error = err.message

    def done(self):
        self.release.set()
        self.thread.join(30)


def refusal(lane: HeavyLane, owner: object) -> str:
    with pytest.raises(gr.Error) as refused, lane.turn(owner):
        pass
    return refused.value.message


def test_one_runs_one_waits_and_the_rest_are_refused_at_once():
    lane = HeavyLane(lambda: 1, wait_seconds=30)
    first = Holder(lane, "A")
    assert first.inside.wait(5) and lane.running == 1
    second = Holder(lane, "B")  # waits for A's place
    for _ in range(100):
        if lane.waiting == 1:
            break
        time.sleep(0.01)
    assert lane.waiting == 1 and not second.inside.is_set()
    started = time.monotonic()
    assert refusal(lane, "C") == BUSY  # the lane is full: no third visitor waits
    assert time.monotonic() - started < 1  # refused at once: its slot is free in milliseconds
    first.done()
    assert second.inside.wait(5)  # A's end lets B in
    second.done()
    assert lane.running == lane.waiting == 0


def test_a_session_has_at_most_two_requests_in_the_lane_and_runs_one_at_a_time():
    lane = HeavyLane(lambda: 2, wait_seconds=30)
    first = Holder(lane, "A")
    assert first.inside.wait(5)
    second = Holder(lane, "A")  # a free place, but A already runs one: it waits
    time.sleep(0.2)
    assert not second.inside.is_set() and lane.running == 1 and lane.waiting == 1
    assert refusal(lane, "A") == OWN_BUSY
    other = Holder(lane, "B")  # another visitor takes the free place past A's waiting request
    assert other.inside.wait(5)
    first.done()
    assert second.inside.wait(5)
    for holder in (second, other):
        holder.done()


def test_a_request_that_waits_too_long_is_refused_and_leaves_the_line():
    lane = HeavyLane(lambda: 1, wait_seconds=0.2)
    first = Holder(lane, "A")
    assert first.inside.wait(5)
    assert refusal(lane, "B") == BUSY
    assert lane.waiting == 0
    first.done()


def test_a_request_calling_another_keeps_its_place():
    lane = HeavyLane(lambda: 1, wait_seconds=0.2)
    with lane.turn("A"), lane.turn("A"):  # a page export drawing its view: no second place
        assert lane.running == 1
    assert lane.running == 0


def test_the_host_settings_and_the_slots(monkeypatch):
    assert Limits.from_env(gpu=False).max_heavy_requests == 1
    assert Limits.from_env(gpu=True).max_heavy_requests == 2
    assert Limits.from_env(gpu=False).heavy_gflops == 4
    monkeypatch.setenv(ENV_MAX_HEAVY_REQUESTS, "3")
    assert heavy_lane.slots(4) == 4 + 6  # every request the lane holds, and 4 for the others


def imported_mlm(tokenizer, **shape) -> registry.LoadedModel:
    config = RobertaConfig(vocab_size=tokenizer.vocab_size, **shape)
    return registry.LoadedModel("Imported: big", "mlm", RobertaForMaskedLM(config).eval(),
                                tokenizer, "a test model")


def test_a_model_is_large_by_its_cost_and_the_hosts_own_never_are(tiny_assets):
    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "mlm")
    small = imported_mlm(tokenizer, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=66)
    cost = inference_cost(small.model.config, "mlm").window_gflops
    assert not heavy_lane.is_heavy(small, heavy_gflops=cost * 1.01)
    assert heavy_lane.is_heavy(small, heavy_gflops=cost * 0.99)
    assert not heavy_lane.is_heavy(registry.embedded("mlm"), heavy_gflops=0)
    assert not heavy_lane.is_heavy(registry.structured_start(), heavy_gflops=0)
    # The worst accepted import is large at the defaults; the embedded shape's copy is not.
    worst = RobertaConfig(vocab_size=8192, hidden_size=64, num_hidden_layers=48,
                          num_attention_heads=4, intermediate_size=256,
                          max_position_embeddings=1026)
    assert inference_cost(worst, "mlm").window_gflops > Limits.from_env(gpu=False).heavy_gflops


@pytest.fixture
def heavy_session(tiny_assets, monkeypatch):
    """A session holding an imported masked LM that counts as large (the threshold lowered)."""
    monkeypatch.setenv(ENV_HEAVY_GFLOPS, "0.000001")
    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "mlm")
    torch.manual_seed(0)
    session: dict = {}
    registry.add(session, imported_mlm(tokenizer, hidden_size=16, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=32,
                                       max_position_embeddings=66))
    return session


def test_the_tabs_refuse_a_large_model_plainly_while_the_lane_is_full(heavy_session,
                                                                        monkeypatch):
    from roberta.ui.attention_tab import show_head
    from roberta.ui.fill_mask_tab import predict
    from roberta.ui.lens_views import export_neuron_view, show_logit_lens
    from roberta.ui.side_by_side import compare_fill_mask

    lane = HeavyLane(lambda: 1, wait_seconds=0.1)
    monkeypatch.setattr(heavy_lane, "LANE", lane)
    text = "The food was <mask>."
    others = [Holder(lane, "another visitor"), Holder(lane, "a third")]
    assert others[0].inside.wait(5)
    calls = [lambda: predict(text, "Imported: big", 5, heavy_session),
             lambda: show_logit_lens(text, "Imported: big", 1, heavy_session),
             lambda: show_head(text, "Imported: big", 1, 1, [], heavy_session),
             lambda: compare_fill_mask(text, "Embedded masked LM", "Imported: big", 5,
                                       heavy_session)]
    for call in calls:
        with pytest.raises(gr.Error, match="busy with large models"):
            call()
    # The host's own model answers meanwhile, in its own slots.
    assert predict(text, "Embedded masked LM", 5, heavy_session)[0].shape[0] == 5
    for holder in others:
        holder.done()
    assert predict(text, "Imported: big", 5, heavy_session)[0].shape[0] == 5
    # A page export draws its view inside its own turn.
    assert export_neuron_view(text, "Imported: big", 1, 1, 1, heavy_session).endswith(".html")
    assert lane.running == lane.waiting == 0


def test_the_model_endpoints_have_room_for_the_lane(tiny_assets):
    from roberta.ui.app import build_app

    demo = build_app()
    limits = {fn.api_name: fn.concurrency_limit for fn in demo.fns.values() if fn.api_name}
    extra = 2 * Limits.from_env().max_heavy_requests
    for api in ("fill_mask", "logit_lens", "classify", "fill_mask_compare",
                "classify_compare"):
        assert limits[api] == 4 + extra, api
    for api in ("attention", "attention_head", "attention_pages", "neuron_view"):
        assert limits[api] == 2 + extra, api


def test_a_request_in_the_lane_runs_at_a_lower_priority_with_the_callers_context():
    import contextvars
    import os

    lane = HeavyLane(lambda: 1)
    request = contextvars.ContextVar("request")
    request.set("the visitor's")

    def where():
        me = threading.get_native_id()
        return me, os.getpriority(os.PRIO_PROCESS, me), request.get(), lane.inside()

    here = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    with lane.turn("A"):
        thread, priority, seen, inside = lane.run(where)
    assert thread != threading.get_native_id()
    assert priority == min(19, here + heavy_lane.LOWER_PRIORITY)  # this thread's stays
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == here
    assert seen == "the visitor's" and inside
