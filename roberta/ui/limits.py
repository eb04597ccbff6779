"""Limits that keep a shared app alive when many visitors train at once.

A hosted Space has two CPU cores for everybody, so training runs (pretraining and fine-tuning
alike) take turns: at most `max_concurrent_runs` run at once, the others wait in a first-come
queue and are told their place. Steps, model size, batch size, run time and uploads are capped
too, each refusal a plain sentence saying what to change.

Every limit can be set by an environment variable (read at call time, so a test or a Space's
settings page can change it without touching code):

    ROBERTA_LAB_MAX_TRAINING_RUNS   training runs at once            (CPU host: 1, GPU host: 2)
    ROBERTA_LAB_MAX_TRAINING_QUEUE  runs allowed to wait for a turn  (8)
    ROBERTA_LAB_MAX_STEPS           optimizer steps per run          (CPU: 5,000, GPU: 50,000)
    ROBERTA_LAB_MAX_PARAMETERS      model parameters, e.g. 40M       (CPU: 40M, GPU: 400M)
    ROBERTA_LAB_MAX_BATCH_TOKENS    batch size × sequence length     (CPU: 16,384, GPU: 262,144)
    ROBERTA_LAB_MAX_REQUEST_MB      estimated peak megabytes of one training run's step
                                    (training_memory_bytes)          (1,024)
    ROBERTA_LAB_MAX_RUN_SECONDS     wall-clock seconds per run       (CPU: 900, GPU: 3,600)
    ROBERTA_LAB_MAX_UPLOAD_MB       megabytes per upload, all files  (20)
    ROBERTA_LAB_MAX_SESSION_MODELS  models one browser session keeps (6; the oldest goes first)
    ROBERTA_LAB_MAX_MODELS_MB       megabytes of visitors' models the host holds, all sessions
                                    together                         (CPU: 2,000, GPU: 8,000)
    ROBERTA_LAB_MAX_CSV_ROWS        rows of a fine-tuning CSV        (20,000)
    ROBERTA_LAB_MAX_ATTENTION_VALUES  attention weights one answer computes and sends,
                                    layers × heads × tokens²         (2M)
    ROBERTA_LAB_MAX_IMPORT_LAYERS   layers of an imported model      (48)
    ROBERTA_LAB_MAX_IMPORT_GFLOPS   GFLOPs of one forward pass over an imported model's longest
                                    window (roberta.import_checks)   (CPU: 20, GPU: 500)
    ROBERTA_LAB_MAX_REQUEST_GFLOPS  GFLOPs of an imported model's heaviest request (a
                                    classifier's long-text /classify) (CPU: 800, GPU: 50,000)
    ROBERTA_LAB_MAX_VOCAB           tokens in an imported vocabulary (131,072)
    ROBERTA_LAB_HEAVY_GFLOPS        a visitor's model whose window costs more is a large model:
                                    its requests take turns (heavy_lane) (CPU: 4, GPU: 100)
    ROBERTA_LAB_MAX_HEAVY_REQUESTS  requests on large models at once, host-wide, as many
                                    waiting; slots sized at start    (CPU: 1, GPU: 2)
An import is also refused when its heaviest request would need more than
ROBERTA_LAB_MAX_REQUEST_MB (weights and activations), or its window is under 8 tokens.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

ENV_MAX_RUNS = "ROBERTA_LAB_MAX_TRAINING_RUNS"
ENV_MAX_QUEUE = "ROBERTA_LAB_MAX_TRAINING_QUEUE"
ENV_MAX_STEPS = "ROBERTA_LAB_MAX_STEPS"
ENV_MAX_PARAMETERS = "ROBERTA_LAB_MAX_PARAMETERS"
ENV_MAX_BATCH_TOKENS = "ROBERTA_LAB_MAX_BATCH_TOKENS"
ENV_MAX_RUN_SECONDS = "ROBERTA_LAB_MAX_RUN_SECONDS"
ENV_MAX_REQUEST_MB = "ROBERTA_LAB_MAX_REQUEST_MB"
ENV_MAX_UPLOAD_MB = "ROBERTA_LAB_MAX_UPLOAD_MB"
ENV_MAX_SESSION_MODELS = "ROBERTA_LAB_MAX_SESSION_MODELS"
ENV_MAX_MODELS_MB = "ROBERTA_LAB_MAX_MODELS_MB"
ENV_MAX_ATTENTION_VALUES = "ROBERTA_LAB_MAX_ATTENTION_VALUES"
ENV_MAX_CSV_ROWS = "ROBERTA_LAB_MAX_CSV_ROWS"
ENV_MAX_IMPORT_LAYERS = "ROBERTA_LAB_MAX_IMPORT_LAYERS"
ENV_MAX_IMPORT_GFLOPS = "ROBERTA_LAB_MAX_IMPORT_GFLOPS"
ENV_MAX_VOCAB = "ROBERTA_LAB_MAX_VOCAB"
ENV_MAX_REQUEST_GFLOPS = "ROBERTA_LAB_MAX_REQUEST_GFLOPS"
ENV_HEAVY_GFLOPS = "ROBERTA_LAB_HEAVY_GFLOPS"
ENV_MAX_HEAVY_REQUESTS = "ROBERTA_LAB_MAX_HEAVY_REQUESTS"


class LimitError(ValueError):
    """A request over one of the app's limits; the message says which and what to do."""


