"""The structured start (roberta/init.py): the circuit it builds, a standard checkpoint,
determinism, the position hold, and that it leaves the masked-LM plateau where RoBERTa's
random init does not."""

import json
import math

import pytest
import torch
import transformers

from roberta import RobertaConfig, RobertaForMaskedLM
from roberta.data import bundled_pretraining_corpus
from roberta.init import StructuredInit, initialise_, position_dims, structured_init_
from roberta.tokenizer import RobertaTokenizer
from roberta.training.config import PretrainConfig
from roberta.training.pretraining import PositionHold, Pretrainer, prepare_pretraining_data


def structured_model(preset="micro", seed=0, spec=None, **overrides):
    torch.manual_seed(seed)
    model = RobertaForMaskedLM(RobertaConfig.preset(preset, **{"vocab_size": 1000, **overrides}))
    structured_init_(model, spec)
    return model


def random_ids(batch=2, length=40, vocab=1000, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (batch, length), generator=g)
    ids[:, 0], ids[:, -1] = 0, 2
    return ids


@pytest.mark.parametrize("preset", ["micro", "tiny", "mini"])
def test_layer_zero_heads_attend_to_their_neighbours_at_step_zero(preset):
    model = structured_model(preset).eval()
    with torch.no_grad():
        probs = model(random_ids(), output_attentions=True).attentions[0]  # (B, nh, T, T)
    left, right = probs[:, 0], probs[:, 1]
    # Row i of head 0 puts its weight on i - 1; of head 1 on i + 1 (the first and last row
    # have no such neighbour).
    assert left.diagonal(offset=-1, dim1=-2, dim2=-1).min() > 0.9
    assert right.diagonal(offset=1, dim1=-2, dim2=-1).min() > 0.9
    # The other heads (and RoBERTa's init) spread their attention: no position gets most of it.
    torch.manual_seed(0)
    plain = RobertaForMaskedLM(model.config).eval()
    with torch.no_grad():
        spread = plain(random_ids(), output_attentions=True).attentions[0]
    assert spread.max() < 0.2


def test_heads_copy_the_neighbours_token_into_each_position():
    model = structured_model().eval()
    ids = random_ids()
    swapped = ids.clone()
    swapped[:, 9] = (ids[:, 9] + 7) % 990 + 5  # another token at position 9
    with torch.no_grad():
        a = model(ids, output_hidden_states=True).hidden_states[1]  # after layer 0
        b = model(swapped, output_hidden_states=True).hidden_states[1]
    change = (a - b).norm(dim=-1)[0]  # (T,)
    # Position 9's token now reaches positions 8 and 10 (its neighbours) and itself, and
    # hardly anywhere else.
    near = change[[8, 9, 10]]
    far = torch.cat([change[:7], change[12:]])
    assert near.min() > 10 * far.max()


def test_the_checkpoint_is_a_standard_roberta_that_transformers_loads(tmp_path):
    model = structured_model().eval()
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["structured_init"]["position_dims"] == 32  # how it started, on the record
    theirs = transformers.AutoModelForMaskedLM.from_pretrained(
        tmp_path, attn_implementation="eager").eval()
    ids = random_ids()
    with torch.no_grad():
        ours_out = model(ids, output_attentions=True)
        theirs_out = theirs(input_ids=ids, output_attentions=True)
    assert (ours_out.logits - theirs_out.logits).abs().max() < 1e-4
    assert (ours_out.attentions[0] - theirs_out.attentions[0]).abs().max() < 1e-5
    again = RobertaForMaskedLM.from_pretrained(tmp_path)
    assert position_dims(again.config) == 32


def test_deterministic_per_seed_and_the_circuit_is_the_same_for_every_seed():
    a, b, c = structured_model(seed=3), structured_model(seed=3), structured_model(seed=4)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    # Another training seed: the circuit is the same, the rest of the init is not.
    pos = "roberta.embeddings.position_embeddings.weight"
    query = "roberta.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(a.state_dict()[pos][:, :32], c.state_dict()[pos][:, :32])
    qa, qc = a.state_dict()[query][:32], c.state_dict()[query][:32]
    # The same rotations; only the scale, calibrated on each model's own embeddings, differs.
    assert torch.allclose(qa / qa.norm(), qc / qc.norm(), atol=1e-6)
    assert qa.norm() / qc.norm() == pytest.approx(1.0, abs=0.1)
    ffn = "roberta.encoder.layer.1.intermediate.dense.weight"
    assert not torch.equal(a.state_dict()[ffn], c.state_dict()[ffn])


