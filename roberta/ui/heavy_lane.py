"""A lane of their own for requests on large models, so they never hold other visitors' slots.

Each model endpoint has a few worker slots (Gradio's `concurrency_limit`), counted per event and
fixed when the app is built: Gradio cannot send a request to another queue by the model it names.
Four requests on the largest model the import budget accepts (a 20 GFLOP window, ~5 s on a busy
core) filled /fill_mask's four slots and another visitor waited behind them (p95 12-14 s,
docs/measurements.md). So the lane is kept here, inside the handler:

- a visitor's model (trained, fine-tuned or imported; never the host's embedded ones) whose one
  window costs more than `ROBERTA_LAB_HEAVY_GFLOPS` (`roberta.import_checks.inference_cost`) is
  a *large model*;
- requests on large models run at most `ROBERTA_LAB_MAX_HEAVY_REQUESTS` at once on the host, at
  most one of them per session; as many more may wait, in order, up to WAIT_SECONDS;
- a session has at most PER_SESSION requests on large models in the lane (its page sends two at
  once when a word is clicked: the guesses and the lens); anything past these bounds is refused
  at once, in a sentence, so a refused request holds its slot for milliseconds;
- the model endpoints get `slots(light)` slots: their own plus room for every request the lane
  can hold, so however many large-model requests arrive, `light` slots stay free for the others.

- a request in the lane runs in one of the lane's own threads, at a lower CPU priority (nice
  +LOWER_PRIORITY, Linux sets it per thread): on a busy host the scheduler gives the other
  requests' threads the core first, so a large model slows them less.

A request that calls another in the lane (a page export drawing its view) keeps its place.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import itertools
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from roberta.import_checks import inference_cost
from roberta.ui import registry
from roberta.ui.common import user_error
from roberta.ui.limits import current_limits

WAIT_SECONDS = 20.0  # about four large requests' time on an idle core (a 20 GFLOP window ~0.5 s)
PER_SESSION = 2
LOWER_PRIORITY = 10  # added to the lane threads' nice value (the most is 19)
BUSY = ("The server is busy with large models (other visitors' requests on big imported or "
        "trained models); try again in a moment.")
OWN_BUSY = ("Your earlier requests on a large model are still running: wait for them to finish, "
            "then try again.")


def is_heavy(loaded: registry.LoadedModel, heavy_gflops: float | None = None) -> bool:
    """Whether `loaded` is a large model: a visitor's, whose one window costs more than the
    host's threshold. The host's own models (embedded, the untrained structured start) never
    are: their cost is the host's choice."""
    if loaded.name in (*registry.EMBEDDED_NAMES.values(), registry.STRUCTURED_START_NAME):
        return False
    heavy_gflops = current_limits().heavy_gflops if heavy_gflops is None else heavy_gflops
    return inference_cost(loaded.model.config, loaded.task).window_gflops > heavy_gflops


