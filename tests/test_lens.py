"""The logit lens at <mask> and the neuron view (roberta/lens.py), against the model's own
outputs and against transformers' RoBERTa (the independent reference)."""

from __future__ import annotations

import pytest
import torch
import transformers
from test_model import hf_config, ragged_batch, randomise_

from roberta import RobertaForMaskedLM, RobertaForSequenceClassification
from roberta.lens import head_steps, logit_lens, neuron_view
from roberta.tokenizer import RobertaTokenizer

TEXT = "the movie was <mask> and the food was good ."


@pytest.fixture(scope="module")
def tokenizer(tiny_assets) -> RobertaTokenizer:
    return RobertaTokenizer.from_pretrained(tiny_assets / "mlm")


@pytest.fixture(scope="module")
def imported(tokenizer, tmp_path_factory):
    """A transformers RobertaForMaskedLM (weights moved off their init) saved with
    save_pretrained and read back by this library, as an import reads a checkpoint."""
    torch.manual_seed(0)
    theirs = randomise_(transformers.RobertaForMaskedLM(hf_config(
        vocab_size=tokenizer.vocab_size, max_position_embeddings=66)).eval(), seed=3)
    directory = tmp_path_factory.mktemp("hf")
    theirs.save_pretrained(directory)
    return theirs, RobertaForMaskedLM.from_pretrained(directory).eval()


def test_the_last_layers_lens_is_the_models_own_prediction(tiny_assets, tokenizer):
    model = randomise_(RobertaForMaskedLM.from_pretrained(tiny_assets / "mlm").eval())
    lens = logit_lens(model, tokenizer, TEXT)
    ids = torch.tensor([tokenizer.encode(TEXT).ids])
    with torch.inference_mode():
        own = model(ids).logits[0, lens.mask_position].softmax(-1)
    last = lens.layers[-1]
    assert [g.layer for g in lens.layers] == list(range(model.config.num_hidden_layers + 1))
    assert last.answer_rank == 1 and last.tokens[0] == lens.answer
    assert last.probabilities == pytest.approx(own.topk(5).values.tolist(), abs=1e-6)
    assert last.answer_probability == pytest.approx(own.max().item(), abs=1e-6)
    assert lens.tokens[lens.mask_position] == "<mask>"
    for guess in lens.layers:  # ranks agree with the probabilities shown
        assert (guess.answer_rank <= 5) == (lens.answer in guess.tokens)


def test_the_lens_of_an_imported_transformers_checkpoint_matches_transformers(
        tokenizer, imported):
    theirs, ours = imported
    lens = logit_lens(ours, tokenizer, TEXT, top_k=7)
    ids = torch.tensor([tokenizer.encode(TEXT).ids])
    with torch.inference_mode():
        hidden = theirs(ids, output_hidden_states=True).hidden_states  # L+1 x (1, T, C)
        expected = torch.stack([theirs.lm_head(h[0, lens.mask_position]).softmax(-1)
                                for h in hidden])
    for guess, probs in zip(lens.layers, expected, strict=True):
        assert guess.probabilities == pytest.approx(probs.topk(7).values.tolist(), abs=1e-6)


def test_the_lens_reads_a_classifiers_encoder_with_a_masked_lms_head(tiny_assets, tokenizer):
    mlm = randomise_(RobertaForMaskedLM.from_pretrained(tiny_assets / "mlm").eval())
    classifier = RobertaForSequenceClassification(mlm.config).eval()
    classifier.roberta.load_state_dict(mlm.roberta.state_dict())  # fine-tuning's start
    with pytest.raises(ValueError, match="no masked-LM head"):
        logit_lens(classifier, tokenizer, TEXT)
    same = logit_lens(classifier, tokenizer, TEXT, head=mlm.lm_head)
    assert same == logit_lens(mlm, tokenizer, TEXT)
    with torch.no_grad():  # a fine-tuned encoder's last layer moves: so does its lens
        classifier.roberta.encoder.layer[-1].output.dense.weight.mul_(3)
    moved = logit_lens(classifier, tokenizer, TEXT, head=mlm.lm_head)
    tops = [[(g.tokens, g.probabilities) for g in lens.layers] for lens in (moved, same)]
    assert tops[0][:-1] == tops[1][:-1] and tops[0][-1] != tops[1][-1]


