"""A time-lapse of a pretraining run (issue #34): what the model attends to, which roles its heads
play, where its words sit and what it guesses, recorded every so many steps, small enough to
travel with the model.

A snapshot holds the probe sentences' top-5 guesses, the attention of one fixed sentence (every
layer and head), every head's role (roberta/viz/head_roles.py, on its ROLE_SENTENCES), the input
embeddings of the training text's most frequent whole words, and that step's validation metrics.
The recorder snapshots step 0, every `every` steps (a multiple of the evaluation interval, so the
evaluation's metrics and probe guesses are reused) and the last step; `every` is the shortest
that keeps a run within its number of snapshots and MAX_BYTES.

The file (FILE_NAME, beside the weights) is safetensors: the arrays stacked over snapshots, and
the rest as JSON in the header's metadata; never a pickle. `load_timelapse` reads one as hostile
(it may come from an uploaded zip): the size, every shape, dtype and count is checked against the
metadata and the limits here before an array is read, and a bad file is one sentence, never an
exception: the model loads without its time-lapse.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from .inference import FillMaskResult, fill_mask
from .viz.head_roles import MIXED, OFF, ROLE_SENTENCES, ROLES, combine

ROLE_NAMES = (*ROLES, MIXED, OFF)  # the order of role_counts and of the file's role indices
FILE_NAME = "timelapse.safetensors"
MAX_SNAPSHOTS = 60
MAX_BYTES = 20_000_000  # a run's snapshots, all together
MAX_FILE_BYTES = MAX_BYTES + 2_000_000  # what load_timelapse reads: the snapshots + metadata
MAP_WORDS = 300
TOP_K = 5
SENTENCE = ROLE_SENTENCES[0]  # its attention is recorded; the roles read it with the others
# What a time-lapse file may hold besides its size cap: the app's largest models and then some.
MAX_LAYERS, MAX_HEADS, MAX_WIDTH, MAX_TOKENS, MAX_PROBES, MAX_TEXT = 64, 64, 8192, 128, 16, 1000


@dataclass(eq=False)  # arrays: compare field by field
class Snapshot:
    step: int
    metrics: dict[str, float]  # validation metrics at that step ({} if none)
    probes: list[list[tuple[str, float]]]  # per probe sentence: top-5 (token text, probability)
    attention: np.ndarray  # float16 (L, H, T, T): the fixed sentence, every layer and head
    roles: list[list[str]]  # (L, H): each head's label, one of ROLE_NAMES
    embeddings: np.ndarray  # float16 (W, C): the map words' input embeddings


@dataclass(eq=False)
class TimeLapse:
    sentence: str  # the fixed sentence whose attention is recorded
    tokens: list[str]  # its tokens as shown (T)
    probe_texts: list[str]
    map_words: list[str]  # the W most frequent whole words of the training text, one token each
    snapshots: list[Snapshot] = field(default_factory=list)  # step order; append only

    def steps(self) -> list[int]:
        return [s.step for s in self.snapshots]

    def map_points(self) -> np.ndarray:
        """(S, W, 2) float32: every snapshot's map words on the two principal axes of the last
        snapshot's embeddings (centred on their mean there), so the map does not jump from one
        step to the next. Each axis is signed so its largest loading is positive."""
        snapshots = list(self.snapshots)
        if not snapshots:
            return np.zeros((0, len(self.map_words), 2), np.float32)
        last = snapshots[-1].embeddings.astype(np.float64)
        centre = last.mean(0)
        _, _, vt = np.linalg.svd(last - centre, full_matrices=False)
        basis = np.zeros((last.shape[1], 2))
        axes = vt[:2].T  # (C, 2), or (C, 1) for a 1-wide model
        signs = np.sign(axes[np.abs(axes).argmax(0), range(axes.shape[1])])
        basis[:, :axes.shape[1]] = axes * np.where(signs == 0, 1, signs)
        return np.stack([(s.embeddings.astype(np.float64) - centre) @ basis
                         for s in snapshots]).astype(np.float32)

    def role_counts(self) -> dict[str, list[int]]:
        """Each role (ROLE_NAMES) -> how many heads carry it at each snapshot."""
        flat = [[label for row in s.roles for label in row] for s in list(self.snapshots)]
        return {role: [labels.count(role) for labels in flat] for role in ROLE_NAMES}

    def nbytes(self) -> int:
        """About the size of the saved file: the arrays and the metadata."""
        tensors, meta = self._contents()
        return sum(a.nbytes for a in tensors.values()) + len(meta)

    def _contents(self) -> tuple[dict[str, np.ndarray], str]:
        snapshots, T, W = list(self.snapshots), len(self.tokens), len(self.map_words)
        if snapshots:
            tensors = {"attention": np.stack([s.attention for s in snapshots]),
                       "embeddings": np.stack([s.embeddings for s in snapshots]),
                       "roles": np.array([[[ROLE_NAMES.index(r) for r in row] for row in s.roles]
                                          for s in snapshots], np.uint8)}
        else:
            tensors = {"attention": np.zeros((0, 0, 0, T, T), np.float16),
                       "embeddings": np.zeros((0, W, 0), np.float16),
                       "roles": np.zeros((0, 0, 0), np.uint8)}
        meta = dict(sentence=self.sentence, tokens=self.tokens, probe_texts=self.probe_texts,
                    map_words=self.map_words, roles=list(ROLE_NAMES),
                    steps=[s.step for s in snapshots], metrics=[s.metrics for s in snapshots],
                    probes=[s.probes for s in snapshots])
        return tensors, json.dumps(meta)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write FILE_NAME into `directory` (whole or not at all: a temporary file renamed)."""
        path = Path(directory) / FILE_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors, meta = self._contents()
        tmp = path.with_name(f".{FILE_NAME}.tmp")
        save_file(tensors, tmp, metadata={"timelapse": meta})
        os.replace(tmp, path)
        return path


