"""Pretraining throughput: forward, backward, gradient clipping and a fused AdamW step.

Each library runs the step the way its users would: ours through the sparse MLM head (the LM
head only at the ~15% scored positions), transformers through its dense head (every position)
with the loss over the labelled ones. Both get the same optimizer, transformers' Trainer default
(fused AdamW), grouped and configured as roberta.training.engine.Trainer does it.

Variants per library: eager in fp32, each attention implementation transformers offers, bf16
autocast where the hardware does bf16 natively, and torch.compile of each encoder layer
("regional" compilation: one compile serves every layer, so it costs a layer's compile, not a
model's). Compile time is the first step's time less the median compiled step's, reported
apart.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from . import flops, memory, pair
from .timing import interleaved, median, synchronize


@dataclass
class Variant:
    side: str  # "ours" | "transformers"
    setting: str  # how it ran, in words
    precision: str  # "fp32" | "bf16"
    compiled: bool
    step: Callable[[], None]
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    flops_per_step: int
    compile_s: float | None = None
    samples: list[float] = field(default_factory=list)
    peak_bytes: int | None = None
    resting_bytes: int | None = None

    @property
    def seconds(self) -> float:
        return median(self.samples)


def optimizer_for(model: torch.nn.Module, device: torch.device) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=1e-4, betas=(0.9, 0.98), eps=1e-6,
                             fused=device.type in ("cpu", "cuda"))


def training_step(model, optimizer, batches, precision: str, device: torch.device):
    params = list(model.parameters())
    counter = iter(range(10**9))

    def step() -> None:
        ids, labels = batches[next(counter) % len(batches)]
        cast = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" \
            else contextlib.nullcontext()
        with cast:
            loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def compile_layers(model: torch.nn.Module, side: str) -> None:
    """Regional compilation: each encoder layer, static shapes. Our last layer runs on the
    scored rows only, whose count changes from batch to batch, so it stays eager rather than
    recompile for every count."""
    layers = list(model.roberta.encoder.layer)
    for layer in layers[:-1] if side == "ours" else layers:
        layer.compile(dynamic=False)


def variants(preset: str, device: torch.device, batch_size: int, seq_len: int,
             precisions: list[str], compile_too: bool) -> tuple[list[Variant], object]:
    config, ours, theirs = pair.build(preset, device)
    batches = pair.pretraining_batches(config, batch_size, seq_len, count=4, device=device)
    # What each side's LM head and last layer run on, averaged over the batches.
    scored = [labels != pair.IGNORE_INDEX for _, labels in batches]
    head_rows = sum(int(s.sum()) for s in scored) // len(batches)
    last_rows = sum(batch_size * int(s.sum(1).max()) for s in scored) // len(batches)
    dense = batch_size * seq_len
    step_flops = {"ours": flops.training_flops(config, batch_size, seq_len, last_rows, head_rows),
                  "transformers": flops.training_flops(config, batch_size, seq_len, dense, dense)}
    candidates = [("ours", "eager, sparse MLM head, SDPA", ours, False)]
    candidates += [("transformers", f"eager, attn_implementation={name}", model, False)
                   for name, model in theirs.items()]
    if compile_too:
        candidates += [("ours", "torch.compile per layer (not the sparse last)", ours, True),
                       ("transformers", "torch.compile per layer, sdpa", theirs["sdpa"], True)]
    out = []
    for i, precision in enumerate(precisions):
        for side, setting, base, compiled in candidates:
            if compiled and precision != precisions[-1]:
                continue  # compile is tried in the fastest precision only (bf16 where native)
            # Every variant its own weights and optimizer state, all equal at the start.
            model = base if i == 0 and not compiled else pair.copy_of(base)
            model.train()
            optimizer = optimizer_for(model, device)
            if compiled:
                compile_layers(model, side)
            out.append(Variant(side, setting, precision, compiled,
                               training_step(model, optimizer, batches, precision, device),
                               model, optimizer, step_flops[side]))
    return out, config


def compiler_start_up_s(device: torch.device) -> float:
    """Seconds for the first torch.compile in the process (inductor's one-time start-up, paid
    by whichever model compiles first), on a trivial function, so that the two libraries'
    compile times compare like with like."""
    start = time.perf_counter()
    torch.compile(lambda x: x * 2 + 1, dynamic=False)(torch.ones(8, device=device))
    synchronize(device)
    return time.perf_counter() - start


def run(preset: str, device: torch.device, batch_size: int, seq_len: int, rounds: int,
        precisions: list[str], compile_too: bool, log=print) -> list[Variant]:
    found, _ = variants(preset, device, batch_size, seq_len, precisions, compile_too)
    first_step = []
    for v in found:
        # Step 1 creates the optimizer state and, for a compiled variant, compiles; step 2 runs
        # under the memory profiler (and is not timed).
        log(f"  {v.side}: {v.setting}, {v.precision}" + (" (compiling)" if v.compiled else ""))
        synchronize(device)
        start = time.perf_counter()
        v.step()
        synchronize(device)
        first_step.append(time.perf_counter() - start)
        v.peak_bytes = memory.peak_bytes(v.step, device)
        v.resting_bytes = memory.resting_bytes(v.model, v.optimizer)
    log(f"  timing {len(found)} variants, {rounds} interleaved rounds")
    samples = interleaved({str(i): v.step for i, v in enumerate(found)}, rounds, 1, device)
    for i, v in enumerate(found):
        v.samples = samples[str(i)]
        if v.compiled:  # the first step less a compiled step: the time spent compiling
            v.compile_s = max(0.0, first_step[i] - v.seconds)
            log(f"  {v.side} compiled in {v.compile_s:.1f} s")
    return found
