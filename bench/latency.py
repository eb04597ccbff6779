"""Fill-mask latency: one sentence of 32 tokens with one <mask>, batch 1, to the top-5 guesses.

Each library does what its fill-mask does: transformers' pipeline computes the logits at every
position and picks the masked one; ours asks the model for the <mask> position only
(`predict=`), so the vocabulary projection runs on one row instead of 32.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from . import flops, pair
from .timing import interleaved, median


@dataclass
class Latency:
    side: str
    setting: str
    precision: str
    flops: int
    samples: list[float] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return median(self.samples)


def sentence(config, seq_len: int, device: torch.device, seed: int = 2):
    """<s> random tokens </s>, with the token `mask_id` (not otherwise present) in the middle."""
    g = torch.Generator().manual_seed(seed)
    mask_id = config.vocab_size - 1
    ids = torch.randint(5, mask_id, (1, seq_len), generator=g)
    ids[0, 0], ids[0, -1] = config.bos_token_id, config.eos_token_id
    ids[0, seq_len // 2] = mask_id
    return ids.to(device), mask_id


def fill_mask_calls(config, ours, theirs, ids, mask_id, precision, device):
    cast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if precision == "bf16" \
        else contextlib.nullcontext
    position = int((ids[0] == mask_id).nonzero()[0])

    def ours_call():
        with torch.inference_mode(), cast():
            logits = ours(ids, predict=ids == mask_id).logits  # (1, V)
            return logits.float().softmax(-1).topk(5)

    def theirs_call(model):
        def call():
            with torch.inference_mode(), cast():
                logits = model(input_ids=ids).logits[0, position]  # (B, T, V) -> (V,)
                return logits.float().softmax(-1).topk(5)
        return call

    calls = {("ours", "eager, LM head at the <mask> only"): ours_call}
    for name, model in theirs.items():
        calls[("transformers", f"eager, attn_implementation={name}")] = theirs_call(model)
    return calls


def run(preset: str, device: torch.device, seq_len: int, calls_n: int, precisions: list[str],
        log=print) -> list[Latency]:
    config, ours, theirs = pair.build(preset, device)
    ours.eval()
    for model in theirs.values():
        model.eval()
    ids, mask_id = sentence(config, seq_len, device)
    found, runs = [], {}
    for precision in precisions:
        for (side, setting), call in fill_mask_calls(config, ours, theirs, ids, mask_id,
                                                     precision, device).items():
            rows = 1 if side == "ours" else seq_len  # ours: the <mask> only
            found.append(Latency(side, setting, precision,
                                 flops.inference_flops(config, 1, seq_len, rows, rows)))
            runs[str(len(runs))] = call
            for _ in range(3):  # warm up
                call()
    log(f"  timing {len(found)} variants, {calls_n} interleaved calls each")
    samples = interleaved(runs, calls_n, 1, device)
    for i, latency in enumerate(found):
        latency.samples = samples[str(i)]
    return found