class _Refused(ValueError):
    """Why a time-lapse file is not used, as the end of a sentence."""


def load_timelapse(directory: str | os.PathLike) -> tuple[TimeLapse | None, str]:
    """(the time-lapse in `directory` (or the file itself), "") or (None, one plain sentence
    saying why not) for a missing, oversized, truncated or hostile file. Never raises for a bad
    file: whatever it holds, the model beside it loads regardless."""
    path = Path(directory)
    path = path / FILE_NAME if path.is_dir() else path
    if not path.is_file():
        return None, f"This model has no time-lapse (no {FILE_NAME} beside its weights)."
    if path.stat().st_size > MAX_FILE_BYTES:
        return None, (f"Its time-lapse was not loaded: the file is larger than the "
                      f"{MAX_FILE_BYTES / 1e6:g} MB a time-lapse may have.")
    try:
        return _read(path), ""
    except _Refused as err:
        return None, f"Its time-lapse was not loaded: {err}."
    except (SafetensorError, OSError, ValueError):  # the parser's own words run long
        return None, ("Its time-lapse was not loaded: the file is not a readable safetensors "
                      "file (truncated or damaged).")


def _read(path: Path) -> TimeLapse:
    with safe_open(path, framework="np") as f:
        try:
            meta = json.loads((f.metadata() or {}).get("timelapse", "null"))
        except (ValueError, RecursionError):
            raise _Refused("its description is not JSON") from None
        if not isinstance(meta, dict):
            raise _Refused("it has no description of its snapshots")
        texts = {k: _texts(meta.get(k), k, most) for k, most in
                 (("tokens", MAX_TOKENS), ("probe_texts", MAX_PROBES),
                  ("map_words", MAP_WORDS), ("roles", len(ROLE_NAMES)))}
        steps, sentence = meta.get("steps"), meta.get("sentence")
        if not isinstance(steps, list) or len(steps) > MAX_SNAPSHOTS:
            raise _Refused(f"it does not list at most {MAX_SNAPSHOTS} snapshots")
        if not all(type(s) is int for s in steps) or steps != sorted(set(steps)) or \
                (steps and steps[0] < 0) or not isinstance(sentence, str):
            raise _Refused("its steps are not whole numbers in increasing order")
        if texts["roles"] != list(ROLE_NAMES):
            raise _Refused("it names other head roles than this version's")
        S, T, W = len(steps), len(texts["tokens"]), len(texts["map_words"])
        names = f.keys()
        specs = {k: (f.get_slice(k).get_shape(), f.get_slice(k).get_dtype()) for k in names}
        want = {"attention": ("F16", 5), "embeddings": ("F16", 3), "roles": ("U8", 3)}
        if set(specs) != set(want) or any(specs[k][1] != d or len(specs[k][0]) != n
                                          for k, (d, n) in want.items()):
            raise _Refused("its arrays are not the attention, embeddings and roles it should "
                           "hold, with their types")
        (_, L, H, *square), (_, _, C) = specs["attention"][0], specs["embeddings"][0]
        if specs["attention"][0] != [S, L, H, T, T] or specs["embeddings"][0] != [S, W, C] \
                or specs["roles"][0] != [S, L, H] or square != [T, T]:
            raise _Refused("the shapes of its arrays do not match its steps, tokens and words")
        if L > MAX_LAYERS or H > MAX_HEADS or C > MAX_WIDTH:
            raise _Refused("it describes a larger model than a time-lapse is kept for")
        arrays = {k: f.get_tensor(k) for k in want}
    if not (np.isfinite(arrays["attention"]).all() and np.isfinite(arrays["embeddings"]).all()):
        raise _Refused("its arrays hold values that are not finite")
    if arrays["roles"].size and arrays["roles"].max() >= len(ROLE_NAMES):
        raise _Refused("its head roles are not known roles")
    metrics, probes = meta.get("metrics"), meta.get("probes")
    if not (isinstance(metrics, list) and isinstance(probes, list) and
            len(metrics) == len(probes) == S):
        raise _Refused("it does not have metrics and probe guesses for each snapshot")
    snapshots = [Snapshot(step, _metrics(m), _guesses(p, len(texts["probe_texts"])),
                          arrays["attention"][i], [[ROLE_NAMES[r] for r in row]
                                                   for row in arrays["roles"][i].tolist()],
                          arrays["embeddings"][i])
                 for i, (step, m, p) in enumerate(zip(steps, metrics, probes, strict=True))]
    return TimeLapse(sentence[:MAX_TEXT], texts["tokens"], texts["probe_texts"],
                     texts["map_words"], snapshots)


