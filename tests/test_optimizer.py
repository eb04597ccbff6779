"""What the README promises about the optimizer and the schedule, checked against independent
references: torch's own AdamW driven by hand with RoBERTa's settings, gradient norms computed
outside the engine, and a learning-rate schedule worked out by hand.

The trainer here is the shared engine (roberta.training.engine.Trainer) fed one fixed batch on a
nano masked LM without dropout, so a step is a pure function of the weights: whatever differs from
the reference is the optimizer, the clipping or the schedule.
"""

import copy

import pytest
import torch

from roberta import RobertaConfig, RobertaForMaskedLM
from roberta.training.config import TrainConfig, default_warmup
from roberta.training.engine import Trainer, run_to_end

VOCAB, BATCH, SEQ = 200, 4, 16
MASK_ID = 4


def masked_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random ordinary tokens, a quarter of them shown as <mask> and scored."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (BATCH, SEQ), generator=g)
    scored = torch.rand(BATCH, SEQ, generator=g) < 0.25
    scored[:, 0] = True  # at least one target per row
    return {"input_ids": ids.masked_fill(scored, MASK_ID),
            "labels": ids.masked_fill(~scored, -100)}


def nano_lm(seed: int = 0) -> RobertaForMaskedLM:
    torch.manual_seed(seed)
    return RobertaForMaskedLM(RobertaConfig.preset(
        "nano", vocab_size=VOCAB, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))


class FixedBatchTrainer(Trainer):
    """The engine with batch k = masked_batch(k): nothing but the engine decides the update."""

    def micro_batch(self, index):
        return masked_batch(index)

    def evaluate(self):
        return {}, None


def config(**overrides) -> TrainConfig:
    base = dict(max_steps=10, batch_size=BATCH, learning_rate=1e-3, warmup_steps=2,
                eval_every=1000, device="cpu", precision="fp32", seed=0)
    return TrainConfig(**{**base, **overrides})


def is_exempt_from_weight_decay(name: str) -> bool:
    """RoBERTa (fairseq, and BERT before it) decays weight matrices only: every bias and every
    LayerNorm parameter is exempt. Judged by name here, not by the engine's own rule (ndim)."""
    return name.endswith(".bias") or "LayerNorm" in name or "layer_norm" in name


def loss_and_gradients(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> float:
    model.train()
    model.zero_grad(set_to_none=True)
    loss = model(**batch).loss
    loss.backward()
    return float(loss.detach())


def global_norm(parameters) -> float:
    return float(torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(p.grad) for p in parameters if p.grad is not None])))


# --- AdamW ------------------------------------------------------------------------------------

def test_adamw_has_robertas_betas_and_eps_not_torchs_defaults():
    trainer = FixedBatchTrainer(nano_lm(), config())
    assert isinstance(trainer.optimizer, torch.optim.AdamW)
    torch_defaults = torch.optim.AdamW([torch.zeros(1, requires_grad=True)]).defaults
    # What a forgotten argument would give, so the check below is not vacuous.
    assert (torch_defaults["betas"], torch_defaults["eps"]) == ((0.9, 0.999), 1e-8)
    for group in trainer.optimizer.param_groups:
        assert group["betas"] == (0.9, 0.98)  # RoBERTa, section 3.1: beta2 0.98 for stability
        assert group["eps"] == 1e-6


def test_weight_decay_spares_every_bias_and_layernorm_parameter():
    model = nano_lm()
    trainer = FixedBatchTrainer(model, config(weight_decay=0.01))
    names = {id(p): name for name, p in model.named_parameters()}
    decay_of = {names[id(p)]: group["weight_decay"] for group in trainer.optimizer.param_groups
                for p in group["params"]}
    assert set(decay_of) == set(names.values())  # every parameter, each in one group
    exempt = {name for name in decay_of if is_exempt_from_weight_decay(name)}
    assert {"roberta.embeddings.LayerNorm.weight", "lm_head.bias"} <= exempt  # the rule bites
    assert {name: decay_of[name] for name in exempt} == dict.fromkeys(exempt, 0.0)
    decayed = set(decay_of) - exempt
    assert "roberta.embeddings.word_embeddings.weight" in decayed
    assert {name: decay_of[name] for name in decayed} == dict.fromkeys(decayed, 0.01)