def test_the_lens_picks_a_mask_and_refuses_plainly(tiny_assets, tokenizer):
    model = RobertaForMaskedLM.from_pretrained(tiny_assets / "mlm").eval()
    two = "the <mask> was good and the <mask> was bad ."
    first, second = (logit_lens(model, tokenizer, two, mask_index=i) for i in (0, 1))
    assert first.mask_position < second.mask_position
    with pytest.raises(ValueError, match="has no <mask>"):
        logit_lens(model, tokenizer, "no mask here")
    with pytest.raises(ValueError, match="mask_index must be 0 to 1, got 2"):
        logit_lens(model, tokenizer, two, mask_index=2)
    with pytest.raises(ValueError, match="top_k must be between"):
        logit_lens(model, tokenizer, two, top_k=0)


def test_the_neuron_view_recomputes_the_models_attention_with_padding(tiny_assets):
    model = randomise_(RobertaForMaskedLM.from_pretrained(tiny_assets / "mlm").eval())
    ids, mask = ragged_batch((5, 9, 17), vocab=model.config.vocab_size)
    with torch.inference_mode():
        attentions = model(ids, attention_mask=mask, output_attentions=True).attentions
    L, nh = model.config.num_hidden_layers, model.config.num_attention_heads
    for layer in range(1, L + 1):
        for head in range(1, nh + 1):
            steps = head_steps(model, ids, mask, layer, head)
            real = mask.bool()
            diff = (steps["weights"] - attentions[layer - 1][:, head - 1])[real].abs().max()
            assert diff < 1e-6, (layer, head, float(diff))
            assert torch.allclose(steps["products"].sum(-1), steps["scores"])
            assert steps["weights"][0, :, 5:].abs().max() == 0  # padding is never a key
    one = head_steps(model, ids, mask, L, nh, query_index=3)  # one query: T x hs products
    assert one["products"].shape[1] == 1
    assert torch.allclose(one["products"][:, 0], steps["products"][:, 3])
    assert torch.allclose(one["weights"][:, 0], steps["weights"][:, 3])


def test_the_neuron_view_of_an_imported_checkpoint_matches_transformers(tokenizer, imported):
    theirs, ours = imported
    view = neuron_view(ours, tokenizer, TEXT, layer=2, head=1, query_index=3)
    ids = torch.tensor([tokenizer.encode(TEXT).ids])
    with torch.inference_mode():
        reference = theirs(ids, output_attentions=True).attentions[1][0, 0, 3]
    assert (view.weights - reference).abs().max() < 1e-6
    assert view.scale == pytest.approx(view.query.numel() ** -0.5)
    assert torch.allclose(view.products, view.query * view.keys)
    assert view.tokens[view.query_index] == ours_token(tokenizer, TEXT, 3)


def ours_token(tokenizer, text, index):
    return tokenizer.readable_tokens(tokenizer.encode(text).tokens)[index]


def test_the_neuron_view_refuses_out_of_range_plainly(tiny_assets, tokenizer):
    model = RobertaForMaskedLM.from_pretrained(tiny_assets / "mlm").eval()
    L, nh = model.config.num_hidden_layers, model.config.num_attention_heads
    with pytest.raises(ValueError, match=f"layer must be between 1 and {L}, got {L + 1}"):
        neuron_view(model, tokenizer, TEXT, L + 1, 1, 0)
    with pytest.raises(ValueError, match=f"head must be between 1 and {nh}, got 0"):
        neuron_view(model, tokenizer, TEXT, 1, 0, 0)
    n = len(tokenizer.encode(TEXT).ids)
    with pytest.raises(ValueError, match=f"the query token must be 0 to {n - 1}, got {n}"):
        neuron_view(model, tokenizer, TEXT, 1, 1, n)