def test_more_layers_and_offsets_and_impossible_shapes():
    spec = StructuredInit(offsets=((-1, 1), (-2, 2, -3)))
    model = structured_model("tiny", spec=spec).eval()
    with torch.no_grad():
        probs = model(random_ids(), output_attentions=True).attentions[1][0]  # layer 1
    assert probs[0].diagonal(offset=-2).mean() > 0.8
    assert probs[2].diagonal(offset=-3).mean() > 0.8
    with pytest.raises(ValueError, match="layers"):
        structured_model("micro", spec=StructuredInit(offsets=((-1,), (1,), (2,))))
    with pytest.raises(ValueError, match="heads"):
        structured_model("micro", spec=StructuredInit(offsets=((-1, 1, 2),)))
    with pytest.raises(ValueError, match="offset of 0"):
        structured_model("micro", spec=StructuredInit(offsets=((0, 1),)))
    with pytest.raises(ValueError, match="unknown initialisation"):
        initialise_(RobertaForMaskedLM(RobertaConfig.preset("nano")), "xavier")
    # Narrow heads take fewer position dims rather than failing.
    nano = structured_model("nano")
    assert position_dims(nano.config) == 16


def test_position_hold_keeps_position_fixed_then_releases_it():
    model = structured_model("nano")
    before_pos = model.roberta.embeddings.position_embeddings.weight.detach().clone()
    words = model.roberta.embeddings.word_embeddings.weight
    hold = PositionHold(model, steps=3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids = random_ids(vocab=1000)
    for step in range(6):
        hold.update(step)
        model(ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step == 2:  # held for steps 0, 1, 2
            assert torch.equal(model.roberta.embeddings.position_embeddings.weight, before_pos)
            assert words[:, :16].abs().max() == 0
            assert words[:, 16:].abs().max() > 0
    assert not torch.equal(model.roberta.embeddings.position_embeddings.weight, before_pos)
    assert words[:, :16].abs().max() > 0


def test_a_finished_run_leaves_the_model_fully_trainable():
    tokenizer = RobertaTokenizer.train(["the cat sat on the mat"] * 40 + ["a dog ran"] * 40,
                                       vocab_size=300, min_frequency=1)
    data = prepare_pretraining_data(["the cat sat on the mat. " * 20, "a dog ran. " * 40] * 10,
                                    tokenizer, 32, 0.2, seed=0)
    model = structured_model("nano", vocab_size=tokenizer.vocab_size,
                             max_position_embeddings=34)
    config = PretrainConfig(max_steps=3, batch_size=2, eval_every=3, seq_length=32,
                            precision="fp32", device="cpu", eval_sequences=2,
                            probes=("the <mask> sat",), hold_positions_steps=-1)
    trainer = Pretrainer(model, tokenizer, data, config)
    assert not model.roberta.embeddings.position_embeddings.weight.requires_grad  # held
    list(trainer.run())
    assert all(p.requires_grad for p in model.parameters())
    model(data.train.input_ids[:2], labels=data.train.input_ids[:2]).loss.backward()
    assert model.roberta.embeddings.word_embeddings.weight.grad[:, :16].abs().max() > 0


def test_hold_is_refused_when_impossible():
    with pytest.raises(ValueError, match="hold_positions_steps"):
        PretrainConfig(hold_positions_steps=-2).validate()


# --- the plateau, on real text ----------------------------------------------------------

@pytest.fixture(scope="module")
def real_text():
    """A slice of the bundled corpus (BBC News, fine-food reviews), its BPE and packed data."""
    texts = bundled_pretraining_corpus()[:900]
    tokenizer = RobertaTokenizer.train(texts, vocab_size=1024)
    return tokenizer, prepare_pretraining_data(texts, tokenizer, 128, 0.05, seed=0)


def mask_accuracy_after(init: str, real_text, steps: int = 400) -> tuple[float, float]:
    tokenizer, data = real_text
    torch.manual_seed(0)
    model = RobertaForMaskedLM(RobertaConfig.preset(
        "micro", vocab_size=tokenizer.vocab_size, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0))
    initialise_(model, init)
    config = PretrainConfig(max_steps=steps, batch_size=8, learning_rate=2e-3, warmup_steps=40,
                            eval_every=steps, seq_length=128, precision="fp32", device="cpu",
                            eval_sequences=128, probes=("The <mask> was good.",),
                            hold_positions_steps=-1 if init == "structured" else 0)
    trainer = Pretrainer(model, tokenizer, data, config)
    final = [e for e in trainer.run() if e.kind == "eval"][-1].metrics
    return final["val_mask_accuracy"], trainer.unigram_baseline()["accuracy"]


@pytest.mark.slow  # two 400-step runs: about a minute on one core
def test_structured_start_leaves_the_plateau_where_random_init_does_not(real_text):
    structured, unigram = mask_accuracy_after("structured", real_text)
    random_init, _ = mask_accuracy_after("roberta", real_text)
    assert random_init < unigram + 0.02  # still guessing one frequent token at <mask>
    assert structured > unigram + 0.04
    assert structured > random_init + 0.04
    assert math.isfinite(structured)
