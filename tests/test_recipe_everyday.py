"""The recipe's phase 2 (roberta/recipe_everyday.py) without its data: moving a pretrained model
to a new vocabulary, and the pool that keeps phase 1's held-out documents held out."""

import pytest
import torch
import transformers

from roberta import RobertaConfig, RobertaForMaskedLM
from roberta import recipe_everyday as phase_two
from roberta.init import structured_init_, transfer_vocabulary
from roberta.recipe_everyday import (
    EVERYDAY_GROUP,
    PretrainingPool,
    everyday_share,
    packed_pool,
    phase_two_pool,
    phase_two_start,
)
from roberta.recipe_settings import BundledRecipe
from roberta.tokenizer import RobertaTokenizer

OLD_TEXT = ["the cat sat on the mat and the dog sat on the rug"] * 40
NEW_TEXT = OLD_TEXT + ["take an umbrella because it might rain today"] * 40


@pytest.fixture(scope="module")
def tokenizers():
    return (RobertaTokenizer.train(OLD_TEXT, vocab_size=300),
            RobertaTokenizer.train(NEW_TEXT, vocab_size=330))


@pytest.fixture(scope="module")
def model(tokenizers):
    torch.manual_seed(0)
    m = RobertaForMaskedLM(RobertaConfig.preset("micro", vocab_size=tokenizers[0].vocab_size))
    structured_init_(m)
    return m.eval()


def test_new_tokens_start_as_the_mean_of_their_old_pieces(model, tokenizers):
    old, new = tokenizers
    moved = transfer_vocabulary(model, old, new).eval()
    rows_old = model.roberta.embeddings.word_embeddings.weight
    rows_new = moved.roberta.embeddings.word_embeddings.weight
    old_vocab, new_vocab = old.backend.get_vocab(), new.backend.get_vocab()
    assert moved.config.vocab_size == len(new_vocab) > len(old_vocab)
    umbrella = new_vocab["Ġumbrella"]
    pieces = old.backend.encode(" umbrella", add_special_tokens=False).ids  # the old split
    assert len(pieces) > 1 and "Ġumbrella" not in old_vocab
    assert torch.allclose(rows_new[umbrella], rows_old[pieces].mean(0))
    assert torch.isclose(moved.lm_head.bias[umbrella], model.lm_head.bias[pieces].mean())
    for token in ("<s>", "<mask>", "Ġcat", "Ġthe"):  # shared tokens keep their own row
        assert torch.equal(rows_new[new_vocab[token]], rows_old[old_vocab[token]])
    # The decoder stays tied, and every other tensor is phase 1's.
    assert moved.lm_head.decoder.weight.data_ptr() == rows_new.data_ptr()
    theirs = model.state_dict()
    for name, tensor in moved.state_dict().items():
        if "word_embeddings" not in name and "decoder" not in name and name != "lm_head.bias":
            assert torch.equal(tensor, theirs[name]), name
    # The structured start's position dims were 0 for every word and stay 0.
    assert rows_new[:, :32].abs().max() == 0 and moved.config.extra == model.config.extra


def test_a_sentence_both_vocabularies_split_alike_is_read_alike(model, tokenizers, tmp_path):
    old, new = tokenizers
    moved = transfer_vocabulary(model, old, new).eval()
    text = "the cat sat on the mat"
    ids_old = torch.tensor([old.backend.encode(text).ids])
    ids_new = torch.tensor([new.backend.encode(text).ids])
    assert [old.convert_ids_to_tokens(i) for i in ids_old[0].tolist()] == \
        [new.convert_ids_to_tokens(i) for i in ids_new[0].tolist()]
    with torch.no_grad():
        hidden_old = model.roberta(ids_old).last_hidden_state
        hidden_new = moved.roberta(ids_new).last_hidden_state
    assert torch.allclose(hidden_old, hidden_new, atol=1e-6)
    # A standard checkpoint: transformers reads the moved model to the same logits.
    moved.save_pretrained(tmp_path)
    new.save_pretrained(tmp_path)
    theirs = transformers.RobertaForMaskedLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(theirs(ids_new).logits, moved(ids_new).logits, atol=1e-5)


def phase_one(train, held, copies=4):
    return PretrainingPool({"old": train + held}, {"old": copies}, (), list(train),
                           dict.fromkeys(train, copies), {"old held out": list(held)})


def test_phase_two_keeps_phase_one_held_out_and_splits_the_new_text_apart(monkeypatch):
    old_train = [f"old training document {i} " * 5 for i in range(50)]
    old_held = [f"old held out document {i} " * 5 for i in range(3)]
    everyday = [f"I drink a cup of coffee on day {i} " * 3 for i in range(200)]
    # A document phase 1 had already (held out there) must not come back as everyday text.
    monkeypatch.setattr(phase_two, "everyday_sources",
                        lambda: {"chat": everyday + [old_held[0]]})
    recipe = BundledRecipe(everyday_repeat=3)
    pool = phase_two_pool(recipe, phase_one(old_train, old_held))
    assert pool.held_out["old held out"] == old_held  # as phase 1 held them out
    new_held = pool.held_out[EVERYDAY_GROUP]
    assert 1 <= len(new_held) < 10 and set(new_held) <= set(everyday)
    assert not set(pool.train_docs) & {*old_held, *new_held}  # nothing held out is trained on
    assert set(pool.train_docs) == set(old_train) | (set(everyday) - set(new_held))
    assert {pool.copies[d] for d in old_train} == {4}
    assert {pool.copies[d] for d in everyday if d not in new_held} == {3}
    assert pool.sources["chat"] == everyday and pool.everyday == ("chat",)
    words_new = 3 * sum(len(d.split()) for d in everyday if d not in new_held)
    words_old = 4 * sum(len(d.split()) for d in old_train)
    assert everyday_share(pool) == pytest.approx(words_new / (words_new + words_old))


def test_the_pool_packs_whole_rounds_and_the_start_keeps_or_moves_the_vocabulary(
        monkeypatch, model, tokenizers):
    old, _ = tokenizers
    monkeypatch.setattr(phase_two, "everyday_sources", lambda: {"chat": NEW_TEXT[40:41] + [
        f"take an umbrella on day {i} because it might rain" for i in range(60)]})
    pool = phase_two_pool(BundledRecipe(everyday_repeat=2),
                          phase_one(["the cat sat on the mat"] * 1, ["the dog sat on the rug"], 1))
    train, held = packed_pool(pool, old, 16)
    # Every training document's tokens, times its copies (no document twice in one round).
    expected = sum(len(old.backend.encode(d, add_special_tokens=False).ids) * pool.copies[d]
                   for d in pool.train_docs)
    words = train.input_ids[train.attention_mask.bool()]
    assert int((words >= len(old.special_ids)).sum()) == expected
    assert set(held) == {"old held out", EVERYDAY_GROUP}
    kept, same = phase_two_start(model, old, pool, BundledRecipe(everyday_vocab_size=None))
    assert kept is model and same is old
    moved, new = phase_two_start(model, old, pool, BundledRecipe(everyday_vocab_size=320))
    assert moved.config.vocab_size == new.vocab_size and "Ġumbrella" in new.backend.get_vocab()
