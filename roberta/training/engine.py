"""The loop every run shares: a generator of `TrainEvent`s that can be stopped.

`Trainer.run()` yields events: the command line prints them, the app draws them. Setting the stop
flag (`trainer.stop()`) ends the run at the next step with a usable model; a NaN/inf loss ends it
with a "failed" event before the bad update touches the weights. Checkpoints are Hugging Face
model directories plus the optimizer, schedule, RNG and step, written atomically, so a resumed
run continues the same curve.

Data order is a pure function of (seed, step): batch k of epoch e is rows of a permutation seeded
by (seed, e). With the masker's generator state saved, resuming replays exactly what an
uninterrupted run would have done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pickle  # only for its error type: checkpoints load with weights_only
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ..inference import FillMaskResult
from ..masking import IGNORE_INDEX
from ..settings import TrainingError
from .config import TrainConfig
from .devices import autocast, pick_device, resolve_precision, world

TRAINER_STATE_NAME = "trainer_state.json"
OPTIMIZER_STATE_NAME = "optimizer.pt"  # tensors, ints and floats only: read with weights_only


@dataclass
class TrainEvent:
    kind: str  # start | step | eval | checkpoint | done | stopped | failed
    step: int
    total_steps: int
    elapsed: float  # seconds since the run started
    metrics: dict[str, float] = field(default_factory=dict)
    probes: list[FillMaskResult] | None = None
    message: str = ""

    @property
    def finished(self) -> bool:
        return self.kind in ("done", "stopped", "failed")

    @property
    def eta(self) -> float | None:
        """Seconds left at the pace so far."""
        if self.step == 0:
            return None
        return self.elapsed / self.step * (self.total_steps - self.step)


def _scored(labels: torch.Tensor) -> torch.Tensor:
    """How many targets a batch's loss averages over: labelled tokens, or examples."""
    return (labels != IGNORE_INDEX).sum() if labels.dim() > 1 else torch.tensor(labels.numel())