def _texts(value: object, what: str, most: int) -> list[str]:
    if not (isinstance(value, list) and len(value) <= most and
            all(isinstance(v, str) and len(v) <= MAX_TEXT for v in value)):
        raise _Refused(f"its {what.replace('_', ' ')} are not a list of at most {most} texts")
    return value


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _metrics(value: object) -> dict[str, float]:
    if not (isinstance(value, dict) and len(value) <= 32 and
            all(isinstance(k, str) and len(k) <= 100 and _number(v) for k, v in value.items())):
        raise _Refused("a snapshot's metrics are not names with numbers")
    return {k: float(v) for k, v in value.items()}


def _guesses(value: object, probes: int) -> list[list[tuple[str, float]]]:
    ok = isinstance(value, list) and len(value) == probes and all(
        isinstance(top, list) and len(top) <= TOP_K and all(
            isinstance(g, list) and len(g) == 2 and isinstance(g[0], str) and
            len(g[0]) <= MAX_TEXT and _number(g[1]) for g in top) for top in value)
    if not ok:
        raise _Refused(f"a snapshot's probe guesses are not {probes} lists of at most {TOP_K} "
                       f"(token, probability) pairs")
    return [[(token, float(p)) for token, p in top] for top in value]


# --- recording ---------------------------------------------------------------------------------

def frequent_words(tokenizer, ids: torch.Tensor, count: int = MAP_WORDS) -> list[int]:
    """The ids of the `count` tokens of `ids` (any shape) most often read as a whole word: a
    word-start token of letters followed by another word's start, a special or punctuation."""
    tokens = tokenizer.convert_ids_to_tokens(list(range(tokenizer.vocab_size)))
    shown = [tokenizer.token_display(t) for t in tokens]
    starts = tokenizer.word_start_mask()
    letters = torch.tensor([s.startswith(" ") and s[1:].isalpha() for s in shown]) & starts
    ends = starts | torch.tensor([bool(s.strip()) and not any(c.isalnum() for c in s)
                                  for s in shown])
    flat = ids.reshape(-1)
    here, after = flat[:-1], flat[1:]
    counts = torch.bincount(here[letters[here] & ends[after]], minlength=tokenizer.vocab_size)
    found = int((counts > 0).sum())
    return counts.topk(min(count, found)).indices.tolist() if found else []


def snapshot_interval(max_steps: int, eval_every: int, most: int) -> int:
    """The shortest multiple of `eval_every` for which step 0, its multiples up to `max_steps`
    and `max_steps` itself are at most `most` snapshots (step 0 is left out when most < 2)."""
    room = max(most - 1, 1)  # ceil(max_steps / every) <= room  <=>  every >= max_steps / room
    return eval_every * max(1, math.ceil(max_steps / (room * eval_every)))


