"""Matmul peaks, measured in the same run: the denominators of MFU."""

from __future__ import annotations

import time

import torch

from .timing import synchronize


def matmul_flops_per_s(n: int, dtype: torch.dtype, device: torch.device, repeat: int) -> float:
    """Best of `repeat` timings of one (n, n) @ (n, n) matmul, in FLOP/s."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b  # warm up (oneDNN and cuBLAS pick their kernels on the first call)
    best = float("inf")
    for _ in range(repeat):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def measure(device: torch.device, quick: bool, bf16_too: bool = True) -> dict[str, float]:
    """fp32 and bf16 peaks. On a CPU without native bf16, a bf16 matmul is emulated and ~100x
    slower, so it is measured on a smaller matrix to keep the run short."""
    from roberta.training.devices import cpu_supports_bf16

    if device.type == "cuda":
        size32 = size16 = 8192
    else:
        size32 = 1024 if quick else 2048
        size16 = size32 if cpu_supports_bf16() else 256 if quick else 512
    found = {"fp32": matmul_flops_per_s(size32, torch.float32, device, 3 if quick else 10),
             "fp32_size": size32, "bf16_size": size16}
    if bf16_too:
        found["bf16"] = matmul_flops_per_s(size16, torch.bfloat16, device, 3 if quick else 5)
    return found


def best(found: dict[str, float], again: dict[str, float]) -> dict[str, float]:
    """The peak is the best seen in the run: a busy moment only ever lowers a measurement."""
    return {k: max(v, again.get(k, v)) for k, v in found.items()}
