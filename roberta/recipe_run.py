"""What every recipe stage shares: driving a run into the log, the model cards' Markdown, the
hardware line, and writing files whole (a stop never leaves half a file or half a model)."""

from __future__ import annotations

import json
import platform
import shutil
from dataclasses import asdict
from pathlib import Path

import torch

from .defaults import RECIPE_COMMAND
from .training.devices import resolve_precision


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA, {resolve_precision('auto', device)})"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    # Machines sold under one name differ: native bf16 or not decides the precision (and the
    # speed) of every step, so the card says which it was.
    precision = "bf16 autocast (native bf16)" if resolve_precision("auto", device) == "bf16" \
        else "fp32 (no native bf16)"
    return f"{cpu}, {torch.get_num_threads()} CPU thread(s), {precision}"


def run_logged(trainer, label: str, log: list[dict], checkpoints: Path) -> dict:
    """Drive a run, printing evaluations; returns the last eval's and the done event's metrics.

    Beside each checkpoint the run writes `<label>-progress.json` (its log rows and wall time so
    far), so a resumed run's log and wall time include the part before the stop."""
    progress = checkpoints.parent / f"{label}-progress.json"
    earlier = json.loads(progress.read_text()) if trainer.step and progress.is_file() else {}
    log.extend(r for r in earlier.get("rows", []) if r["step"] <= trainer.step)
    offset = earlier.get("seconds", 0.0)
    last_eval: dict = {}
    for event in trainer.run():
        elapsed = offset + event.elapsed
        record = {"run": label, "kind": event.kind, "step": event.step,
                  "elapsed": round(elapsed, 1), **event.metrics}
        if event.kind == "eval":
            last_eval = event.metrics
            log.append(record)
            print(f"[{label}] step {event.step}/{event.total_steps} {elapsed / 60:.1f} min "
                  + " ".join(f"{k}={v:.4g}" for k, v in event.metrics.items()), flush=True)
        elif event.kind == "step" and event.step % 100 == 0:
            log.append(record)
        elif event.kind == "checkpoint":
            write_json(progress, {"step": event.step, "seconds": elapsed,
                                   "rows": [r for r in log if r["run"] == label]})
        elif event.finished:
            log.append(record)
            if event.kind != "done":
                raise RuntimeError(f"{label} {event.kind}: {event.message}")
            return {**last_eval, **event.metrics, "wall_seconds": elapsed}
    raise RuntimeError(f"{label} ended without a final event")


def write_json(path: Path, value) -> None:
    """Write `path` whole or not at all (a kill mid-write leaves the previous version)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value))
    tmp.replace(path)


def card(title: str, sections: dict[str, object]) -> str:
    lines = [f"# {title}", ""]
    for heading, body in sections.items():
        lines += [f"## {heading}", "", body if isinstance(body, str) else
                  "```json\n" + json.dumps(body, indent=2) + "\n```", ""]
    return "\n".join(lines)


def hardware_and_versions(device: torch.device, recipe) -> dict:
    return {"Hardware": hardware(device),
            "Versions": {"torch": torch.__version__, "python": platform.python_version()},
            "Recipe": asdict(recipe),
            "Reproduce": f"{RECIPE_COMMAND}  (same seed, hardware and thread count give the "
                         f"same weights)"}


def install(staged: Path, final: Path) -> None:
    """Replace `final` with the finished `staged` directory (never half-written)."""
    shutil.rmtree(final, ignore_errors=True)
    staged.rename(final)