@functools.lru_cache(maxsize=1)
def _has_cuda() -> bool:
    return torch.cuda.is_available()


def _env_number(name: str, default: float, parse: Callable[[str], float] = float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError as err:
        raise LimitError(f"The setting {name}={raw!r} is not a number.") from err
    if value <= 0:
        raise LimitError(f"The setting {name}={raw!r} must be positive.")
    return value


def _parse_count(raw: str) -> float:
    """'40M', '1.5k', '400_000_000' -> a number."""
    raw = raw.replace("_", "").replace(",", "").strip().upper()
    scale = {"K": 1e3, "M": 1e6, "G": 1e9, "B": 1e9}.get(raw[-1:], 1.0)
    return float(raw[:-1] if scale != 1.0 else raw) * scale


@dataclass(frozen=True)
class Limits:
    max_concurrent_runs: int
    max_queue: int
    max_steps: int
    max_parameters: int
    max_batch_tokens: int
    max_run_seconds: float
    max_upload_bytes: int
    max_session_models: int = 6  # the Experiments tab keeps two per comparison
    max_models_bytes: int = 2_000_000_000
    max_attention_values: int = 2_000_000
    max_csv_rows: int = 20_000
    max_request_bytes: int = 1024 * 2**20
    max_import_layers: int = 48
    max_import_gflops: float = 20.0
    max_request_gflops: float = 800.0
    max_vocab: int = 131_072
    heavy_gflops: float = 4.0
    max_heavy_requests: int = 1

    @classmethod
    def from_env(cls, gpu: bool | None = None) -> Limits:
        gpu = _has_cuda() if gpu is None else gpu
        return cls(
            max_concurrent_runs=int(_env_number(ENV_MAX_RUNS, 2 if gpu else 1)),
            max_queue=int(_env_number(ENV_MAX_QUEUE, 8)),
            max_steps=int(_env_number(ENV_MAX_STEPS, 50_000 if gpu else 5_000, _parse_count)),
            max_parameters=int(_env_number(ENV_MAX_PARAMETERS, 400e6 if gpu else 40e6,
                                           _parse_count)),
            max_batch_tokens=int(_env_number(ENV_MAX_BATCH_TOKENS, 262_144 if gpu else 16_384,
                                             _parse_count)),
            max_run_seconds=_env_number(ENV_MAX_RUN_SECONDS, 3600 if gpu else 900),
            max_upload_bytes=int(_env_number(ENV_MAX_UPLOAD_MB, 20) * 1_000_000),
            max_session_models=int(_env_number(ENV_MAX_SESSION_MODELS, 6)),
            max_models_bytes=int(_env_number(ENV_MAX_MODELS_MB, 8000 if gpu else 2000)
                                 * 1_000_000),
            # 2M float32 weights: 8 MB computed, ~20 MB of JSON at most; roberta-base's 12 × 12
            # heads reach it at 117 tokens, the nano default's 2 × 4 never (T ≤ 512).
            max_attention_values=int(_env_number(ENV_MAX_ATTENTION_VALUES, 2e6, _parse_count)),
            max_csv_rows=int(_env_number(ENV_MAX_CSV_ROWS, 20_000, _parse_count)),
            # The same on both hosts: it bounds one visitor's share, not the machine's size.
            max_request_bytes=int(_env_number(ENV_MAX_REQUEST_MB, 1024) * 2**20),
            # roberta-large's 24 layers twice over; a deeper import is a layer bomb.
            max_import_layers=int(_env_number(ENV_MAX_IMPORT_LAYERS, 48)),
            # One forward pass over the longest window: the "tiny" preset at 256 tokens is ~3
            # GFLOP, "mini" at 512 ~17, roberta-base at 512 ~137 (refused on a CPU host).
            max_import_gflops=_env_number(ENV_MAX_IMPORT_GFLOPS, 500 if gpu else 20),
            # The slowest classifier 1,000 GFLOP allowed took 27 s of CPU on one thread of this
            # host (bench/worst_model.py --classifier), too near the 30 s target; the embedded
            # classifier's 32-window /classify is ~620 GFLOP (15 s measured).
            max_request_gflops=_env_number(ENV_MAX_REQUEST_GFLOPS, 50_000 if gpu else 800),
            max_vocab=int(_env_number(ENV_MAX_VOCAB, 131_072, _parse_count)),
            # A visitor's model whose window costs more than this is a "large model" whose
            # requests take turns in their own lane (roberta.ui.heavy_lane), so they never hold
            # the slots the host's own models answer in. The embedded masked LM is 2.5 GFLOP, the
            # Train tab's tiny preset at 256 tokens 3.0, mini 7.8.
            heavy_gflops=_env_number(ENV_HEAVY_GFLOPS, 100 if gpu else 4),
            max_heavy_requests=int(_env_number(ENV_MAX_HEAVY_REQUESTS, 2 if gpu else 1)),
        )

    def import_budget(self):
        """The bounds on one imported model (roberta.import_checks.ImportBudget)."""
        from roberta.import_checks import ImportBudget

        return ImportBudget(max_layers=self.max_import_layers,
                            max_window_gflops=self.max_import_gflops,
                            max_request_gflops=self.max_request_gflops,
                            max_memory_bytes=self.max_request_bytes,
                            max_vocab=self.max_vocab)


def current_limits() -> Limits:
    """The limits in force now (environment variables are read on every call)."""
    return Limits.from_env()


def _count(n: float) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{int(n):,}"


def check_steps(steps: int, limits: Limits | None = None) -> None:
    limits = limits or current_limits()
    if steps > limits.max_steps:
        raise LimitError(f"{steps:,} steps is more than this app allows per run "
                         f"({limits.max_steps:,}). Choose fewer steps (the host can raise the "
                         f"cap with {ENV_MAX_STEPS}).")


def check_parameters(n_parameters: int, limits: Limits | None = None) -> None:
    limits = limits or current_limits()
    if n_parameters > limits.max_parameters:
        raise LimitError(f"This model would have {_count(n_parameters)} parameters, more than "
                         f"the {_count(limits.max_parameters)} this app trains. Pick a smaller "
                         f"size, fewer layers, or a smaller width (the host can raise the cap "
                         f"with {ENV_MAX_PARAMETERS}).")


def check_batch_tokens(batch_size: int, seq_length: int, limits: Limits | None = None) -> None:
    limits = limits or current_limits()
    if batch_size * seq_length > limits.max_batch_tokens:
        raise LimitError(f"A batch of {batch_size} × {seq_length} tokens "
                         f"({batch_size * seq_length:,}) is more than this app allows "
                         f"({limits.max_batch_tokens:,}). Lower the batch size or the sequence "
                         f"length (the host can raise the cap with {ENV_MAX_BATCH_TOKENS}).")


def check_training_memory(estimate_bytes: int, batch_size: int, seq_length: int,
                          limits: Limits | None = None, what: str = "This run") -> None:
    """Refuse a run whose estimated step (roberta.training.memory.training_memory_bytes) would
    hold more memory than one request may."""
    limits = limits or current_limits()
    if estimate_bytes > limits.max_request_bytes:
        raise LimitError(f"{what} would need about {estimate_bytes / 2**20:,.0f} MB of memory "
                         f"per training step (a {batch_size} × {seq_length} batch), more than "
                         f"the {limits.max_request_bytes / 2**20:,.0f} MB this app gives one "
                         f"run. Lower the batch size, the sequence length or the model size "
                         f"(the host can raise the cap with {ENV_MAX_REQUEST_MB}).")


def check_upload(paths: Iterable[str | os.PathLike], limits: Limits | None = None) -> None:
    limits = limits or current_limits()
    files = [Path(p) for p in paths]
    total = sum(p.stat().st_size for p in files if p.is_file())
    if total > limits.max_upload_bytes:
        what = files[0].name if len(files) == 1 else f"{len(files)} files"
        raise LimitError(f"The upload ({what}) is {total / 1e6:.1f} MB, more than the "
                         f"{limits.max_upload_bytes / 1e6:g} MB this app accepts. Upload a "
                         f"smaller sample (the host can raise the cap with {ENV_MAX_UPLOAD_MB}).")


# --- taking turns --------------------------------------------------------------------------

class TrainingQueue:
    """First come, first served turns for training runs, shared by every session of a process.

    `join()` gives a Ticket; `ticket.wait(timeout)` returns True once the ticket holds a slot;
    `ticket.leave()` (always, in a `finally`) frees the slot or the place in line. The capacity
    is a callable, read whenever a slot might open, so an environment change applies at once.
    A ticket may name its owner (a browser session) and what it runs, so a waiting visitor is
    told when the run ahead is their own.
    """

    def __init__(self, capacity: Callable[[], int], max_waiting: Callable[[], int]):
        self._capacity = capacity
        self._max_waiting = max_waiting
        self._cond = threading.Condition()
        self._running: set[int] = set()
        self._waiting: deque[int] = deque()
        self._ids = itertools.count(1)
        self._whose: dict[int, tuple[object, str]] = {}  # ticket id -> (owner, what it runs)

    def join(self, owner: object = None, what: str = "training run") -> Ticket:
        with self._cond:
            if self._waiting and len(self._waiting) >= self._max_waiting():
                raise LimitError(f"{len(self._running)} training run(s) are going and "
                                 f"{len(self._waiting)} are waiting, the most this app queues. "
                                 f"Try again in a few minutes.")
            ticket = Ticket(self, next(self._ids))
            self._waiting.append(ticket.id)
            if owner is not None:
                self._whose[ticket.id] = (owner, what)
            self._promote()
            return ticket

    def _promote(self) -> None:  # caller holds the lock
        while self._waiting and len(self._running) < max(1, self._capacity()):
            self._running.add(self._waiting.popleft())
        self._cond.notify_all()

    def _wait(self, ticket_id: int, timeout: float) -> bool:
        with self._cond:
            self._cond.wait_for(lambda: ticket_id in self._running, timeout)
            return ticket_id in self._running

    def _position(self, ticket_id: int) -> int:
        with self._cond:
            if ticket_id in self._running:
                return 0
            return self._waiting.index(ticket_id) + 1 if ticket_id in self._waiting else -1

    def _own_ahead(self, ticket_id: int) -> str | None:
        """What the ticket's owner already has training or waiting ahead of it, if anything."""
        with self._cond:
            owner = self._whose.get(ticket_id, (None, ""))[0]
            if owner is None or ticket_id not in self._waiting:
                return None
            ahead = [*self._running, *list(self._waiting)[:self._waiting.index(ticket_id)]]
            return next((self._whose[t][1] for t in ahead
                         if self._whose.get(t, (None, ""))[0] == owner), None)

    def _leave(self, ticket_id: int) -> None:
        with self._cond:
            self._whose.pop(ticket_id, None)
            self._running.discard(ticket_id)
            if ticket_id in self._waiting:
                self._waiting.remove(ticket_id)
            self._promote()

    @property
    def running(self) -> int:
        with self._cond:
            return len(self._running)

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)


