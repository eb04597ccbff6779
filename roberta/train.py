"""Pretraining and fine-tuning loops that yield metric events and can be stopped.

`Pretrainer(...).run()` and `Finetuner(...).run()` are generators of `TrainEvent`s: the command
line prints them, the app draws them. Setting the stop flag (`trainer.stop()`) ends the run at
the next step with a usable model; a NaN/inf loss ends it with a "failed" event before the bad
update touches the weights. Checkpoints are Hugging Face model directories plus the optimizer,
schedule, RNG and step, written atomically, so a resumed run continues the same curve.

Data order is a pure function of (seed, step): batch k of epoch e is rows of a permutation seeded
by (seed, e). With the masker's generator state saved, resuming replays exactly what an
uninterrupted run would have done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import pickle  # only for its error type: checkpoints load with weights_only
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from .baselines import fit_tfidf, macro_f1, scores, unigram_baseline
from .data import ClassificationData, PackedSequences, pack_documents, split_documents
from .inference import FillMaskResult, encode_windows, fill_mask, mean_by_text
from .init import position_dims
from .masking import IGNORE_INDEX, DynamicMasker, MaskingConfig, StaticMaskedDataset
from .model import RobertaForMaskedLM, RobertaForSequenceClassification
from .tokenizer import RobertaTokenizer

TRAINER_STATE_NAME = "trainer_state.json"
OPTIMIZER_STATE_NAME = "optimizer.pt"  # tensors, ints and floats only: read with weights_only

DEFAULT_PROBES = (
    "The government said the new <mask> would cost millions.",
    "This coffee tastes <mask> and I will buy it again.",
    "The film was a huge <mask> at the box office.",
    "I gave my dog a <mask> and he loved it.",
)


class TrainingError(ValueError):
    """Impossible settings or data for a run, in a plain sentence."""


# --- settings --------------------------------------------------------------------------------

@dataclass
class TrainConfig:
    max_steps: int = 1000
    batch_size: int = 16
    learning_rate: float = 1e-3
    warmup_steps: int = 50
    min_lr_ratio: float = 0.0  # linear decay from the peak down to this fraction at max_steps
    weight_decay: float = 0.01
    adam_betas: tuple[float, float] = (0.9, 0.98)
    adam_eps: float = 1e-6
    grad_clip: float = 1.0  # 0 disables clipping
    grad_accum_steps: int = 1
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    device: str = "auto"  # auto | cpu | cuda | mps | cuda:N
    seed: int = 0
    eval_every: int = 50
    checkpoint_every: int = 0  # 0: only at the end (when output_dir is set)
    output_dir: str | None = None

    def validate(self) -> None:
        for name in ("max_steps", "batch_size", "grad_accum_steps", "eval_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise TrainingError(f"{name} must be at least 1 (a whole number), "
                                    f"got {getattr(self, name)!r}")
        if self.learning_rate is not None and not 0 < self.learning_rate < 1:
            raise TrainingError(f"learning_rate must be above 0 and below 1, got "
                                f"{self.learning_rate:g}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise TrainingError(f"warmup_steps must be >= 0, got {self.warmup_steps!r}")
        if not 0 <= self.seed < 2**31:
            raise TrainingError(f"seed must be between 0 and {2**31 - 1}, got {self.seed!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise TrainingError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        if self.weight_decay < 0 or self.grad_clip < 0 or self.checkpoint_every < 0:
            raise TrainingError("weight_decay, grad_clip and checkpoint_every must be >= 0")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise TrainingError(f"precision must be auto, fp32, bf16 or fp16, "
                                f"got {self.precision!r}")


def default_learning_rate(hidden_size: int) -> float:
    """The peak pretraining rate a model learns at from the structured start: 2e-3 at 128 wide,
    scaled as 1/width (Adam's updates to a hidden matrix grow with its width). Measured with
    bench/plateau.py: micro leaves the plateau at 2e-3; tiny (256 wide) stays on it at 2e-3 and
    leaves it at 1e-3; mini (384) leaves it at 6.7e-4."""
    return 2e-3 * min(1.0, 128 / hidden_size)


def default_warmup(max_steps: int) -> int:
    """150 warmup steps, or a tenth of a shorter run. With 40, some seeds of micro and tiny sat
    on the plateau hundreds of steps longer, even from the structured start (bench/plateau.py)."""
    return min(150, max_steps // 10)


@dataclass
class PretrainConfig(TrainConfig):
    learning_rate: float | None = None  # None: default_learning_rate for the model's width
    warmup_steps: int | None = None  # None: default_warmup for the run's length
    eval_every: int = 100
    seq_length: int = 128
    validation_fraction: float = 0.02
    packing: str = "full_sentences"  # or doc_sentences (RoBERTa paper, section 4.2)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    static_masking: bool = False  # the paper's baseline: masks fixed once, duplicated copies
    static_copies: int = 10
    eval_sequences: int = 256  # validation sequences scored at every evaluation
    probes: tuple[str, ...] = DEFAULT_PROBES
    # Steps the position embeddings stay fixed, -1 for the whole run. A structured start
    # (roberta/init.py) needs its position rows held while the rest learns to use them.
    hold_positions_steps: int = 0

    @staticmethod
    def hold_for(init: str, steps: int = -1) -> int:
        """hold_positions_steps for a start ("structured" or "roberta"): only the structured
        start's position rows are held (`steps`, -1 the whole run); RoBERTa's random positions
        must learn from step 0."""
        return steps if init == "structured" else 0

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.seq_length, int) or self.seq_length < 8:
            raise TrainingError(f"seq_length must be an integer >= 8, got {self.seq_length!r}")
        if not 0 < self.validation_fraction < 0.5:
            raise TrainingError("validation_fraction must be in (0, 0.5)")
        if self.static_copies < 1 or self.eval_sequences < 1:
            raise TrainingError("static_copies and eval_sequences must be positive")
        if not isinstance(self.hold_positions_steps, int) or self.hold_positions_steps < -1:
            raise TrainingError(f"hold_positions_steps must be -1 (the whole run), 0 or a "
                                f"number of steps, got {self.hold_positions_steps!r}")

    def for_width(self, hidden_size: int) -> PretrainConfig:
        """This config with its defaults filled in for a model `hidden_size` wide."""
        lr, warmup = self.learning_rate, self.warmup_steps
        return dataclasses.replace(
            self, learning_rate=default_learning_rate(hidden_size) if lr is None else lr,
            warmup_steps=default_warmup(self.max_steps) if warmup is None else warmup)


# A new classifier's dropout, whatever its masked LM was pretrained with (the embedded one: none).
FINETUNE_DROPOUT = 0.1
# Scoring a classifier holds at most this many full-length rows' worth of tokens per forward pass.
SCORE_ROWS = 64


@dataclass
class FinetuneConfig(TrainConfig):
    max_steps: int = 300
    batch_size: int = 32
    learning_rate: float = 2e-4
    warmup_steps: int = 30
    seq_length: int = 128
    validation_fraction: float = 0.1
    eval_every: int = 25
    # Batches of texts of like length (drawn at random within groups of 64 batches' worth):
    # a batch pads to its longest text, and one review among 31 tweets pads them all.
    group_by_length: bool = True


# --- events ----------------------------------------------------------------------------------

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


# --- devices and precision -------------------------------------------------------------------

def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise TrainingError(f"unknown device {name!r}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device 'cuda' was asked for but CUDA is not available")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise TrainingError("device 'mps' was asked for but MPS is not available")
    return device


def cpu_supports_bf16() -> bool:
    """bf16 matmuls are only fast on CPUs with native bf16 (AVX512-BF16 or AMX); elsewhere
    they are emulated and ~50x slower than fp32 (measured on an AVX2-only EPYC)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if device.type == "cpu" and cpu_supports_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise TrainingError("fp16 needs a CUDA device (with a grad scaler); use bf16 or fp32")
    return precision


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _scored(labels: torch.Tensor) -> torch.Tensor:
    """How many targets a batch's loss averages over: labelled tokens, or examples."""
    return (labels != IGNORE_INDEX).sum() if labels.dim() > 1 else torch.tensor(labels.numel())


# Bytes a training step holds, conservatively (every activation counted at fp32 even under
# bf16 autocast, which halves most of them). Calibrated against measured peaks by
# `python -m bench.request_memory` (its train-* and finetune-* cases; the figures are in the
# README's settings table): every measured peak was below the estimate, by 1.4-2.2x.
BYTES_PER_PARAMETER = 20  # fp32 weights, grads, AdamW's two moments, + its foreach temporaries
# Per layer and token, in hidden-width units kept for backward: the layer input, q/k/v, the
# attention output, two dense outputs with their dropout masks, two residual sums and two
# LayerNorms' inputs/outputs; and in FFN-width units: the FFN matmul's output and its GELU.
HIDDEN_SAVES_PER_LAYER = 16
FFN_SAVES_PER_LAYER = 3
# Per layer and attention weight (batch × heads × T²): scores, softmax output, dropout mask,
# dropped probabilities (the CPU's explicit attention path; CUDA's fused kernel keeps fewer).
ATTENTION_SAVES_PER_LAYER = 4
# Per scored row and vocabulary entry: the logits, their fp32 copy, softmax and its gradient.
LOGIT_SAVES = 4
# Whatever the sizes: the allocator's arenas, oneDNN's bf16 kernels and their weight caches.
FIXED_OVERHEAD_BYTES = 64 * 2**20


def training_memory_bytes(config, batch_size: int, seq_length: int, *,
                          task: str = "mlm", mask_rate: float = 0.15) -> int:
    """A conservative estimate of one training step's peak memory in bytes: the parameters'
    state (weights, gradients, AdamW moments) plus the activations kept for backward.

    `task` "mlm" (the LM head scores only the masked rows: `mask_rate` of the tokens) or
    "classify" (a small head on <s>). Counted from the config alone, so a run can be refused
    before anything is allocated.
    """
    if task not in ("mlm", "classify"):
        raise ValueError(f"task must be mlm or classify, got {task!r}")
    C, F, L = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    tokens = batch_size * seq_length
    if task == "mlm":
        parameters = RobertaForMaskedLM.parameter_count(config)
        scored = math.ceil(tokens * mask_rate)
        head = scored * (config.vocab_size * LOGIT_SAVES + 4 * C) + tokens * C
    else:
        parameters = RobertaForSequenceClassification.parameter_count(config)
        head = batch_size * 4 * C
    per_layer = (tokens * (HIDDEN_SAVES_PER_LAYER * C + FFN_SAVES_PER_LAYER * F)
                 + ATTENTION_SAVES_PER_LAYER * batch_size * config.num_attention_heads
                 * seq_length * seq_length)
    embeddings = 4 * tokens * C
    activations = 4 * (L * per_layer + embeddings + head)  # 4 bytes a value (fp32)
    return FIXED_OVERHEAD_BYTES + BYTES_PER_PARAMETER * parameters + activations


def _world() -> tuple[int, int]:
    """(rank, world size): (0, 1) unless running under torchrun with a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


# --- the shared engine -----------------------------------------------------------------------

class Trainer:
    """Optimizer, schedule, precision, the step (accumulation, clipping, NaN guard), the loop,
    the stop flag and checkpoints. Subclasses supply batches, evaluation and the final report."""

    config: TrainConfig

    def __init__(self, model: torch.nn.Module, config: TrainConfig):
        config.validate()
        self.config = config
        self.device = pick_device(config.device)
        self.precision = resolve_precision(config.precision, self.device)
        self.rank, self.world_size = _world()
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
                    message=f"training on {self.device} in {self.precision}")
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


# --- pretraining -----------------------------------------------------------------------------

@dataclass
class PretrainingData:
    train: PackedSequences
    validation: PackedSequences


def prepare_pretraining_data(texts: Sequence[str], tokenizer: RobertaTokenizer, seq_length: int,
                             validation_fraction: float = 0.02, seed: int = 0,
                             packing: str = "full_sentences",
                             repeats: Mapping[str, int] | None = None) -> PretrainingData:
    """Split by document (never inside one), tokenize, and pack into sequences.

    `repeats` gives some training documents extra copies (document -> copies, 1 by default), to
    weigh a small source against a large one; held-out documents are never copied, so the split
    and the validation figures are the same with or without it."""
    train_docs, val_docs = split_documents(list(texts), validation_fraction, seed)
    if not train_docs or not val_docs:
        raise TrainingError(f"need at least 2 documents to hold some out for validation, "
                            f"got {len(texts)}")
    if repeats and min(repeats.values()) < 1:
        raise TrainingError("every document needs at least 1 copy")
    return PretrainingData(
        pack_with_copies(tokenizer, train_docs, repeats or {}, seq_length, packing),
        pack_ids(tokenizer, tokenizer.encode_batch_ids(val_docs), seq_length, packing))


def pack_with_copies(tokenizer: RobertaTokenizer, docs: Sequence[str],
                     copies: Mapping[str, int], seq_length: int,
                     packing: str = "full_sentences") -> PackedSequences:
    """`docs` packed with `copies[doc]` copies each (1 when absent), in whole rounds: a packed
    sequence holding a document twice would teach copying the earlier copy, not English."""
    counts = [copies.get(doc, 1) for doc in docs]
    ids = tokenizer.encode_batch_ids(docs)  # each document tokenized once; its copies reuse it
    ids = [x for r in range(max(counts, default=1)) for x, n in zip(ids, counts, strict=True)
           if n > r]
    return pack_ids(tokenizer, ids, seq_length, packing)


def pack_ids(tokenizer: RobertaTokenizer, ids: Sequence[Sequence[int]], seq_length: int,
             packing: str = "full_sentences") -> PackedSequences:
    """Token-id documents packed into sequences with the tokenizer's <s>, </s> and <pad>."""
    return pack_documents(ids, seq_length, mode=packing, bos_id=tokenizer.bos_token_id,
                          eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id)


class PositionHold:
    """Keeps a model's position information fixed for the first `steps` steps (-1: all): the
    position embeddings, and the word embeddings' dims that a structured start reserved for
    position (roberta/init.py says why). A parameter without requires_grad gets no gradient and
    AdamW skips it (no update, no weight decay); the reserved dims get a zero gradient, so Adam
    leaves them at 0. Released, both train from then on."""

    def __init__(self, model: RobertaForMaskedLM, steps: int):
        embeddings = model.roberta.embeddings
        self.steps = steps
        self.positions = embeddings.position_embeddings.weight
        self.words = embeddings.word_embeddings.weight
        self.dims = position_dims(model.config)
        self._hook = None

    def holding(self, step: int) -> bool:
        return self.steps == -1 or step < self.steps

    def update(self, step: int) -> None:
        held = self.holding(step)
        self.positions.requires_grad_(not held)
        if held and self._hook is None and self.dims:
            keep = torch.ones(self.words.size(1))  # (C,); the model may move to a GPU later
            keep[:self.dims] = 0
            self._hook = self.words.register_hook(
                lambda grad: grad * keep.to(device=grad.device, dtype=grad.dtype))
        elif not held:
            self.release()

    def release(self) -> None:
        """Leave the model as it was given: everything trainable, no hook."""
        self.positions.requires_grad_(True)
        if self._hook is not None:
            self._hook.remove()
            self._hook = None


class Pretrainer(Trainer):
    """Masked-language-model pretraining with dynamic (or static) masking."""

    config: PretrainConfig

    def __init__(self, model: RobertaForMaskedLM, tokenizer: RobertaTokenizer,
                 data: PretrainingData, config: PretrainConfig):
        config = config.for_width(model.config.hidden_size)
        config.validate()
        if model.config.vocab_size < tokenizer.vocab_size:
            raise TrainingError(f"the model's vocabulary ({model.config.vocab_size}) is smaller "
                                f"than the tokenizer's ({tokenizer.vocab_size})")
        if data.train.input_ids.size(1) > model.config.max_sequence_length:
            raise TrainingError(f"sequences of {data.train.input_ids.size(1)} tokens do not fit "
                                f"the model's {model.config.max_sequence_length} positions")
        if config.hold_positions_steps > 0 and _world()[1] > 1:
            raise TrainingError("positions held for some steps and then released cannot run "
                                "data-parallel (DDP fixes the trainable set at the start): "
                                "hold them for the whole run (-1) or not at all (0)")
        self._position_hold = PositionHold(model, config.hold_positions_steps)
        self._position_hold.update(step=0)  # before DDP wraps the model
        super().__init__(model, config)
        if len(data.train) < config.batch_size * self.world_size:
            raise TrainingError(f"the corpus packs into {len(data.train)} training sequences, "
                                f"fewer than one batch of {config.batch_size * self.world_size}:"
                                f" add text or lower the batch size")
        self.tokenizer = tokenizer
        self.data = data
        # One masking stream on every rank: each masks the whole global batch and keeps its own
        # rows, so N processes train on exactly the masks one process would draw.
        self.masker = self._masker(seed=config.seed * 7919)
        self._validation = self._validation_batches()
        self.static = None
        if config.static_masking:  # masks drawn once, up front, static_copies per sequence
            self.static = StaticMaskedDataset(
                data.train.input_ids, data.train.attention_mask, n_copies=config.static_copies,
                **self._masking_args(), seed=config.seed * 7919)

    def before_step(self) -> None:
        self._position_hold.update(self.step)

    def run(self) -> Iterator[TrainEvent]:
        try:
            yield from super().run()
        finally:  # the model outlives the run (fine-tuning, export): no frozen rows, no hook
            self._position_hold.release()

    def _masking_args(self) -> dict[str, Any]:
        tok = self.tokenizer
        return dict(mask_token_id=tok.mask_token_id, vocab_size=tok.vocab_size,
                    special_ids=tok.special_ids, config=self.config.masking,
                    word_start=tok.word_start_mask() if self.config.masking.whole_word else None)

    def _masker(self, seed: int) -> DynamicMasker:
        return DynamicMasker(**self._masking_args(), seed=seed)

    def _validation_batches(self) -> list[dict[str, torch.Tensor]]:
        """Validation masks are drawn once, so every evaluation scores the same predictions;
        in batches of the global batch size, so N processes score what one process would."""
        masker = self._masker(seed=1_234_567)
        validation = self.data.validation
        n = min(len(validation), self.config.eval_sequences)
        # Spread over the whole held-out set when only part is scored: its documents keep the
        # corpus order, so the first n of the recipe's would all be IMDB reviews.
        rows = torch.linspace(0, len(validation) - 1, n).round().long()
        size = self.config.batch_size * self.world_size
        batches = []
        for start in range(0, n, size):
            ids = validation.input_ids[rows[start:start + size]]
            mask = validation.attention_mask[rows[start:start + size]]
            masked = masker(ids, attention_mask=mask)
            batches.append({"input_ids": masked.input_ids, "attention_mask": mask,
                            "labels": masked.labels})
        return batches

    def micro_batch(self, index: int) -> dict[str, torch.Tensor]:
        train = self.data.train
        rows = self.global_rows(index, len(train))
        ids, mask = train.input_ids[rows], train.attention_mask[rows]
        if self.static is not None:  # the paper's baseline: this epoch's fixed copy
            masked = self.static.batch(rows, epoch=self.epoch_of(index, len(train)))
        else:
            masked = self.masker(ids, attention_mask=mask)
        mask = self.my_share(mask)
        batch = {"input_ids": self.my_share(masked.input_ids),
                 "labels": self.my_share(masked.labels)}
        if not bool(mask.all()):  # packed sequences are usually full: skip the mask then
            batch["attention_mask"] = mask
        return batch

    def evaluate(self) -> tuple[dict[str, float], list[FillMaskResult]]:
        totals = self.validation_totals()
        loss = totals["loss_sum"] / max(totals["scored"], 1)
        # Scored positions that kept their own token (10%) can be copied, so a model that has
        # learned nothing from context already scores ~10% overall; the <mask>-only figure
        # shows what it has learned from the words around.
        metrics = {"val_loss": loss, "val_perplexity": math.exp(min(loss, 50)),
                   "val_accuracy": totals["correct"] / max(totals["scored"], 1),
                   "val_mask_accuracy": totals["mask_correct"] / max(totals["mask_shown"], 1)}
        probes = [fill_mask(self.model, self.tokenizer, p) for p in self.config.probes]
        return metrics, probes

    @torch.no_grad()
    def validation_totals(self) -> dict[str, float]:
        """The sums behind evaluate()'s rates (so several validation sets can be pooled): loss
        summed over scored tokens, scored tokens and hits, tokens shown as <mask> and hits."""
        self.model.eval()
        loss_sum, correct, count = 0.0, 0, 0
        masked_correct, masked_count = 0, 0  # where the input showed <mask>: context alone
        for batch in self._validation:
            batch = {k: v.to(self.device) for k, v in batch.items()}
            with autocast(self.device, self.precision):
                out = self.model(**batch)
            scored = batch["labels"] != IGNORE_INDEX
            targets = batch["labels"][scored]
            hits = out.logits.argmax(-1) == targets
            shown_mask = batch["input_ids"][scored] == self.tokenizer.mask_token_id
            loss_sum += float(out.loss) * targets.numel()
            correct += int(hits.sum())
            count += targets.numel()
            masked_correct += int(hits[shown_mask].sum())
            masked_count += int(shown_mask.sum())
        return {"loss_sum": loss_sum, "scored": count, "correct": correct,
                "mask_shown": masked_count, "mask_correct": masked_correct}

    def unigram_baseline(self) -> dict[str, float]:
        """The context-free baseline on exactly the validation predictions evaluate() scores."""
        targets = torch.cat([b["labels"][b["labels"] != IGNORE_INDEX] for b in self._validation])
        train_ids = self.data.train.input_ids[self.data.train.attention_mask.bool()]
        return unigram_baseline(train_ids, targets, self.tokenizer.special_ids,
                                self.tokenizer.vocab_size)

    def final_report(self) -> dict[str, float]:
        baseline = self.unigram_baseline()
        return {"unigram_accuracy": baseline["accuracy"],
                "unigram_perplexity": baseline["perplexity"]}

    def extra_state(self) -> dict[str, Any]:
        return {"masker": self.masker.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.masker.load_state_dict(state["masker"])

    @classmethod
    def resume(cls, directory: str | os.PathLike, data: PretrainingData,
               config: PretrainConfig) -> Pretrainer:
        model = RobertaForMaskedLM.from_pretrained(directory)
        tokenizer = RobertaTokenizer.from_pretrained(directory)
        trainer = cls(model, tokenizer, data, config)
        trainer.load_training_state(directory)
        return trainer


# --- fine-tuning -----------------------------------------------------------------------------

def classifier_from(encoder_model: torch.nn.Module, label_names: Sequence[str],
                    dropout: float | None = None) -> RobertaForSequenceClassification:
    """A classifier for `label_names` whose encoder starts as a copy of `encoder_model`'s (a
    masked LM, or another classifier); the head is new, drawn from torch's global RNG.
    `dropout` replaces both dropout rates (None: keep the model's)."""
    extra = {k: v for k, v in encoder_model.config.extra.items() if k != "architectures"}
    rates = {} if dropout is None else dict(hidden_dropout_prob=dropout,
                                            attention_probs_dropout_prob=dropout)
    config = dataclasses.replace(
        encoder_model.config, num_labels=len(label_names), id2label=dict(enumerate(label_names)),
        label2id=None, extra=extra, **rates)
    classifier = RobertaForSequenceClassification(config)
    # A copy: the model it came from is left as it was.
    classifier.roberta.load_state_dict(encoder_model.roberta.state_dict())
    return classifier


def finetune_split(data: ClassificationData, config: FinetuneConfig) -> ClassificationData:
    """What a Finetuner trains on ("train") and picks its best step with ("test"): the data's
    own validation texts where it has them, else `validation_fraction` of its training texts."""
    from .data import train_test_split_classification
    if data.validation_texts:
        return ClassificationData(data.train_texts, data.train_labels, data.validation_texts,
                                  data.validation_labels, label_names=data.label_names)
    return train_test_split_classification(
        ClassificationData(data.train_texts, data.train_labels, label_names=data.label_names),
        config.validation_fraction, config.seed)


@torch.no_grad()
def text_logits(model: RobertaForSequenceClassification,
                windows: tuple[dict[str, torch.Tensor], torch.Tensor], n_texts: int,
                max_length: int, device: torch.device | str = "cpu",
                precision: str = "fp32") -> torch.Tensor:
    """(n_texts, K) logits of texts read as classify() reads them: `windows` is
    encode_windows' (rows, the text of each row), a text's logits the mean of its rows'. Rows
    go shortest-padding-first in batches of at most SCORE_ROWS full-length rows' worth of
    tokens: 64 reviews at a time, or a few hundred tweets (per-batch overhead, not arithmetic,
    is what short texts cost)."""
    encoded, owner = windows
    device = torch.device(device)
    model.eval()
    lengths = encoded["attention_mask"].sum(1)
    order = torch.argsort(lengths, descending=True)
    budget = SCORE_ROWS * max_length
    logits = torch.empty(len(order), model.config.num_labels)
    start = 0
    while start < len(order):
        width = int(lengths[order[start]])  # the longest left: this batch's padded width
        rows = order[start:start + max(1, budget // max(1, width))]
        with autocast(device, precision):
            out = model(encoded["input_ids"][rows, :width].to(device),
                        attention_mask=encoded["attention_mask"][rows, :width].to(device))
        logits[rows] = out.logits.float().cpu()
        start += len(rows)
    return mean_by_text(logits, owner, n_texts)


LENGTH_GROUP = 64  # batches whose texts are sorted by length together (group_by_length)
LENGTH_BUCKET = 32  # tokens: texts this close in length count as alike


class Finetuner(Trainer):
    """Sequence classification: validation accuracy and macro-F1 as it trains, the best
    validation checkpoint kept, then test scores beside the TF-IDF baseline on the same split.

    `tfidf`: that baseline fitted on finetune_split's "train" (baselines.fit_tfidf), or a Future
    of it; None: fitted when the final report needs it."""

    config: FinetuneConfig

    def __init__(self, model: RobertaForSequenceClassification, tokenizer: RobertaTokenizer,
                 data: ClassificationData, config: FinetuneConfig, tfidf: Any = None):
        config.validate()
        if model.config.num_labels != data.num_labels:
            raise TrainingError(f"the model has {model.config.num_labels} classes, the data "
                                f"{data.num_labels}")
        super().__init__(model, config)
        self.tokenizer = tokenizer
        self.data = data
        self._tfidf = tfidf
        split = finetune_split(data, config)  # its "test" part is our validation set
        self.train_split, self.val_split = split.train_texts, split.test_texts
        if len(split.train_texts) < config.batch_size:
            raise TrainingError(f"{len(split.train_texts)} training examples are fewer than "
                                f"one batch of {config.batch_size}")
        max_length = min(config.seq_length, model.config.max_sequence_length)
        self.max_length = max_length
        self._train_labels = torch.tensor(split.train_labels)
        # Scored as classify() reads a text: every window of a long one (inference.py).
        self._val = (encode_windows(tokenizer, split.test_texts, max_length), split.test_labels)
        self._test = (encode_windows(tokenizer, data.test_texts, max_length), data.test_labels) \
            if data.test_texts else None
        self.best: tuple[float, int, dict[str, torch.Tensor]] | None = None

    @functools.cached_property
    def _train(self) -> dict[str, torch.Tensor]:
        """The training split, tokenized when training first needs it: scoring a classifier
        and fitting the TF-IDF baseline (the model card's figures) never do, and tokenizing
        IMDB's ~42,000 training reviews takes minutes on a small CPU. A long text trains on its
        first window: drawing any of its windows instead (as classify() reads it) was measured
        and did not pay (README, the classifier)."""
        return self.tokenizer(self.train_split, max_length=self.max_length)

    def epoch_order(self, num_rows: int, per_batch: int, generator: torch.Generator
                    ) -> torch.Tensor:
        """A random order, then (group_by_length) each run of LENGTH_GROUP batches' worth of it
        sorted by length bucket (LENGTH_BUCKET tokens wide; random within a bucket) and cut
        into batches, the whole batches shuffled: a batch pads little, and within a bucket it
        is still a random draw (sorting by exact length would make a batch of "great" reviews
        and one of "awful" ones wherever a label changes the length). On the recipe's mix
        (reviews of ~230 tokens beside tweets of ~25) a batch's padded width fell from ~256
        tokens to about its texts' own."""
        order = torch.randperm(num_rows, generator=generator)
        if not self.config.group_by_length:
            return order
        buckets = self._train["attention_mask"].sum(1) // LENGTH_BUCKET
        grouped = torch.cat([chunk[torch.argsort(buckets[chunk], stable=True)]
                             for chunk in order.split(per_batch * LENGTH_GROUP)])
        whole = num_rows // per_batch * per_batch
        batches = grouped[:whole].view(-1, per_batch)
        shuffled = batches[torch.randperm(len(batches), generator=generator)].flatten()
        return torch.cat([shuffled, grouped[whole:]])

    def micro_batch(self, index: int) -> dict[str, torch.Tensor]:
        rows = self.rows_for(index, len(self._train_labels))
        mask = self._train["attention_mask"][rows]
        width = int(mask.sum(1).max())  # trim the padding this batch does not need
        return {"input_ids": self._train["input_ids"][rows, :width],
                "attention_mask": mask[:, :width], "labels": self._train_labels[rows]}

    def score(self, windows: tuple[dict[str, torch.Tensor], torch.Tensor],
              labels: Sequence[int]) -> dict[str, float]:
        """Accuracy, mean loss and macro-F1 of texts read as classify() reads them: `windows`
        is encode_windows' (rows, the text of each row)."""
        labels_t = torch.tensor(list(labels))
        per_text = self.text_logits(windows, len(labels_t))
        predictions = per_text.argmax(-1).tolist()
        accuracy = sum(int(p == y) for p, y in zip(predictions, labels, strict=True))
        return {"accuracy": accuracy / len(predictions),
                "loss": float(torch.nn.functional.cross_entropy(per_text, labels_t)),
                "macro_f1": macro_f1(predictions, labels, self.data.num_labels)}

    def text_logits(self, windows: tuple[dict[str, torch.Tensor], torch.Tensor],
                    n_texts: int) -> torch.Tensor:
        return text_logits(self.model, windows, n_texts, self.max_length, self.device,
                           self.precision)

    def validation_logits(self) -> tuple[torch.Tensor, torch.Tensor]:
        """((n, K) logits, (n,) labels) of the validation texts, read as classify() reads them."""
        windows, labels = self._val
        return self.text_logits(windows, len(labels)), torch.tensor(list(labels))

    def test_scores(self) -> dict[str, float]:
        if self._test is None:
            raise TrainingError("this task has no test set")
        return self.score(*self._test)

    def evaluate(self) -> tuple[dict[str, float], None]:
        scores = self.score(*self._val)
        if self.best is None or scores["accuracy"] > self.best[0]:
            self.best = (scores["accuracy"], self.step,
                         {k: v.detach().clone() for k, v in self.model.state_dict().items()})
        return {f"val_{k}": v for k, v in scores.items()}, None

    @property
    def train_labels(self) -> list[int]:
        """The labels of `train_split`."""
        return self._train_labels.tolist()

    def baseline(self) -> dict[str, float]:
        """The TF-IDF model scored on the test set (or on validation when there is no test
        set)."""
        if self._tfidf is None:
            self._tfidf = fit_tfidf(self.train_split, self.train_labels)
        tfidf = self._tfidf.result() if isinstance(self._tfidf, Future) else self._tfidf
        test_texts, test_labels = (self.data.test_texts, self.data.test_labels) if \
            self._test else (self.val_split, self._val[1])
        return scores(tfidf.predict(list(test_texts)).tolist(), test_labels,
                      self.data.num_labels)

    # A checkpoint carries the best validation step so far, so a resumed run still ends on the
    # best weights of the whole run, not of the part after the resume.
    def extra_state(self) -> dict[str, Any]:
        if self.best is None:
            return {}
        accuracy, step, weights = self.best
        return {"best": {"accuracy": accuracy, "step": step, "weights": weights}}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        best = state.get("best")
        self.best = None if best is None else (best["accuracy"], best["step"], best["weights"])

    @classmethod
    def resume(cls, directory: str | os.PathLike, data: ClassificationData,
               config: FinetuneConfig, tfidf: Any = None) -> Finetuner:
        """The fine-tuning whose checkpoint is in `directory`, ready to go on from its step."""
        model = RobertaForSequenceClassification.from_pretrained(directory)
        names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        if names != list(data.label_names):
            raise TrainingError(f"the checkpoint in {directory} classifies {names}, the data "
                                f"{list(data.label_names)}: resume it on the data it began with")
        trainer = cls(model, RobertaTokenizer.from_pretrained(directory), data, config, tfidf)
        trainer.load_training_state(directory)
        return trainer

    def final_report(self) -> dict[str, float]:
        """Restore the best validation checkpoint, then score it on the test set."""
        report: dict[str, float] = {}
        if self.best is not None:
            self.model.load_state_dict(self.best[2])
            report["best_step"] = self.best[1]
            report["best_val_accuracy"] = self.best[0]
        if self._test is not None:
            report.update({f"test_{k}": v for k, v in self.test_scores().items()})
        report.update({f"baseline_{k}": v for k, v in self.baseline().items()})
        return report
