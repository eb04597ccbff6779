"""What every training tab shares, free of Gradio (but for reading which browser session an
event came from): turning a form into library settings, caches of prepared data, and the
streamed run (one per browser tab, taking turns in the queue): a tab's Start handler is
`stream_run(control, job, show)`, see there.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import inspect
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any

from roberta.settings import SettingError
from roberta.training.engine import Trainer, TrainEvent

from .limits import TRAINING_QUEUE, current_limits, queue_messages

# --- forms -----------------------------------------------------------------------------------

class SettingsError(ValueError):
    """Impossible or unsupported settings on a tab, in a plain sentence."""


def as_int(label: str, value: Any, maximum: int | None = None) -> int:
    """A form value as a whole number (at most `maximum`: what this app offers); the library
    checks every other bound."""
    number = as_float(label, value)
    if number != int(number):
        raise SettingsError(f"{label} must be a whole number, not {value!r}.")
    if maximum is not None and number > maximum:
        raise SettingsError(f"{label} must be at most {maximum}; it is {int(number)}.")
    return int(number)


def as_float(label: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{label} must be a number, not {value!r}.") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise SettingsError(f"{label} must be a finite number.")
    return number


def form_numbers(settings: Any, label_of: Callable[[str], str]) -> dict[str, Any]:
    """The form's values of `settings`' numeric fields as numbers (a blank optional one: None),
    SettingsError naming the control for text that is not one; the library checks bounds."""
    numbers = {}
    for f in dataclasses.fields(settings):
        kind, value = str(f.type).replace(" ", ""), getattr(settings, f.name)
        if kind in ("int|None", "float|None") and value in (None, ""):
            numbers[f.name] = None
        elif kind.startswith("int"):
            numbers[f.name] = as_int(label_of(f.name), value)
        elif kind.startswith("float"):
            numbers[f.name] = as_float(label_of(f.name), value)
    return numbers


def in_words(err: SettingError, label_of: Callable[[str], str]) -> SettingsError:
    """A library SettingError as a sentence naming the tab's controls."""
    text = err.worded(label_of)
    return SettingsError(f"{text[:1].upper()}{text[1:]}{'' if text.endswith('.') else '.'}")


def form_handler(run: Callable[..., Iterator], names: Sequence[str]) -> Callable[..., Iterator]:
    """`run(form, control, session)` as an event handler that takes the form's values one by
    one and then the tab's two state dicts. Its signature names each value, so the public API's
    parameters are the form's field names in the mapping's order, each with a default."""
    def handler(*values):
        states = [v if isinstance(v, dict) else {} for v in values[len(names):]]
        yield from run(dict(zip(names, values, strict=False)), *states)

    handler.__signature__ = inspect.Signature([
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)
        for name in [*names, "control", "session"]])
    return handler


def same_fields(settings: Any, config_class: type, *besides: str) -> dict[str, Any]:
    """The values of `settings` for the fields of `config_class` it shares (but `besides`)."""
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(config_class)
            if hasattr(settings, f.name) and f.name not in besides}


def check_choice(what: str, value: Any, options: Sequence[str]) -> None:
    if value not in options:
        raise SettingsError(f"Unknown {what} {value!r}: choose one of {', '.join(options)}.")


# --- prepared data, once per process ---------------------------------------------------------

class OnceCache:
    """Each key computed once per process; concurrent callers of a key wait for the first
    (so a click during the background prewarm waits for it rather than redoing it). Failures
    are not cached. Keeps the `maxsize` most recently used keys."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._lock = threading.Lock()
        self._entries: OrderedDict[Any, Future] = OrderedDict()

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        return self.future(key, compute).result()

    def future(self, key: Any, compute: Callable[[], Any], background: bool = False) -> Future:
        """The key's Future; computed here (or, `background`, in a new thread) if it is new."""
        with self._lock:
            future = self._entries.get(key)
            owner = future is None
            if owner:
                future = self._entries[key] = Future()
                while len(self._entries) > self.maxsize:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(key)
        if owner:
            work = lambda: self._compute(key, future, compute)  # noqa: E731
            if background:
                threading.Thread(target=work, name="roberta-lab-cache", daemon=True).start()
            else:
                work()
        return future

    def _compute(self, key: Any, future: Future, compute: Callable[[], Any]) -> None:
        try:
            future.set_result(compute())
        except BaseException as err:  # reported where the result is read
            future.set_exception(err)
            with self._lock:
                if self._entries.get(key) is future:
                    del self._entries[key]


def fingerprint(texts: Sequence[str]) -> str:
    digest = hashlib.blake2b(digest_size=12)
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


# --- the streamed run ------------------------------------------------------------------------

def stream_run(control: dict, job: Callable[[threading.Event], Iterator[Any]],
               show: Callable[[str], Any], what: str = "training run") -> Iterator[Any]:
    """Yield `job(stop_requested)`'s outputs once this browser tab's run has its turn (before,
    `show(message)`: its place in the queue). `control` is the tab's state dict: `job` puts its
    trainer in control["trainer"] and streams `watch(trainer, stop_requested)`. SettingsError
    when a run is already going here, LimitError when the queue is full; the trainer is stopped
    and the turn given back however the run ends (also when the page goes away). Then garbage
    is collected: a finished run leaves reference cycles (trainer, model, optimizer, batches)
    that would hold tens of MB each until Python's collector happened to run."""
    if control.get("running"):
        raise SettingsError(f"A {what} is already going in this browser tab: stop it first.")
    ticket = TRAINING_QUEUE.join(visitor(), f"{what} in the {WHERE.get(what, 'other')} tab")
    stop_requested = threading.Event()
    control.update(running=True, stop=stop_requested, trainer=None)
    try:
        for message in queue_messages(ticket, stop_requested):
            yield show(message)
        if stop_requested.is_set():
            yield show("Stopped before it started: you left the queue.")
            return
        yield from job(stop_requested)
    finally:
        trainer = control.get("trainer")
        if trainer is not None:
            trainer.stop()
        control.update(running=False, trainer=None)
        ticket.leave()
        trainer = None
        gc.collect()


# Which tab runs what, for "your own comparison in the Experiments tab is using it".
WHERE = {"training run": "Train", "comparison": "Experiments", "fine-tuning run": "Sentiment"}


def visitor() -> str | None:
    """The browser session (or gradio_client) the current event came from, when there is one:
    Gradio keeps the request in a context variable while it runs an event's function."""
    try:
        from gradio.context import LocalContext
    except ImportError:  # the library without the app
        return None
    return getattr(LocalContext.request.get(None), "session_hash", None)


def watch(trainer: Trainer, stop_requested: threading.Event) -> Iterator[TrainEvent]:
    """The trainer's events; it is stopped when the visitor asks or at this app's time limit."""
    max_seconds = current_limits().max_run_seconds
    for event in trainer.run():
        if stop_requested.is_set() or event.elapsed > max_seconds:
            trainer.stop()
        yield event


def unique_name(taken: Sequence[str], stem: str, detail: str) -> str:
    """`stem n (detail)` with the first n no taken name uses: "My model 2 (micro, 60 steps)"."""
    n = 1
    while any(name.startswith(f"{stem} {n} (") for name in taken):
        n += 1
    return f"{stem} {n} ({detail})"
