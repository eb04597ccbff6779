"""The CUDA paths, where a GPU is present (skipped otherwise): the model, inference and the
trainer's mixed precision (fp16 with a GradScaler, bf16) on the GPU against the CPU."""

from __future__ import annotations

import pytest
import torch

from roberta import RobertaConfig, RobertaForMaskedLM
from roberta.inference import fill_mask
from roberta.tokenizer import RobertaTokenizer
from roberta.training.config import PretrainConfig
from roberta.training.devices import pick_device
from roberta.training.pretraining import Pretrainer, prepare_pretraining_data

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

TEXTS = [f"Story {i}. The cat sat in the garden and the dog was happy." for i in range(80)]


@pytest.fixture(scope="module")
def tokenizer():
    return RobertaTokenizer.train(TEXTS, vocab_size=300, min_frequency=1)


def nano(tokenizer, seed=0, **overrides):
    torch.manual_seed(seed)
    return RobertaForMaskedLM(RobertaConfig.preset(
        "nano", vocab_size=tokenizer.vocab_size, max_position_embeddings=34, **overrides)).eval()


def test_auto_picks_the_gpu():
    assert pick_device("auto").type == "cuda" and pick_device("cuda:0").type == "cuda"


def test_the_model_on_the_gpu_matches_the_cpu(tokenizer):
    model = nano(tokenizer)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, tokenizer.vocab_size, (4, 30), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 20:] = 0
    with torch.no_grad():
        on_cpu = model(ids, attention_mask=mask).logits
        on_gpu = model.cuda()(ids.cuda(), attention_mask=mask.cuda()).logits
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-4, rtol=1e-4)


def test_fill_mask_on_the_gpu_gives_the_cpus_guesses(tokenizer):
    model = nano(tokenizer)
    text = "The cat sat in the <mask>."
    on_cpu = fill_mask(model, tokenizer, text).predictions[0].candidates
    on_gpu = fill_mask(model.cuda(), tokenizer, text).predictions[0].candidates
    assert [c.token_id for c in on_gpu] == [c.token_id for c in on_cpu]
    assert [c.probability for c in on_gpu] == pytest.approx(
        [c.probability for c in on_cpu], abs=1e-4)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_training_on_the_gpu_follows_the_cpu_curve(tokenizer, precision):
    """Same seed, same batches and masks (the masker draws on the CPU): the GPU's losses track
    the CPU's fp32 run, closely in fp32 and within mixed-precision rounding otherwise; fp16
    goes through the GradScaler."""
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    data = prepare_pretraining_data(TEXTS, tokenizer, seq_length=32, validation_fraction=0.1,
                                    seed=0)

    def curve(device, precision):
        config = PretrainConfig(max_steps=8, batch_size=8, learning_rate=1e-3, warmup_steps=2,
                                eval_every=8, precision=precision, device=device, seed=0,
                                seq_length=32, eval_sequences=8, probes=())
        trainer = Pretrainer(nano(tokenizer, hidden_dropout_prob=0.0,
                                  attention_probs_dropout_prob=0.0), tokenizer, data, config)
        assert (trainer.scaler is not None) == (precision == "fp16")
        events = list(trainer.run())
        assert events[-1].kind == "done", events[-1].message
        return [e.metrics["loss"] for e in events if e.kind == "step"]

    reference = curve("cpu", "fp32")
    on_gpu = curve("cuda", precision)
    tolerance = 1e-3 if precision == "fp32" else 5e-2
    assert on_gpu == pytest.approx(reference, abs=tolerance)
