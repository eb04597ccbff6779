"""Precision: a run asked for bf16 computes in bf16 and one asked for fp32 in fp32 (the dtype of
an activation inside the training step), "auto" picks what the hardware runs fast, and bf16
autocast trains like fp32: two runs of the real training engine, same start, same batches, same
dropout, one in each precision, and their loss curves stay together without being the same.

On a CPU without native bf16 (AVX2 only) bf16 matmuls are emulated and ~50x slower than fp32:
"auto" chooses fp32 there, but bf16 asked for by name still runs (slowly). So the model is the
nano preset and the batches are small (4 x 16 tokens) to keep the test short.
"""

import pytest
import torch

from roberta import RobertaConfig, RobertaForMaskedLM
from roberta.settings import TrainingError
from roberta.training import devices
from roberta.training.config import TrainConfig
from roberta.training.devices import autocast, cpu_supports_bf16, resolve_precision
from roberta.training.engine import Trainer, run_to_end

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


@pytest.mark.slow  # two 200-step runs: ~10 s
def test_bf16_loss_curve_tracks_fp32_over_200_steps():
    fp32, bf16 = loss_curve("fp32"), loss_curve("bf16")
    assert len(fp32) == len(bf16) == STEPS
    a, b = windows(fp32), windows(bf16)
    # Both learn: from ~ln(1024) = 6.9 to well under it.
    assert a[-1] < a[0] - 1.0 and b[-1] < b[0] - 1.0, (a, b)
    # bf16 really ran: its rounding moves every step's loss a little (two fp32 runs would give
    # the same curve to the bit, test_train.py's same-seed test).
    step_gaps = [abs(x - y) for x, y in zip(fp32, bf16, strict=True)]
    assert sum(gap > 0 for gap in step_gaps) > STEPS // 2, "bf16 gave fp32's curve"
    # And together: every 20-step average within 2e-3 nats (measured: at most 5e-4), a single
    # step's loss within 1e-2 (measured: at most 2.2e-3, on an AVX2-only EPYC).
    gaps = [abs(x - y) for x, y in zip(a, b, strict=True)]
    assert max(gaps) < 2e-3, (a, b)
    assert max(step_gaps) < 1e-2


# --- which precision runs, and where -----------------------------------------------------------

def activation_dtypes_in_one_step(precision: str) -> set[torch.dtype]:
    """The dtypes of the FFN's first matmul output, seen by a forward hook during one optimizer
    step of the engine (every layer's)."""
    torch.manual_seed(0)
    model = RobertaForMaskedLM(RobertaConfig.preset("nano"))
    trainer = CountingTrainer(model, TrainConfig(max_steps=1, batch_size=BATCH, precision=precision,
                                                 device="cpu", warmup_steps=0))
    seen = set()
    hooks = [layer.intermediate.dense.register_forward_hook(
        lambda module, inputs, output: seen.add(output.dtype)) for layer in
        model.roberta.encoder.layer]
    try:
        assert trainer._optimizer_step() is not None
    finally:
        for hook in hooks:
            hook.remove()
    # The weights AdamW updates stay fp32 whatever the precision of the arithmetic.
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    return seen


def test_a_bf16_step_computes_in_bf16_and_an_fp32_step_in_fp32():
    assert activation_dtypes_in_one_step("bf16") == {torch.bfloat16}
    assert activation_dtypes_in_one_step("fp32") == {torch.float32}


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_the_autocast_context_runs_matmuls_in_the_precision_named(precision, dtype):
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with autocast(torch.device("cpu"), precision):
        assert (a @ b).dtype == dtype


def test_auto_precision_follows_the_hardware(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    # A CPU with native bf16 (AVX512-BF16 or AMX) gets bf16; one without it, fp32.
    monkeypatch.setattr(devices, "cpu_supports_bf16", lambda: True)
    assert resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(devices, "cpu_supports_bf16", lambda: False)
    assert resolve_precision("auto", cpu) == "fp32"
    # Asked for by name, bf16 runs on any CPU (emulated where it is not native) and fp32 too.
    assert resolve_precision("bf16", cpu) == "bf16" and resolve_precision("fp32", cpu) == "fp32"
    with pytest.raises(TrainingError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", cpu)
    # A GPU: bf16 where it has it, else fp16 (with a grad scaler).
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert resolve_precision("auto", cuda) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert resolve_precision("auto", cuda) == "fp16"


@pytest.mark.parametrize("cpuinfo, native", [
    ("flags\t: fpu sse2 avx avx2 fma", False),
    ("flags\t: fpu avx2 avx512f avx512_bf16", True),
    ("flags\t: fpu avx2 amx_bf16 amx_tile", True),
    (None, False),  # no /proc/cpuinfo (macOS, Windows)
])
def test_native_bf16_is_read_from_the_cpu_flags(monkeypatch, cpuinfo, native):
    class FakeCpuinfo:
        def __init__(self, path):
            assert str(path) == "/proc/cpuinfo"

        def read_text(self):
            if cpuinfo is None:
                raise FileNotFoundError("/proc/cpuinfo")
            return cpuinfo

    monkeypatch.setattr(devices, "Path", FakeCpuinfo)
    assert cpu_supports_bf16() is native


def test_this_machine_runs_auto_in_what_its_cpu_does_fast():
    torch.manual_seed(0)
    trainer = CountingTrainer(RobertaForMaskedLM(RobertaConfig.preset("nano")),
                              TrainConfig(max_steps=1, batch_size=BATCH, device="cpu"))
    assert trainer.precision == ("bf16" if cpu_supports_bf16() else "fp32")
    expected = torch.bfloat16 if trainer.precision == "bf16" else torch.float32
    assert activation_dtypes_in_one_step(trainer.precision) == {expected}
