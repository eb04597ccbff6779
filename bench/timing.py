"""Interleaved timing: every variant runs once per round, rounds repeat, medians come out.

A shared machine's load drifts over a run; interleaving lays the drift on every variant alike,
and the median of the rounds ignores the odd round another process took over.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(runs: dict[str, Callable[[], object]], rounds: int, repeat: int,
                device: torch.device) -> dict[str, list[float]]:
    """Seconds per call of each run, one sample per round (the mean of `repeat` calls)."""
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            synchronize(device)
            start = time.perf_counter()
            for _ in range(repeat):
                run()
            synchronize(device)
            samples[name].append((time.perf_counter() - start) / repeat)
    return samples


def median(values: list[float]) -> float:
    return statistics.median(values)