class HeavyLane:
    """First come, first served places for requests on large models, shared by every session.

    `turn(owner)` is a context manager holding a place while the request runs; `owner` is the
    visitor's session (any hashable key). The capacity is a callable, read on every request."""

    def __init__(self, capacity: Callable[[], int], wait_seconds: float = WAIT_SECONDS,
                 per_session: int = PER_SESSION):
        self._capacity = capacity
        self.wait_seconds = wait_seconds
        self.per_session = per_session
        self._cond = threading.Condition()
        self._running: dict[int, object] = {}  # ticket -> owner
        self._waiting: deque[tuple[int, object]] = deque()
        self._ids = itertools.count(1)
        self._held = threading.local()  # this thread's depth inside turn()
        self._threads: ThreadPoolExecutor | None = None

    @contextmanager
    def turn(self, owner: object) -> Iterator[None]:
        depth = getattr(self._held, "depth", 0)
        ticket = None if depth else self._enter(owner)
        self._held.depth = depth + 1
        try:
            yield
        finally:
            self._held.depth = depth
            if ticket is not None:
                self._leave(ticket)

    def run(self, function: Callable, *args, **kwargs):
        """`function(*args, **kwargs)` in one of the lane's own low-priority threads, with the
        caller's context (Gradio's request, for its pop-up messages); the caller waits."""
        context = contextvars.copy_context()

        def job():
            self._held.depth = 1  # a request it calls keeps this place
            try:
                return context.run(function, *args, **kwargs)
            finally:
                self._held.depth = 0

        with self._cond:
            if self._threads is None:
                self._threads = ThreadPoolExecutor(8, "heavy-lane", initializer=lower_priority)
        return self._threads.submit(job).result()

    def _enter(self, owner: object) -> int:
        with self._cond:
            capacity = max(1, self._capacity())
            mine = sum(o == owner for o in self._running.values()) + \
                sum(o == owner for _, o in self._waiting)
            if mine >= self.per_session:
                raise user_error(OWN_BUSY)
            if len(self._running) >= capacity and len(self._waiting) >= capacity:
                raise user_error(BUSY)
            ticket = next(self._ids)
            self._waiting.append((ticket, owner))
            self._promote()
            if not self._cond.wait_for(lambda: ticket in self._running, self.wait_seconds):
                self._waiting.remove((ticket, owner))
                raise user_error(BUSY)
            return ticket

    def _promote(self) -> None:  # caller holds the lock
        capacity = max(1, self._capacity())
        for ticket, owner in list(self._waiting):
            if len(self._running) >= capacity:
                break
            if owner not in self._running.values():  # one running request per session
                self._waiting.remove((ticket, owner))
                self._running[ticket] = owner
        self._cond.notify_all()

    def _leave(self, ticket: int) -> None:
        with self._cond:
            self._running.pop(ticket, None)
            self._promote()

    def inside(self) -> bool:
        """Whether this thread already holds a place (a request calling another)."""
        return getattr(self._held, "depth", 0) > 0

    @property
    def running(self) -> int:
        with self._cond:
            return len(self._running)

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)


def lower_priority() -> None:
    """Raise this thread's nice value by LOWER_PRIORITY (Linux: per thread); where the system
    does not allow it, the thread runs as it is."""
    try:
        me = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, me,
                       min(19, os.getpriority(os.PRIO_PROCESS, me) + LOWER_PRIORITY))
    except (AttributeError, OSError):
        pass


# One lane per process, like the training queue.
LANE = HeavyLane(lambda: current_limits().max_heavy_requests)


def slots(light: int) -> int:
    """An endpoint's concurrency limit: `light` slots for requests on other models, plus one for
    every request the lane can hold at once (running and waiting), sized when the app starts."""
    return light + 2 * max(1, current_limits().max_heavy_requests)


def _owner(session: object) -> object:
    """The key of a visitor in the lane: their session's dict (the same object on every call)."""
    return id(session) if isinstance(session, dict) else None


def takes_turn(models: Callable[[dict], list[registry.LoadedModel | None]]):
    """Decorate a handler so that it runs in the lane when one of its models is large.
    `models(arguments)` finds the session's models the handler's arguments name (None where
    there is none: an unknown name or a wrong value, which the handler then refuses plainly)."""
    def decorate(handler):
        signature = inspect.signature(handler)

        @functools.wraps(handler)
        def run(*args, **kwargs):
            try:
                arguments = signature.bind_partial(*args, **kwargs).arguments
            except TypeError:
                return handler(*args, **kwargs)
            if not any(is_heavy(m) for m in models(arguments) if m is not None):
                return handler(*args, **kwargs)
            if LANE.inside():
                return handler(*args, **kwargs)
            with LANE.turn(_owner(arguments.get("session"))):
                return LANE.run(handler, *args, **kwargs)

        return run
    return decorate


def one_model(task: str, parameter: str = "model_name"):
    """`takes_turn`'s argument for a handler of one model, named by `parameter`."""
    return lambda arguments: [registry.session_model(arguments.get("session"),
                                                     arguments.get(parameter), task)]