class Ticket:
    def __init__(self, queue: TrainingQueue, ticket_id: int):
        self.queue = queue
        self.id = ticket_id

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds; True when this ticket may train now."""
        return self.queue._wait(self.id, timeout)

    @property
    def position(self) -> int:
        """1 = next in line; 0 = training now; -1 = left the queue."""
        return self.queue._position(self.id)

    @property
    def own_ahead(self) -> str | None:
        """What this ticket's owner has training or waiting ahead of it ("training run in the
        Train tab"), or None."""
        return self.queue._own_ahead(self.id)

    def leave(self) -> None:
        self.queue._leave(self.id)

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc) -> None:
        self.leave()


# One queue per process: the Train tab and the Sentiment tab's fine-tuning share the CPU.
TRAINING_QUEUE = TrainingQueue(lambda: current_limits().max_concurrent_runs,
                               lambda: current_limits().max_queue)


def queue_message(position: int, own_ahead: str | None = None) -> str:
    """Where a waiting run stands; `own_ahead`: what of this visitor's own is ahead of it."""
    ahead = position - 1
    if ahead <= 0:
        if own_ahead:
            return (f"Waiting for the training slot: your own {own_ahead} is using it (in this "
                    f"browser tab). You are next in line; this starts by itself when that run "
                    f"ends, or sooner if you stop it there.")
        return ("Waiting for the training slot: another visitor's run is using it. You are "
                "next in line; this starts by itself when it frees up.")
    own = f" One of them is your own {own_ahead}." if own_ahead else ""
    return (f"Waiting for a training slot: you are number {position} in the queue "
            f"({ahead} run(s) ahead of you).{own} This starts by itself when your turn comes.")


def queue_messages(ticket: Ticket, stop_requested: threading.Event,
                   poll_seconds: float = 1.0) -> Iterator[str]:
    """While the ticket waits for its turn, yield a message with its place in line every
    `poll_seconds`; end when it may train or when the visitor pressed Stop."""
    while not ticket.wait(timeout=poll_seconds) and not stop_requested.is_set():
        yield queue_message(ticket.position, ticket.own_ahead)


def attention_tokens(layers: int, heads: int, max_values: int | None = None) -> int:
    """The most tokens (specials included) whose attention maps stay within the cap on
    layers × heads × tokens² (ROBERTA_LAB_MAX_ATTENTION_VALUES): the work and the answer's size
    both grow with it (roberta-base's 144 heads at 512 tokens: 38M weights, a 30 MB answer)."""
    max_values = max_values or current_limits().max_attention_values
    return max(3, math.isqrt(max_values // max(1, layers * heads)))