class TimeLapseRecorder:
    """Decides when to snapshot a run and records the snapshots in `timelapse`."""

    def __init__(self, tokenizer, model_config, train_ids: torch.Tensor, max_steps: int,
                 eval_every: int, probes: tuple[str, ...], snapshots: int = MAX_SNAPSHOTS,
                 max_bytes: int = MAX_BYTES):
        self.tokenizer, self.max_steps = tokenizer, max_steps
        self.map_ids = frequent_words(tokenizer, train_ids)
        # Read as far as the model can: a model of 8 positions still gets a (short) time-lapse.
        self.encodings = [tokenizer.encode(s, max_length=model_config.max_sequence_length)
                          for s in ROLE_SENTENCES]
        self.timelapse = TimeLapse(
            SENTENCE, tokenizer.readable_tokens(self.encodings[0].tokens), list(probes),
            [tokenizer.token_display(t).strip()
             for t in tokenizer.convert_ids_to_tokens(self.map_ids)])
        L, H = model_config.num_hidden_layers, model_config.num_attention_heads
        T, W = len(self.encodings[0].ids), len(self.map_ids)
        # Per snapshot: float16 attention and embeddings, a byte a role, ~60 B of JSON a guess.
        each = 2 * L * H * T * T + 2 * W * model_config.hidden_size + L * H + \
            60 * TOP_K * len(probes) + 300
        self.most = min(snapshots, MAX_SNAPSHOTS, max_bytes // each)
        self.every = snapshot_interval(max_steps, eval_every, self.most)

    def due(self, step: int, final: bool = False) -> bool:
        """Whether `step` is one to snapshot (`final`: a stopped run's last); a step is
        recorded once, and the last step even when the snapshots are full (record)."""
        taken, last = self.timelapse.steps(), (step == self.max_steps or final) and self.most > 0
        wanted = (step == 0 and self.most >= 2) or (step > 0 and step % self.every == 0) or last
        return wanted and (not taken or step > taken[-1]) and (len(taken) < self.most or last)

    def adopt(self, saved: TimeLapse | None, step: int) -> bool:
        """Continue `saved` (a resumed run's, up to `step`) if it is this run's: the same
        sentence, probes and map words. Whether it was."""
        same = saved is not None and (saved.sentence, saved.tokens, saved.probe_texts,
                                      saved.map_words) == (
            self.timelapse.sentence, self.timelapse.tokens, self.timelapse.probe_texts,
            self.timelapse.map_words)
        if same:
            self.timelapse.snapshots = [s for s in saved.snapshots if s.step <= step]
        return same

    @torch.no_grad()
    def record(self, model, step: int, metrics: dict[str, float] | None = None,
               probes: list[FillMaskResult] | None = None) -> Snapshot:
        """Snapshot `model` at `step`: `metrics` and `probes` are the evaluation's where the step
        had one (the probes are run here otherwise)."""
        was_training = model.training
        model.eval()
        try:
            attentions = self._attentions(model)
            roles = combine([(a, e.tokens) for a, e in zip(attentions, self.encodings,
                                                            strict=True)]).labels
            if probes is None:
                probes = [fill_mask(model, self.tokenizer, p) for p in self.timelapse.probe_texts]
            words = model.roberta.embeddings.word_embeddings.weight[self.map_ids]
            snapshot = Snapshot(
                step, dict(metrics or {}),
                [[(c.token, c.probability) for c in p.predictions[0].candidates[:TOP_K]]
                 for p in probes],
                attentions[0].numpy().astype(np.float16), roles,
                words.detach().float().cpu().numpy().astype(np.float16))
        finally:
            model.train(was_training)
        snapshots = self.timelapse.snapshots
        if len(snapshots) < self.most:
            snapshots.append(snapshot)
        else:  # full: a resumed run made longer; the weights it ends with replace the latest
            snapshots[-1] = snapshot
        return snapshot

    def _attentions(self, model) -> list[torch.Tensor]:
        """Every role sentence's attentions (L, H, T, T), from one padded batch: a padded key
        gets no weight, so each sentence's rows match reading it alone."""
        width = max(len(e.ids) for e in self.encodings)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([e.ids + [pad] * (width - len(e.ids)) for e in self.encodings])
        mask = (torch.arange(width) < torch.tensor([[len(e.ids)] for e in self.encodings]))
        device = next(model.parameters()).device
        out = model(ids.to(device), attention_mask=mask.long().to(device), output_attentions=True,
                    predict=torch.zeros(ids.shape, dtype=torch.bool, device=device))  # no LM head
        stacked = torch.stack(out.attentions, 1).float().cpu()  # (B, L, H, T, T)
        return [a[..., :len(e.ids), :len(e.ids)] for a, e in zip(stacked, self.encodings,
                                                                  strict=True)]
