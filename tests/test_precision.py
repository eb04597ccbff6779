"""bf16 autocast trains like fp32: two runs of the real training engine, same start, same
batches, same dropout, one in each precision, and their loss curves stay together.

On a CPU without native bf16 (AVX2 only) bf16 matmuls are emulated and ~50x slower than fp32,
so the model is the nano preset and the batches are small (4 x 16 tokens) to keep the test
short.
"""

import torch

from roberta import RobertaConfig, RobertaForMaskedLM
from roberta.train import TrainConfig, Trainer, run_to_end

STEPS, BATCH, SEQ = 200, 4, 16
MASK_ID, FIRST_ID = 4, 5


def counting_batch(index: int, vocab_size: int) -> dict[str, torch.Tensor]:
    """Sequences that count up from a random start among the first 32 ids, 15% of tokens
    masked: the loss falls from ln(V) = 6.9 (used ids first, then neighbours) within 200 steps."""
    g = torch.Generator().manual_seed(index)
    start = torch.randint(FIRST_ID, FIRST_ID + 32, (BATCH, 1), generator=g)
    ids = start + torch.arange(SEQ)
    chosen = torch.rand(BATCH, SEQ, generator=g) < 0.15
    chosen[:, 0] = True  # at least one prediction per sequence
    return {"input_ids": ids.masked_fill(chosen, MASK_ID),
            "labels": ids.masked_fill(~chosen, -100)}


class CountingTrainer(Trainer):
    def micro_batch(self, index):
        return counting_batch(index, self.model.config.vocab_size)

    def evaluate(self):
        return {}, None


def loss_curve(precision: str) -> list[float]:
    torch.manual_seed(0)
    model = RobertaForMaskedLM(RobertaConfig.preset("nano"))
    config = TrainConfig(max_steps=STEPS, batch_size=BATCH, learning_rate=1e-3, warmup_steps=20,
                         precision=precision, device="cpu", eval_every=STEPS, seed=0)
    trainer = CountingTrainer(model, config)
    assert trainer.precision == precision
    losses = []
    last = run_to_end(trainer, lambda e: losses.append(e.metrics["loss"])
                      if e.kind == "step" else None)
    assert last.kind == "done", last.message
    return losses


def windows(curve: list[float], width: int = 20) -> list[float]:
    return [sum(curve[i:i + width]) / width for i in range(0, len(curve), width)]


def test_bf16_loss_curve_tracks_fp32_over_200_steps():
    fp32, bf16 = loss_curve("fp32"), loss_curve("bf16")
    assert len(fp32) == len(bf16) == STEPS
    a, b = windows(fp32), windows(bf16)
    # Both learn: from ~ln(1024) = 6.9 to well under it.
    assert a[-1] < a[0] - 1.0 and b[-1] < b[0] - 1.0, (a, b)
    # And together: every 20-step average within 0.05 nats (measured: under 1e-3).
    gaps = [abs(x - y) for x, y in zip(a, b, strict=True)]
    assert max(gaps) < 0.05, (a, b)
    # Step by step too: bf16 rounding moves a single step's loss by ~1e-3 here.
    assert max(abs(x - y) for x, y in zip(fp32, bf16, strict=True)) < 0.1