def test_updates_match_torch_adamw_driven_by_hand_with_robertas_settings():
    """Five steps of the engine against torch.optim.AdamW on a copy of the model, with the
    groups, betas, eps, weight decay, clipping and per-step rates written out here. Five steps
    at a high rate, so beta2 (0.98 vs 0.999) moves the weights well past float rounding."""
    steps, peak = 5, 1e-2
    # Warmup 2 of 5 steps, linear decay to 0: (k + 1) / 3 while k < 2, then 1 - (k - 2) / 3.
    rates = [peak / 3, 2 * peak / 3, peak, 2 * peak / 3, peak / 3]
    engine = nano_lm()
    reference = copy.deepcopy(engine)
    trainer = FixedBatchTrainer(engine, config(max_steps=steps, warmup_steps=2,
                                               learning_rate=peak, weight_decay=0.01))
    named = list(reference.named_parameters())
    optimizer = torch.optim.AdamW(
        [{"params": [p for n, p in named if not is_exempt_from_weight_decay(n)],
          "weight_decay": 0.01},
         {"params": [p for n, p in named if is_exempt_from_weight_decay(n)],
          "weight_decay": 0.0}],
        lr=peak, betas=(0.9, 0.98), eps=1e-6, foreach=False)
    done = run_to_end(trainer)
    assert done.kind == "done" and trainer.step == steps, done.message
    for step, rate in enumerate(rates):
        loss_and_gradients(reference, masked_batch(step))
        torch.nn.utils.clip_grad_norm_(reference.parameters(), 1.0)
        for group in optimizer.param_groups:
            group["lr"] = rate
        optimizer.step()
    moved = max(float((a - b).detach().abs().max()) for a, b in
                zip(engine.parameters(), nano_lm().parameters(), strict=True))
    assert moved > 1e-3  # the weights did move
    for (name, ours), theirs in zip(engine.named_parameters(), reference.parameters(),
                                    strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=2e-6, msg=name)


# --- clipping ---------------------------------------------------------------------------------

def gradient_norms_seen_by_the_optimizer(trainer: Trainer) -> list[float]:
    """The global gradient norm at each optimizer.step call (after any clipping)."""
    seen = []
    trainer.optimizer.register_step_pre_hook(
        lambda optimizer, args, kwargs: seen.append(global_norm(trainer.model.parameters())))
    return seen


@pytest.mark.parametrize("grad_clip", [1.0, 0.25])
def test_gradients_are_clipped_to_the_configured_norm(grad_clip):
    natural_model = nano_lm()
    loss_and_gradients(natural_model, masked_batch(0))
    natural = global_norm(natural_model.parameters())
    assert natural > 2 * grad_clip  # this batch's gradient is long enough to be clipped
    trainer = FixedBatchTrainer(nano_lm(), config(grad_clip=grad_clip))
    assert TrainConfig().grad_clip == 1.0  # the default the README promises
    seen = gradient_norms_seen_by_the_optimizer(trainer)
    _, logged_norm, _ = trainer._optimizer_step()
    assert logged_norm == pytest.approx(natural, rel=1e-5)  # the log shows the norm before
    assert seen == [pytest.approx(grad_clip, rel=1e-5)]  # the update sees the clipped one


def test_grad_clip_zero_leaves_the_gradient_alone():
    natural_model = nano_lm()
    loss_and_gradients(natural_model, masked_batch(0))
    natural = global_norm(natural_model.parameters())
    trainer = FixedBatchTrainer(nano_lm(), config(grad_clip=0.0))
    seen = gradient_norms_seen_by_the_optimizer(trainer)
    trainer._optimizer_step()
    assert seen == [pytest.approx(natural, rel=1e-5)]


# --- the learning-rate schedule ---------------------------------------------------------------

# Peak 1e-3, 4 warmup steps, 12 steps, decaying to a floor of 0.1 x the peak, worked out by hand:
# update k (from 0) runs at (k + 1) / 5 of the peak while k < 4, then at
# 1 - 0.9 * (k - 4) / 8 of it; after the last update the rate sits on the floor.
RATE_OF_UPDATE = [2e-4, 4e-4, 6e-4, 8e-4,  # warmup ramp
                  1e-3,  # peak
                  8.875e-4, 7.75e-4, 6.625e-4, 5.5e-4, 4.375e-4, 3.25e-4, 2.125e-4]  # decay
FLOOR = 1e-4


def test_the_schedule_warms_up_peaks_decays_and_ends_on_the_floor():
    trainer = FixedBatchTrainer(nano_lm(), config(max_steps=12, warmup_steps=4,
                                                  learning_rate=1e-3, min_lr_ratio=0.1))
    used = []  # the rate each update actually ran at
    trainer.optimizer.register_step_pre_hook(
        lambda optimizer, args, kwargs: used.append(optimizer.param_groups[0]["lr"]))
    logged = []
    done = run_to_end(trainer, lambda e: logged.append(e.metrics["lr"])
                      if e.kind == "step" else None)
    assert done.kind == "done", done.message
    assert used == pytest.approx(RATE_OF_UPDATE, rel=1e-9)
    # Every parameter group follows the same schedule.
    assert len({g["lr"] for g in trainer.optimizer.param_groups}) == 1
    # The log's "lr" at step k is the rate the optimizer holds after update k (the one update
    # k + 1 will use): the ramp from its second value, then the decay, then the floor.
    assert logged == pytest.approx(RATE_OF_UPDATE[1:] + [FLOOR], rel=1e-9)


def test_no_warmup_starts_at_the_peak_and_decays_to_zero():
    trainer = FixedBatchTrainer(nano_lm(), config(max_steps=4, warmup_steps=0,
                                                  learning_rate=1e-3))
    used = []
    trainer.optimizer.register_step_pre_hook(
        lambda optimizer, args, kwargs: used.append(optimizer.param_groups[0]["lr"]))
    run_to_end(trainer)
    assert used == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4], rel=1e-9)


def test_the_default_pretraining_warmup_is_150_steps_or_a_tenth_of_a_short_run():
    assert [default_warmup(n) for n in (100, 1000, 1500, 20_000)] == [10, 100, 150, 150]
