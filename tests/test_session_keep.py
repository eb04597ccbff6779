"""A reload keeps a finished run's model (roberta/ui/session_keep.py): a session that ends with
models is kept for its browser's key for a while, then let go; without a key, at once."""

from __future__ import annotations

import time

import pytest

from roberta.config import RobertaConfig
from roberta.model import RobertaForMaskedLM
from roberta.tokenizer import RobertaTokenizer
from roberta.ui import registry, session_keep

KEY = "k" * 24


@pytest.fixture
def loaded(tiny_assets):
    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "mlm")
    model = RobertaForMaskedLM(RobertaConfig.preset("nano", vocab_size=tokenizer.vocab_size,
                                                    max_position_embeddings=66))
    return lambda name: registry.LoadedModel(name, "mlm", model, tokenizer, "a test model")


def held(name: str) -> bool:
    return any(m.name == name for m in registry.held_models())


def test_a_reloaded_page_gets_its_models_back(loaded):
    before = {}
    key, before = session_keep.take_back("", before)  # the first visit: a new key
    assert len(key) >= 16 and before[session_keep.BROWSER_KEY] == key
    registry.add(before, loaded("My model 1 (micro, 60 steps)"))
    assert session_keep.release_or_keep(before) == 0  # the page went away: kept
    assert held("My model 1 (micro, 60 steps)")
    again, after = session_keep.take_back(key, {})  # the same browser loads the page again
    assert again == key
    assert "My model 1 (micro, 60 steps)" in registry.choices(after, "mlm")
    assert registry.choices(before, "mlm") == registry.choices({}, "mlm")  # moved, not copied
    # another browser gets nothing of it
    _, stranger = session_keep.take_back("s" * 24, {})
    assert "My model 1 (micro, 60 steps)" not in registry.choices(stranger, "mlm")
    registry.release(after)
    assert not held("My model 1 (micro, 60 steps)")


def test_kept_models_are_let_go_after_a_while(loaded, monkeypatch):
    monkeypatch.setattr(session_keep, "KEEP_SECONDS", 0.1)
    session = {session_keep.BROWSER_KEY: "t" * 24}
    registry.add(session, loaded("Left behind"))
    session_keep.release_or_keep(session)
    for _ in range(50):
        if not held("Left behind"):
            break
        time.sleep(0.05)
    assert not held("Left behind")
    _, later = session_keep.take_back("t" * 24, {})
    assert "Left behind" not in registry.choices(later, "mlm")


def test_a_session_without_a_browser_key_is_let_go_at_once(loaded):
    session: dict = {}
    registry.add(session, loaded("API client's"))  # gradio_client: no browser storage
    assert session_keep.release_or_keep(session) == 1
    assert not held("API client's")


def test_a_key_that_is_not_ours_is_replaced():
    for odd in (None, 3, "short", "x" * 500):
        key, _ = session_keep.take_back(odd, {})
        assert isinstance(key, str) and 16 <= len(key) <= 64 and key != odd


def test_a_session_kept_twice_is_kept_once(loaded):
    """Gradio's state deletion may run a session's delete_callback twice (session_end retries
    it when a last event still writes the state): the second call changes nothing."""
    session = {session_keep.BROWSER_KEY: "w" * 24}
    registry.add(session, loaded("Kept once"))
    assert session_keep.release_or_keep(session) == 0
    assert session_keep.release_or_keep(session) == 0
    assert len(session_keep._kept["w" * 24]) == 1
    _, later = session_keep.take_back("w" * 24, {})
    assert registry.choices(later, "mlm").count("Kept once") == 1
    registry.release(later)


def test_ending_a_session_survives_a_state_written_meanwhile():
    """The session's last event may still write a state while the session ends: every state
    there when it ended is dropped with its delete_callback run once, and nothing fails."""
    import threading
    from types import SimpleNamespace

    from roberta.ui.session_end import drop_session

    calls = []
    state_data = {}

    def late_write(value):  # a run's generator stopping writes another state meanwhile
        calls.append(value)
        state_data[99] = "late"

    blocks = {1: SimpleNamespace(delete_callback=late_write),
              2: SimpleNamespace(delete_callback=calls.append)}
    state_data.update({1: "run control", 2: "session"})
    session = SimpleNamespace(state_data=state_data, blocks_config=SimpleNamespace(blocks=blocks))
    holder = SimpleNamespace(session_data={"abc": session}, time_last_used={"abc": 0},
                             lock=threading.Lock())
    drop_session(holder, "abc")
    assert calls == ["run control", "session"]
    assert "abc" not in holder.session_data and "abc" not in holder.time_last_used
