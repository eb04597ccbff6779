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


def test_ending_a_session_tries_again_while_its_state_still_changes():
    from roberta.ui.session_end import drop_state

    class Holder:  # Gradio's state holder, whose first deletion meets a state being written
        calls = 0

        def delete_state(self, session_hash):
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("dictionary changed size during iteration")

    holder = Holder()
    drop_state(holder, "abc")
    assert holder.calls == 2

    class Broken:
        def delete_state(self, session_hash):
            raise RuntimeError("dictionary changed size during iteration")

    with pytest.raises(RuntimeError):
        drop_state(Broken(), "abc", tries=3)
