"""Parity with transformers' RoBERTa (the independent reference), and the seed tutorial's bugs."""

import math

import pytest
import torch
import transformers

from roberta import RobertaConfig, RobertaForMaskedLM, RobertaForSequenceClassification
from roberta.model import RobertaModel, create_position_ids, dropout

ATOL = 1e-5
PARITY_SHAPE = dict(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=256, max_position_embeddings=40)


def hf_config(**overrides):
    shape = {**PARITY_SHAPE, **overrides}
    return transformers.RobertaConfig(**shape, layer_norm_eps=1e-5, pad_token_id=1,
                                      bos_token_id=0, eos_token_id=2, type_vocab_size=1,
                                      attn_implementation="eager")


def ragged_batch(lengths=(5, 9, 17), vocab=1000, seed=0):
    """<s> random tokens </s>, padded with <pad> to the longest."""
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    ids = torch.ones(len(lengths), T, dtype=torch.long)
    mask = torch.zeros(len(lengths), T, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(5, vocab, (n,), generator=g)
        ids[i, 0], ids[i, n - 1] = 0, 2
        mask[i, :n] = 1
    return ids, mask


def randomise_(model, seed=0):
    """Move every parameter away from its init — biases off 0, LayerNorm weights off 1,
    position and token-type rows perturbed — so that a miswired bias or LayerNorm shows in a
    comparison (a fresh model's are all 0 and 1, which any wiring reproduces)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * (0.1 if p.ndim < 2 else 0.02))
    return model


def assert_close(ours, theirs, where):
    diff = (ours - theirs).abs().max().item()
    assert diff < ATOL, f"{where}: max abs difference {diff:.2e}"


@pytest.mark.parametrize("task", ["mlm", "cls"])
def test_matches_transformers_on_ragged_padded_batch(task):
    torch.manual_seed(0)
    if task == "mlm":
        theirs = transformers.RobertaForMaskedLM(hf_config()).eval()
        ours = RobertaForMaskedLM(RobertaConfig(**PARITY_SHAPE)).eval()
    else:
        theirs = transformers.RobertaForSequenceClassification(hf_config(num_labels=3)).eval()
        ours = RobertaForSequenceClassification(RobertaConfig(**PARITY_SHAPE, num_labels=3)).eval()
    randomise_(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)

    ids, mask = ragged_batch()
    with torch.no_grad():
        a = ours(ids, attention_mask=mask, output_attentions=True, output_hidden_states=True)
        b = theirs(input_ids=ids, attention_mask=mask, output_attentions=True,
                   output_hidden_states=True)
    real = mask.bool()
    # Padded positions are garbage in both implementations; compare real tokens only.
    if task == "mlm":
        assert_close(a.logits[real], b.logits[real], "logits")
    else:
        assert_close(a.logits, b.logits, "logits")
    assert len(a.hidden_states) == len(b.hidden_states) == 3
    for i, (x, y) in enumerate(zip(a.hidden_states, b.hidden_states, strict=True)):
        assert_close(x[real], y[real], f"hidden state {i}")
    for i, (x, y) in enumerate(zip(a.attentions, b.attentions, strict=True)):
        assert x.shape == (3, 4, 17, 17)
        assert_close(x * mask[:, None, :, None], y * mask[:, None, :, None], f"attention {i}")


def test_masked_lm_loss_matches_transformers_and_dense_loss():
    torch.manual_seed(1)
    theirs = randomise_(transformers.RobertaForMaskedLM(hf_config()).eval(), seed=1)
    ours = RobertaForMaskedLM(RobertaConfig(**PARITY_SHAPE)).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ids, mask = ragged_batch(seed=3)
    labels = torch.full_like(ids, -100)
    chosen = (torch.rand(ids.shape, generator=torch.Generator().manual_seed(4)) < 0.3) & mask.bool()
    chosen[0, 2] = True
    labels[chosen] = ids[chosen]
    with torch.no_grad():
        a = ours(ids, attention_mask=mask, labels=labels)
        b = theirs(input_ids=ids, attention_mask=mask, labels=labels)
        dense_logits = ours(ids, attention_mask=mask).logits
    assert abs(a.loss.item() - b.loss.item()) < 1e-6
    # Sparse prediction: logits only for the scored positions, in row-major order.
    assert a.logits.shape == (int(chosen.sum()), 1000)
    assert_close(a.logits, dense_logits[chosen], "sparse logits")
    dense_loss = torch.nn.functional.cross_entropy(dense_logits.view(-1, 1000), labels.view(-1))
    assert abs(a.loss.item() - dense_loss.item()) < 1e-6


def test_classification_loss_matches_transformers():
    torch.manual_seed(2)
    theirs = randomise_(transformers.RobertaForSequenceClassification(
        hf_config(num_labels=3)).eval(), seed=2)
    ours = RobertaForSequenceClassification(RobertaConfig(**PARITY_SHAPE, num_labels=3)).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ids, mask = ragged_batch(seed=5)
    labels = torch.tensor([0, 2, 1])
    with torch.no_grad():
        a = ours(ids, attention_mask=mask, labels=labels)
        b = theirs(input_ids=ids, attention_mask=mask, labels=labels)
        dense = ours(ids, attention_mask=mask, output_hidden_states=True)
    assert abs(a.loss.item() - b.loss.item()) < 1e-6
    # The last layer ran at <s> only (its output is not kept) and gives the full layer's logits.
    assert a.last_hidden_state is None and dense.last_hidden_state.shape == (3, 17, 64)
    assert_close(a.logits, b.logits, "logits")
    assert_close(a.logits, dense.logits, "sparse vs full last layer")


def test_state_dict_loads_into_transformers_strictly():
    torch.manual_seed(3)
    ours = randomise_(RobertaForMaskedLM(RobertaConfig(**PARITY_SHAPE)).eval(), seed=3)
    theirs = transformers.RobertaForMaskedLM(hf_config()).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    ids, mask = ragged_batch(seed=6)
    with torch.no_grad():
        assert_close(ours(ids, attention_mask=mask).logits,
                     theirs(input_ids=ids, attention_mask=mask).logits, "logits")
    assert set(ours.state_dict()) == set(theirs.state_dict())


def test_sdpa_and_explicit_attention_paths_agree():
    torch.manual_seed(4)
    model = RobertaForMaskedLM(RobertaConfig(**PARITY_SHAPE)).eval()
    ids, mask = ragged_batch(seed=7)
    with torch.no_grad():
        fast = model(ids, attention_mask=mask).logits
        explicit = model(ids, attention_mask=mask, output_attentions=True).logits
    assert_close(fast, explicit, "sdpa vs explicit")


def test_head_mask_matches_transformers_and_changes_predictions():
    torch.manual_seed(5)
    theirs = randomise_(transformers.RobertaForMaskedLM(hf_config()).eval(), seed=5)
    ours = RobertaForMaskedLM(RobertaConfig(**PARITY_SHAPE)).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ids, mask = ragged_batch(seed=8)
    head_mask = torch.ones(2, 4)
    head_mask[0, 1] = head_mask[1, 3] = 0
    with torch.no_grad():
        full = ours(ids, attention_mask=mask)
        cut = ours(ids, attention_mask=mask, head_mask=head_mask, output_attentions=True)
        cut_fast = ours(ids, attention_mask=mask, head_mask=head_mask)
    assert (cut.logits - full.logits).abs().max() > 1e-3
    assert_close(cut.logits, cut_fast.logits, "head mask, both attention paths")
    assert cut.attentions[0][:, 1].abs().max() == 0  # the switched-off head shows nothing
    # transformers 5 has no head_mask; its reference is the same model with that head's slice
    # of the value projection zeroed: the head then contributes nothing.
    hs = 16
    with torch.no_grad():
        for layer, head in [(0, 1), (1, 3)]:
            value = theirs.roberta.encoder.layer[layer].attention.self.value
            value.weight[head * hs:(head + 1) * hs] = 0
            value.bias[head * hs:(head + 1) * hs] = 0
        reference = theirs(input_ids=ids, attention_mask=mask).logits
    real = mask.bool()
    assert_close(cut.logits[real], reference[real], "head mask against transformers")
    with pytest.raises(ValueError, match="head_mask"):
        ours(ids, head_mask=torch.ones(3, 4))


# --- The seed tutorial's bugs, one regression test each ----------------------------------------

def test_attention_runs_over_the_sequence_not_the_batch():
    """The seed fed (B, T, C) to a seq-first nn.MultiheadAttention: examples attended to each
    other. Here an example's output must not depend on its batch neighbours."""
    torch.manual_seed(6)
    model = RobertaModel(RobertaConfig(**PARITY_SHAPE)).eval()
    ids, mask = ragged_batch(lengths=(9, 9, 9), seed=9)
    with torch.no_grad():
        together = model(ids, attention_mask=mask).last_hidden_state
        alone = model(ids[:1], attention_mask=mask[:1]).last_hidden_state
        other = ids.clone()
        other[1:] = torch.randint(5, 1000, other[1:].shape)
        changed_neighbours = model(other, attention_mask=mask).last_hidden_state
    assert_close(together[0], alone[0], "batch of 3 vs alone")
    assert_close(together[0], changed_neighbours[0], "different neighbours")


def test_padding_is_excluded_from_attention():
    torch.manual_seed(7)
    model = RobertaForMaskedLM(RobertaConfig(**PARITY_SHAPE)).eval()
    ids, mask = ragged_batch(lengths=(5, 17), seed=10)
    with torch.no_grad():
        padded = model(ids, attention_mask=mask, output_attentions=True)
        unpadded = model(ids[:1, :5]).logits
        # Change what sits in the padded slots: nothing on real tokens may move.
        junk = ids.clone()
        junk[0, 5:] = torch.randint(5, 1000, (12,))
        junk_out = model(junk, attention_mask=mask).logits
    assert_close(padded.logits[0, :5], unpadded[0], "padded vs unpadded")
    assert_close(padded.logits[0, :5], junk_out[0, :5], "junk in padding")
    for probs in padded.attentions:
        assert probs[0, :, :, 5:].abs().max() == 0  # no weight on padded keys


def test_position_ids_start_after_padding_idx():
    ids = torch.tensor([[0, 5, 6, 7, 2, 1, 1]])
    assert create_position_ids(ids, padding_idx=1).tolist() == [[2, 3, 4, 5, 6, 1, 1]]
    config = RobertaConfig(**{**PARITY_SHAPE, "max_position_embeddings": 10})
    assert config.max_sequence_length == 8  # 10 positions hold 8 tokens
    model = RobertaModel(config).eval()
    model(torch.full((1, 8), 5))
    with pytest.raises(ValueError, match="longer than"):
        model(torch.full((1, 9), 5))


def test_gelu_is_exact_erf_and_layers_are_post_ln():
    torch.manual_seed(8)
    model = RobertaForMaskedLM(RobertaConfig(**PARITY_SHAPE)).eval()
    layer = model.roberta.encoder.layer[0]
    x = torch.randn(2, 6, 64)
    with torch.no_grad():
        inter = layer.intermediate(x)
        pre = layer.intermediate.dense(x)
        expected = pre * 0.5 * (1 + torch.erf(pre / 2 ** 0.5))
        assert_close(inter, expected, "erf GELU")
        assert (inter - torch.relu(pre)).abs().max() > 1e-3
        # Post-LN, both sublayers: h = LN1(x + Attn(x)), out = LN2(h + FFN(h)), the residual
        # taken around the sublayer and the LayerNorm after the sum. Rebuilt here from the
        # layer's parts (the attention core itself is checked against transformers above); a
        # pre-LN sublayer, x + Attn(LN(x)), gives another output.
        context, _ = layer.attention.self(x)
        attention = layer.attention.output
        h = attention.LayerNorm(x + attention.dense(context))
        expected = layer.output.LayerNorm(h + layer.output.dense(layer.intermediate(h)))
        out, _ = layer(x)
        assert_close(out, expected, "post-LN layer")
        # So each sublayer's output is LayerNorm'd: mean 0, variance 1 before the affine.
        sublayer_outputs = {"attention": layer.attention(x)[0], "feed-forward": out}
        for (name, output), ln in zip(sublayer_outputs.items(),
                                      (attention.LayerNorm, layer.output.LayerNorm), strict=True):
            normalised = (output - ln.bias) / ln.weight
            assert normalised.mean(-1).abs().max() < 1e-4, name
            assert (normalised.var(-1, unbiased=False) - 1).abs().max() < 1e-3, name


def test_tied_decoder_and_roberta_init():
    torch.manual_seed(9)
    model = RobertaForMaskedLM(RobertaConfig.preset("nano"))
    emb = model.roberta.embeddings
    assert model.lm_head.decoder.weight is emb.word_embeddings.weight
    assert model.lm_head.decoder.bias is model.lm_head.bias
    assert emb.word_embeddings.weight[1].abs().max() == 0  # the padding row
    assert emb.position_embeddings.weight[1].abs().max() == 0
    std = model.roberta.encoder.layer[0].intermediate.dense.weight.std().item()
    assert 0.018 < std < 0.022
    assert model.roberta.encoder.layer[0].output.dense.bias.abs().max() == 0
    assert (emb.LayerNorm.weight == 1).all()


def test_presets_build_and_nano_is_small():
    nano = RobertaForMaskedLM(RobertaConfig.preset("nano"))
    assert sum(p.numel() for p in nano.parameters()) < 1_000_000
    RobertaForMaskedLM(RobertaConfig.preset("tiny"))
    base = RobertaConfig.preset("base")
    shape = (base.hidden_size, base.num_hidden_layers, base.max_position_embeddings)
    assert shape == (768, 12, 514)


def test_training_mode_backward_agrees_through_both_attention_paths():
    """Without dropout, training runs SDPA and the sparse last layer; asking for attentions
    takes the explicit four lines and the dense head. Same loss, same gradients."""
    torch.manual_seed(10)
    model = randomise_(RobertaForMaskedLM(RobertaConfig.preset(
        "nano", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)), seed=10).train()
    ids = torch.randint(5, 1024, (2, 12))
    labels = torch.where(torch.rand(2, 12) < 0.3, ids, torch.full_like(ids, -100))
    labels[0, 3] = ids[0, 3]
    grads, losses = [], []
    for explicit in (False, True):
        model.zero_grad(set_to_none=True)
        loss = model(ids, labels=labels, output_attentions=explicit).loss
        loss.backward()
        losses.append(loss.item())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert abs(losses[0] - losses[1]) < 1e-6
    assert grads[0]["roberta.encoder.layer.0.attention.self.qkv.weight"].abs().sum() > 0
    for name, grad in grads[0].items():
        assert_close(grad, grads[1][name], f"gradient of {name}, SDPA vs explicit")


def test_cheap_dropout_keeps_rate_expectation_and_gradient():
    torch.manual_seed(0)
    x = torch.ones(1000, 999, requires_grad=True)  # not a multiple of 4 elements
    y = dropout(x, 0.1)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.1) < 0.002
    assert abs(y.mean().item() - 1.0) < 0.005  # kept elements scaled by 1 / keep rate
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # d(x * mask)/dx = mask
    torch.manual_seed(0)
    assert torch.equal(dropout(x, 0.1), y)  # torch's seeded generator: reproducible
    assert dropout(x, 0.1, training=False) is x
    assert dropout(x.detach().bfloat16(), 0.3).dtype == torch.bfloat16


