"""The command line's progress: a tqdm bar with loss and tokens/s, evaluation lines above it,
and every event appended to a metrics.jsonl log (roberta/cli.py)."""

from __future__ import annotations

import json
from pathlib import Path


class EventPrinter:
    """A tqdm bar with loss and tokens/s, evaluation lines above it, and a metrics.jsonl log."""

    def __init__(self, total: int, log_path: Path | None, enabled: bool = True):
        from tqdm import tqdm
        self.enabled = enabled
        self.bar = tqdm(total=total, unit="step", dynamic_ncols=True, disable=not enabled)
        self.log = open(log_path, "a") if (log_path and enabled) else None  # noqa: SIM115
        self.last_eval: dict[str, float] = {}  # the latest evaluation's metrics

    def __call__(self, event) -> None:
        if event.kind == "eval":
            self.last_eval = event.metrics
        if not self.enabled:
            return
        if self.log:
            self.log.write(json.dumps({"kind": event.kind, "step": event.step,
                                       "elapsed": round(event.elapsed, 3), **event.metrics,
                                       "message": event.message}) + "\n")
            self.log.flush()
        if event.kind == "start":
            self.bar.reset(total=event.total_steps)
            self.bar.update(event.step)
            self.bar.write(event.message)
        elif event.kind == "step":
            self.bar.update(event.step - self.bar.n)
            m = event.metrics
            self.bar.set_postfix(loss=f"{m['loss']:.3f}", tok_s=f"{m['tokens_per_s']:.0f}",
                                 lr=f"{m['lr']:.2e}")
        elif event.kind == "eval":
            text = "  ".join(f"{k}={v:.4g}" for k, v in event.metrics.items())
            self.bar.write(f"step {event.step}: {text}")
            for probe in event.probes or []:
                guesses = ", ".join(repr(c.token) for c in probe.predictions[0].candidates)
                self.bar.write(f"    {probe.text[:60]} -> {guesses}")
        elif event.finished:
            self.bar.close()
            text = "  ".join(f"{k}={v:.4g}" for k, v in event.metrics.items())
            print(f"{event.kind}: {event.message} {text}".rstrip())
            if self.log:
                self.log.close()