class Trainer:
    """Optimizer, schedule, precision, the step (accumulation, clipping, NaN guard), the loop,
    the stop flag and checkpoints. Subclasses supply batches, evaluation and the final report."""

    config: TrainConfig

    def __init__(self, model: torch.nn.Module, config: TrainConfig):
        config.validate()
        self.config = config
        self.device = pick_device(config.device)
        self.precision = resolve_precision(config.precision, self.device)
        self.rank, self.world_size = world()
        self.model = model.to(self.device)
        self.train_model = self.model  # what forward/backward runs through (DDP-wrapped if any)
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = torch.nn.parallel.DistributedDataParallel(self.model,
                                                                         device_ids=ids)
        decay = [p for p in model.parameters() if p.ndim >= 2]  # not biases, not LayerNorm
        no_decay = [p for p in model.parameters() if p.ndim < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay},
             {"params": no_decay, "weight_decay": 0.0}],
            lr=config.learning_rate, betas=config.adam_betas, eps=config.adam_eps,
            fused=self.device.type in ("cpu", "cuda"))  # one kernel for all parameters
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.lr_factor)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self.step = 0
        self._stop = threading.Event()
        self._epoch_order: tuple[int, torch.Tensor] | None = None
        self.notes: list[str] = []  # what the run changed in its settings, said at its start

    def lr_factor(self, step: int) -> float:
        """Linear warmup, then linear decay to min_lr_ratio at max_steps (RoBERTa's schedule)."""
        c = self.config
        if step < c.warmup_steps:
            return (step + 1) / (c.warmup_steps + 1)
        progress = (step - c.warmup_steps) / max(1, c.max_steps - c.warmup_steps)
        return max(c.min_lr_ratio, 1.0 - (1.0 - c.min_lr_ratio) * progress)

    def stop(self) -> None:
        """Ask the run to end after the current step; safe from another thread."""
        self._stop.set()

    # Subclass hooks.
    def micro_batch(self, index: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def evaluate(self) -> tuple[dict[str, float], list[FillMaskResult] | None]:
        raise NotImplementedError

    def final_report(self) -> dict[str, float]:
        return {}

    def before_step(self) -> None:
        """Called before each optimizer step (self.step updates done so far)."""

    def save_extra(self, directory: Path) -> None:
        """Anything besides the model a checkpoint needs: the subclass's tokenizer."""
        self.tokenizer.save_pretrained(directory)

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    # Data order: a pure function of (seed, index), so resuming replays the same batches.
    def global_rows(self, index: int, num_rows: int) -> torch.Tensor:
        """Row indices of global micro-batch `index` (every rank's rows), over `num_rows`
        examples: the same rows whatever the number of processes sharing the batch."""
        per_batch = self.config.batch_size * self.world_size
        batches_per_epoch = num_rows // per_batch
        epoch, k = divmod(index, batches_per_epoch)
        if self._epoch_order is None or self._epoch_order[0] != epoch:
            g = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
            self._epoch_order = (epoch, self.epoch_order(num_rows, per_batch, g))
        return self._epoch_order[1][k * per_batch:(k + 1) * per_batch]

    def epoch_order(self, num_rows: int, per_batch: int, generator: torch.Generator
                    ) -> torch.Tensor:
        """The order one epoch reads the rows in, each `per_batch` in turn a global batch."""
        return torch.randperm(num_rows, generator=generator)

    def my_share(self, rows: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a global batch (every world_size-th, from its rank)."""
        return rows[self.rank::self.world_size]

    def rows_for(self, index: int, num_rows: int) -> torch.Tensor:
        """Row indices of global micro-batch `index` for this rank, over `num_rows` examples."""
        return self.my_share(self.global_rows(index, num_rows))

    def epoch_of(self, index: int, num_rows: int) -> int:
        return index // (num_rows // (self.config.batch_size * self.world_size))

    def _optimizer_step(self) -> tuple[float, float, int] | None:
        """One update from grad_accum_steps micro-batches: (loss, grad norm, tokens), or None
        when the loss or gradients are not finite (the weights are left untouched)."""
        c = self.config
        self.train_model.train()
        micro_batches = [{k: v.to(self.device, non_blocking=True) for k, v in
                          self.micro_batch(self.step * c.grad_accum_steps + m).items()}
                         for m in range(c.grad_accum_steps)]
        # Each micro-batch's mean loss is weighted by its share of the scored targets (masked
        # tokens, or examples), so k micro-batches give the gradient of one batch k times the
        # size: a plain mean of micro-batch means would over-weight the sparsely masked ones.
        counts = torch.stack([_scored(b["labels"]) for b in micro_batches]).float()
        total = counts.sum()
        if self.world_size > 1:  # DDP averages gradients over ranks: weight by the global count
            dist.all_reduce(total)
        weights = counts * self.world_size / total.clamp(min=1)
        total_loss = torch.zeros((), device=self.device)
        tokens = 0
        for micro, (batch, weight) in enumerate(zip(micro_batches, weights, strict=True)):
            tokens += int(batch["attention_mask"].sum()) if "attention_mask" in batch else \
                batch["input_ids"].numel()
            last = micro == c.grad_accum_steps - 1
            sync = contextlib.nullcontext() if last or self.world_size == 1 else \
                self.train_model.no_sync()
            with sync:
                with autocast(self.device, self.precision):
                    loss = self.train_model(**batch).loss * weight
                if not torch.isfinite(loss):
                    self.optimizer.zero_grad(set_to_none=True)
                    return None
                (self.scaler.scale(loss) if self.scaler else loss).backward()
            total_loss += loss.detach()
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        parameters = [p for p in self.model.parameters() if p.grad is not None]
        grad_norm = torch.nn.utils.clip_grad_norm_(
            parameters, c.grad_clip if c.grad_clip > 0 else float("inf"))
        if not torch.isfinite(grad_norm) and self.scaler is None:
            self.optimizer.zero_grad(set_to_none=True)
            return None
        if self.scaler:  # skips the update itself when fp16 gradients overflowed
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.world_size > 1:
            # Each rank holds world_size x (its masked tokens' loss sum) / (all ranks' masked
            # tokens): their average is the loss sum over every rank / the global token count,
            # the token-weighted loss one process would log, not a mean of rank means.
            dist.all_reduce(total_loss, op=dist.ReduceOp.AVG)
        return float(total_loss), float(grad_norm), tokens * self.world_size

    def run(self) -> Iterator[TrainEvent]:
        """start, step..., eval..., then always a final eval of the weights the run leaves
        (after any step) and one done | stopped | failed event carrying final_report()."""
        c = self.config
        start = time.perf_counter()
        first_step = self.step

        def event(kind, metrics=None, probes=None, message=""):
            return TrainEvent(kind, self.step, c.max_steps, time.perf_counter() - start,
                              metrics or {}, probes, message)

        yield event("start", {"precision": self.precision},
                    message=" ".join([f"training on {self.device} in {self.precision}",
                                      *self.notes]))
        last_eval = -1
        tokens_per_s = 0.0
        ending, message = "done", ""
        try:
            while self.step < c.max_steps:
                if self._stop.is_set():
                    ending, message = "stopped", f"stopped at step {self.step}"
                    break
                t0 = time.perf_counter()
                self.before_step()
                result = self._optimizer_step()
                if result is None:
                    ending, message = "failed", (
                        f"the loss became NaN or infinite at step {self.step + 1}; the weights "
                        f"are those of step {self.step}. Lower the learning rate "
                        f"({c.learning_rate:g}) or use fp32.")
                    break
                loss, grad_norm, tokens = result
                self.step += 1
                dt = time.perf_counter() - t0
                rate = tokens / dt
                # Smooth the rate; the first steps pay one-off warm-up costs.
                tokens_per_s = rate if self.step == first_step + 1 else \
                    0.8 * tokens_per_s + 0.2 * rate
                yield event("step", {"loss": loss, "lr": self.scheduler.get_last_lr()[0],
                                     "grad_norm": grad_norm, "tokens_per_s": tokens_per_s})
                if self.step % c.eval_every == 0 or self.step == c.max_steps:
                    metrics, probes = self.evaluate()
                    last_eval = self.step
                    yield event("eval", metrics, probes)
                if (c.output_dir and c.checkpoint_every and self.step % c.checkpoint_every == 0
                        and self.step < c.max_steps):
                    self.save_checkpoint(c.output_dir)
                    yield event("checkpoint", message=f"checkpoint written to {c.output_dir}")
            if self.step == 0:  # not one step taken: nothing to score
                yield event(ending, message=message)
                return
            if last_eval != self.step:
                metrics, probes = self.evaluate()
                yield event("eval", metrics, probes)
            report = self.final_report()
            if c.output_dir and ending == "done":
                self.save_checkpoint(c.output_dir)
            yield event(ending, report, message=message or f"finished {self.step} steps")
        except (TrainingError, ValueError, RuntimeError, OSError) as err:
            yield event("failed", message=f"{type(err).__name__}: {err}")

    # --- checkpoints -------------------------------------------------------------------------

    def save_checkpoint(self, directory: str | os.PathLike) -> Path | None:
        """Model (Hugging Face format) + optimizer, schedule, RNG and step, written to a
        temporary directory that then replaces `directory` in one rename. Rank 0 only."""
        if self.rank != 0:
            return None
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            self.model.save_pretrained(tmp)
            self.save_extra(tmp)
            state = {"optimizer": self.optimizer.state_dict(),
                     "scheduler": self.scheduler.state_dict(),
                     "torch_rng": torch.get_rng_state(), **self.extra_state()}
            if self.scaler:
                state["scaler"] = self.scaler.state_dict()
            if torch.cuda.is_available():
                state["cuda_rng"] = torch.cuda.get_rng_state_all()
            torch.save(state, tmp / OPTIMIZER_STATE_NAME)
            config = {k: v for k, v in dataclasses.asdict(self.config).items()}
            (tmp / TRAINER_STATE_NAME).write_text(json.dumps(
                {"step": self.step, "precision": self.precision, "config": config},
                indent=2, default=str) + "\n")
            old = directory.with_name(f".{directory.name}.old")
            if directory.exists():
                shutil.rmtree(old, ignore_errors=True)
                directory.rename(old)
            tmp.rename(directory)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return directory

    def load_training_state(self, directory: str | os.PathLike) -> None:
        """Restore optimizer, schedule, RNG and step from a checkpoint (model loaded already)."""
        directory = Path(directory)
        try:
            info = json.loads((directory / TRAINER_STATE_NAME).read_text())
        except (OSError, ValueError) as err:
            raise TrainingError(f"cannot resume from {directory}: {err}") from err
        try:
            state = torch.load(directory / OPTIMIZER_STATE_NAME, map_location="cpu",
                               weights_only=True)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        except (OSError, ValueError, KeyError, RuntimeError, EOFError,
                pickle.UnpicklingError) as err:  # torch's messages run to a page: one line
            raise TrainingError(f"cannot resume from {directory}: {OPTIMIZER_STATE_NAME} is "
                                f"missing, truncated or not this run's ({type(err).__name__})"
                                ) from err
        if self.scaler and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.load_extra_state(state)
        self.step = int(info["step"])


def recover_checkpoint(directory: str | os.PathLike) -> Path | None:
    """Make `directory` the newest complete checkpoint again after a crash mid-save, and clear
    the save's leftovers; returns it, or None when there is no checkpoint at all.

    A save writes `.<name>.<random>/` (trainer_state.json last, so its presence means complete),
    moves the previous checkpoint to `.<name>.old/` and renames the new one into place. A crash
    between those two renames leaves no `directory`, with complete checkpoints beside it."""
    directory = Path(directory)
    leftovers = [p for p in directory.parent.glob(f".{directory.name}.*") if p.is_dir()]

    def step(path: Path) -> int:
        try:
            return int(json.loads((path / TRAINER_STATE_NAME).read_text())["step"])
        except (OSError, ValueError, KeyError, TypeError):
            return -1  # incomplete or unreadable: never restored

    if step(directory) < 0:
        complete = [p for p in leftovers if step(p) >= 0]
        if complete:
            newest = max(complete, key=step)
            if directory.exists():  # an empty or half-written folder in the way
                shutil.rmtree(directory)
            newest.rename(directory)
    for stray in leftovers:
        shutil.rmtree(stray, ignore_errors=True)
    return directory if step(directory) >= 0 else None


def run_to_end(trainer: Trainer, on_event=None) -> TrainEvent:
    """Consume a run, optionally calling `on_event` for each event; return the last one."""
    last = None
    for last in trainer.run():
        if on_event:
            on_event(last)
    return last