def test_training_forward_drops_out_reproducibly():
    torch.manual_seed(0)
    model = RobertaForMaskedLM(RobertaConfig.preset("nano")).train()
    ids = torch.randint(5, 1024, (2, 12))
    torch.manual_seed(1)
    a = model(ids).logits
    torch.manual_seed(1)
    b = model(ids).logits
    torch.manual_seed(2)
    c = model(ids).logits
    assert torch.equal(a, b) and not torch.equal(a, c)  # dropout on, and seeded


def test_predict_computes_the_head_only_where_asked():
    torch.manual_seed(0)
    model = RobertaForMaskedLM(RobertaConfig.preset("nano")).eval()
    ids = torch.randint(5, 1024, (2, 12))
    where = torch.zeros_like(ids, dtype=torch.bool)
    where[0, 3] = where[1, 7] = True
    with torch.no_grad():
        dense = model(ids).logits
        sparse = model(ids, predict=where).logits
    assert sparse.shape == (2, 1024)
    assert torch.allclose(sparse, dense[where], atol=1e-5)
    assert math.isclose(float(sparse.sum()), float(dense[where].sum()), rel_tol=1e-4)


def _grads_by_transformers_name(model) -> dict[str, torch.Tensor]:
    """Gradients under transformers' parameter names: the fused qkv split into query, key and
    value (our state-dict hooks do the same for weights)."""
    grads = {}
    for name, p in model.named_parameters():
        if ".qkv." in name:
            for part, g in zip(("query", "key", "value"), p.grad.chunk(3), strict=True):
                grads[name.replace("qkv", part)] = g
        else:
            grads[name] = p.grad
    return grads


@pytest.mark.parametrize("task", ["mlm", "cls"])
def test_one_training_step_matches_transformers(task):
    """Backward through the scored-rows-only last layer (the MLM's scored positions, the
    classifier's <s>), the fused qkv and the tied decoder: gradients and the weights after one
    AdamW step agree with transformers (dropout 0)."""
    torch.manual_seed(6)
    no_dropout = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    ids, mask = ragged_batch(seed=8)
    if task == "mlm":
        theirs = transformers.RobertaForMaskedLM(hf_config(**no_dropout))
        ours = RobertaForMaskedLM(RobertaConfig(**PARITY_SHAPE, **no_dropout))
        labels = torch.full_like(ids, -100)
        chosen = (torch.rand(ids.shape, generator=torch.Generator().manual_seed(9)) < 0.3) & \
            mask.bool()
        labels[chosen] = ids[chosen]
    else:
        theirs = transformers.RobertaForSequenceClassification(hf_config(num_labels=3,
                                                                         **no_dropout))
        ours = RobertaForSequenceClassification(RobertaConfig(**PARITY_SHAPE, num_labels=3,
                                                              **no_dropout))
        labels = torch.tensor([2, 0, 1])
    randomise_(theirs, seed=6).train()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ours.train()
    ours(ids, attention_mask=mask, labels=labels).loss.backward()
    theirs(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()

    ours_grads = _grads_by_transformers_name(ours)
    theirs_grads = dict((n, p.grad) for n, p in theirs.named_parameters())
    assert set(ours_grads) <= set(theirs_grads)
    assert len(ours_grads) >= len(theirs_grads) - 1  # theirs may list the tied bias twice
    for name, grad in ours_grads.items():
        assert_close(grad, theirs_grads[name], f"gradient of {name}")

    for model in (ours, theirs):
        torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-6,
                          weight_decay=0.01).step()
    after_ours, after_theirs = ours.state_dict(), theirs.state_dict()
    for name, value in after_ours.items():
        assert_close(value, after_theirs[name], f"{name} after one step")
