"""Which models a tab can use: the embedded defaults in assets/, plus this browser session's own.

The embedded masked LM lives in `assets/mlm/` and the sentiment classifier in
`assets/sentiment/` (Hugging Face directories with tokenizer files). Each is loaded once per
process on first use. Models a visitor trains or imports live in their session dict (one
`gr.State({})` per browser), so nobody sees another visitor's models.

`ROBERTA_LAB_ASSETS` points the app at another assets folder (tests use a tiny model); it is
read at call time, not at import time.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import torch

from roberta.defaults import (
    RECIPE_COMMAND,
    REPO_ASSETS,
    TASK_WORDS,
    DefaultModelMissing,
    assets_dir,
    default_model_dir,
    load_default,
)
from roberta.tokenizer import RobertaTokenizer
from roberta.ui import limits
from roberta.ui.common import markdown_literal, shown, user_error

TASKS = ("mlm", "classifier")
EMBEDDED_NAMES = {"mlm": "Embedded masked LM", "classifier": "Embedded sentiment classifier"}
SESSION_MODELS = "models"  # key of the session dict holding {name: LoadedModel}


@dataclass
class LoadedModel:
    name: str
    task: str  # "mlm" | "classifier"
    model: torch.nn.Module
    tokenizer: RobertaTokenizer
    description: str
    timelapse: object = None  # its run's roberta.timelapse.TimeLapse, when it has one
    timelapse_note: str = ""  # an imported model without one: why (one sentence)


def embedded_dir(task: str) -> Path:
    _check_task(task)
    return default_model_dir(task)


def describe(model: torch.nn.Module, source: str) -> str:
    """One line a person can read: shape, size and where the model came from."""
    c = model.config
    n_params = sum(p.numel() for p in model.parameters())
    return (f"{c.num_hidden_layers} layers × {c.hidden_size} wide, {c.num_attention_heads} "
            f"heads, vocabulary {c.vocab_size:,}, {n_params / 1e6:.2f}M parameters — {source}")


# --- the embedded defaults, loaded once per (task, folder) per process -----------------------

_embedded_cache: dict[tuple[str, str], tuple[LoadedModel | None, str]] = {}
_embedded_lock = threading.Lock()


def _load_embedded(task: str, directory: Path) -> tuple[LoadedModel | None, str]:
    """(model, "") or (None, what is wrong)."""
    try:
        model, tokenizer = load_default(task, directory)
    except DefaultModelMissing as err:
        return None, err.problem
    return LoadedModel(EMBEDDED_NAMES[task], task, model, tokenizer,
                       describe(model, f"embedded, from {_shown_path(directory)}")), ""


def _shown_path(directory: Path) -> str:
    """assets/mlm rather than a long absolute path, when it is inside the repository."""
    try:
        return str(directory.resolve().relative_to(REPO_ASSETS.parent))
    except ValueError:
        return str(directory)


def _embedded_entry(task: str) -> tuple[LoadedModel | None, str]:
    directory = embedded_dir(task)
    key = (task, str(directory.resolve()))
    with _embedded_lock:
        if key not in _embedded_cache:
            _embedded_cache[key] = _load_embedded(task, directory)
        return _embedded_cache[key]


def embedded(task: str) -> LoadedModel | None:
    """The embedded default for `task`, or None when it is missing or unreadable."""
    return _embedded_entry(task)[0]


STRUCTURED_START_NAME = "Structured start, untrained (step 0)"
_structured_start: dict[int, LoadedModel] = {}


def structured_start() -> LoadedModel | None:
    """The Train tab's default model as it stands before its first step, with the structured
    start (roberta/init.py): the heads a room is about to watch being used. It borrows the
    embedded model's tokenizer; None without one. Built once per tokenizer (milliseconds)."""
    from roberta.config import RobertaConfig
    from roberta.init import initialise_
    from roberta.model import RobertaForMaskedLM

    base = embedded("mlm")
    if base is None:
        return None
    with _embedded_lock:
        key = id(base.tokenizer)
        if key not in _structured_start:
            config = RobertaConfig.preset("micro", vocab_size=base.tokenizer.vocab_size,
                                          hidden_dropout_prob=0.0,
                                          attention_probs_dropout_prob=0.0)
            with torch.random.fork_rng(devices=[]):  # leave the app's global RNG alone
                torch.manual_seed(0)
                model = RobertaForMaskedLM(config)
            initialise_(model, "structured")
            _structured_start.clear()
            _structured_start[key] = LoadedModel(
                STRUCTURED_START_NAME, "mlm", model.eval(), base.tokenizer,
                describe(model, "the Train tab's default before its first step, structured "
                                "start: in layer 1, head 1 looks one token left and head 2 one "
                                "token right; everything else is random"))
        return _structured_start[key]


def clear_embedded_cache() -> None:
    """Forget loaded defaults (after `assets/` changed, e.g. in tests)."""
    with _embedded_lock:
        _embedded_cache.clear()
        _structured_start.clear()


def missing_message(task: str) -> str:
    """A plain sentence: what is missing and how to make it."""
    problem = _embedded_entry(task)[1] or "it is not there"
    return (f"The embedded {TASK_WORDS[task]} is missing: {problem}. Create it with "
            f"`{RECIPE_COMMAND}` (it trains the defaults into {assets_dir()}), train your own in "
            f"the Train tab, or import a Hugging Face checkpoint in the Fill-mask or Model tab.")


# --- this session's models ---------------------------------------------------------------

def session_models(session: dict | None) -> dict[str, LoadedModel]:
    if not isinstance(session, dict):
        return {}
    return session.get(SESSION_MODELS) or {}


def _step_zero(task: str, name: str) -> LoadedModel | None:
    """The untrained structured start, when a masked-LM dropdown names it."""
    return structured_start() if task == "mlm" and name == STRUCTURED_START_NAME else None


def choices(session: dict | None, task: str) -> list[str]:
    """Names a dropdown offers: the embedded default first, then this session's models."""
    _check_task(task)
    names = [EMBEDDED_NAMES[task]] if embedded(task) is not None else []
    names += [name for name, m in session_models(session).items() if m.task == task]
    if task == "mlm" and structured_start() is not None:
        names.append(STRUCTURED_START_NAME)
    return names


def resolve(session: dict | None, name: str | None, task: str) -> LoadedModel:
    """The model called `name` (None or "": the first choice); gr.Error when there is none."""
    _check_task(task)
    if name is not None and not isinstance(name, str):
        raise user_error(f"A model is chosen by its name, not {str(name)[:40]!r}.")
    if not name:
        available = choices(session, task)
        if not available:
            raise user_error(missing_message(task))
        name = available[0]
    if name == EMBEDDED_NAMES[task]:
        loaded = embedded(task)
        if loaded is None:
            raise user_error(missing_message(task))
        return loaded
    loaded = _step_zero(task, name) or session_models(session).get(name)
    if loaded is None or loaded.task != task:
        available = choices(session, task)
        offer = (f" Choose one of: {', '.join(available)}." if available
                 else " " + missing_message(task))
        raise user_error(f"There is no {TASK_WORDS[task]} called “{name}” in this browser "
                         f"session.{offer}")
    return loaded


def session_model(session: dict | None, name: object, task: str) -> LoadedModel | None:
    """This session's own model called `name` for `task` (None, a cleared field: the first
    choice), or None: no message, no log line (resolve() says what is wrong)."""
    if not name:
        name = next(iter(choices(session, task)), None)
    loaded = session_models(session).get(name) if isinstance(name, str) else None
    return loaded if loaded is not None and loaded.task == task else None


def add(session: dict | None, loaded: LoadedModel) -> dict:
    """Store `loaded` in the session under its name (replacing one of the same name) and return
    the session dict, to be given back to its gr.State. The caps apply (`make_room`): the
    session's oldest model may be let go, or the model refused when the host is full."""
    _check_task(loaded.task)
    if loaded.name in (*EMBEDDED_NAMES.values(), STRUCTURED_START_NAME):
        raise ValueError(f"“{loaded.name}” is reserved for the embedded default")
    session = session if isinstance(session, dict) else {}
    models = _owned_models(session)
    make_room(models, loaded)
    models[loaded.name] = loaded
    return session


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, not {task!r}")


# --- what sessions may hold, and letting go when they end ----------------------------------
#
# A visitor's models live in their session; left alone, every import and every run would stay
# in the server's memory until it restarts. So a session keeps at most `max_session_models` (the
# oldest goes first, with a warning), all sessions together at most `max_models_bytes` (a new
# model is refused, with a message, when the host is full), and a session's models are let go
# when Gradio drops its state (`release` is the gr.State's delete_callback), which
# roberta/ui/session_end.py makes happen as soon as the visitor leaves.

class SessionModels(dict):
    """{name: LoadedModel} of one session, oldest first. A dict subclass because a plain dict
    cannot be weakly referenced: the host counts live sessions' models through weak references,
    so a session that is gone is never counted."""


_live_sessions: weakref.WeakValueDictionary[int, SessionModels] = weakref.WeakValueDictionary()
_live_lock = threading.RLock()


def _owned_models(session: dict) -> SessionModels:
    """The session's model dict, made a counted SessionModels on first use."""
    with _live_lock:
        models = session.get(SESSION_MODELS)
        if not isinstance(models, SessionModels):
            models = SessionModels(models or {})
            session[SESSION_MODELS] = models
        _live_sessions[id(models)] = models
        return models


def model_bytes(model: torch.nn.Module) -> int:
    """Bytes of a model's parameters and buffers (tied weights counted once)."""
    seen: dict[int, int] = {}
    for tensor in (*model.parameters(), *model.buffers()):
        seen[tensor.data_ptr()] = max(seen.get(tensor.data_ptr(), 0),
                                      tensor.numel() * tensor.element_size())
    return sum(seen.values())


# A tokenizer's memory grows with its vocabulary: a RobertaTokenizer of 65,536 tokens held
# +62.6 MB (measured Dec 2026), ~1 KB a token. It is counted with the models that use it, so an
# import of a small model with a large vocabulary counts for what it holds.
TOKENIZER_BYTES_PER_TOKEN = 1_000


def tokenizer_bytes(tokenizer: RobertaTokenizer) -> int:
    return TOKENIZER_BYTES_PER_TOKEN * int(getattr(tokenizer, "vocab_size", 0) or 0)


def footprint(loaded: list[LoadedModel]) -> int:
    """Bytes these models and their tokenizers hold, each model and each tokenizer once."""
    tensors = {id(m.model): model_bytes(m.model) for m in loaded}
    tokenizers = {id(m.tokenizer): tokenizer_bytes(m.tokenizer) for m in loaded}
    return sum(tensors.values()) + sum(tokenizers.values())


def held_models() -> list[LoadedModel]:
    """Every model the sessions alive now hold (each model once)."""
    with _live_lock:
        unique = {id(m.model): m for models in list(_live_sessions.values())
                  for m in list(models.values())}
    return list(unique.values())


def held_bytes() -> int:
    return footprint(held_models())


def _megabytes(n: int) -> str:
    return f"{n / 1e6:,.0f} MB" if n >= 1e6 else f"{n / 1e6:.1f} MB"


def make_room(models: SessionModels, loaded: LoadedModel) -> None:
    """Let `loaded` into `models` within the caps, or raise a plain gr.Error. A model of the
    same name is replaced, so it does not count; when the session is full its oldest models are
    let go (after the host check, so a refused model costs the session nothing)."""
    caps = limits.current_limits()
    with _live_lock:
        others = [name for name in models if name != loaded.name]
        evicted = others[:max(0, len(others) - caps.max_session_models + 1)]
        leaving = {id(models[name].model) for name in (*evicted, loaded.name) if name in models}
        kept = [m for m in held_models() if id(m.model) not in leaving]
        held = footprint(kept)
        new = footprint([*kept, loaded]) - held  # 0 when already held under another name
        if held + new > caps.max_models_bytes:
            raise user_error(
                f"The server is holding {_megabytes(held)} of visitors' models, and "
                f"“{loaded.name}” ({_megabytes(new)}) would take it past its limit of "
                f"{_megabytes(caps.max_models_bytes)}. Try again in a while (models are let go "
                f"when their visitors leave), or use a smaller model (the host can raise the cap "
                f"with {limits.ENV_MAX_MODELS_MB}).")
        for name in evicted:
            del models[name]
    if evicted:
        gr.Warning(shown(
            f"This browser session keeps at most {caps.max_session_models} models, so "
            f"{', '.join(f'“{n}”' for n in evicted)} (the oldest) "
            f"{'was' if len(evicted) == 1 else 'were'} let go to make room for “{loaded.name}”."))


def release(session: dict | None) -> int:
    """Let go of every model the session holds; how many there were. gr.State's
    delete_callback, and the unload handler, call it."""
    if not isinstance(session, dict):
        return 0
    with _live_lock:
        models = session.get(SESSION_MODELS)
        count = len(models) if isinstance(models, dict) else 0
        if isinstance(models, dict):
            models.clear()
    if count:
        logging.getLogger(__name__).info("let go of %d model(s) of a session that ended", count)
    return count


# --- a model dropdown for a tab ------------------------------------------------------------

def task_list(task: str | tuple[str, ...]) -> tuple[str, ...]:
    """("mlm",) for "mlm": a dropdown offers one task's models or several tasks' models."""
    tasks = (task,) if isinstance(task, str) else tuple(task)
    for one in tasks:
        _check_task(one)
    return tasks


def choices_for(session: dict | None, task: str | tuple[str, ...]) -> list[str]:
    """The names of `choices` for each task in turn (the Model tab lists both tasks')."""
    return [name for one in task_list(task) for name in choices(session, one)]


def task_of(session: dict | None, name: str | None,
            task: str | tuple[str, ...]) -> str | None:
    """Which of the tasks offers a model called `name` (None: none of them)."""
    return next((one for one in task_list(task) if name in choices(session, one)), None)


def model_info(session: dict | None, name: str | None, task: str | tuple[str, ...]) -> str:
    """Markdown under a model dropdown: what the chosen model is, or what is missing."""
    tasks = task_list(task)
    missing = "\n\n".join(f"⚠️ {missing_message(one)}" for one in tasks)
    found = task_of(session, name, tasks) if name else None
    if found is None:
        return missing
    is_embedded = name == EMBEDDED_NAMES[found]
    loaded = embedded(found) if is_embedded else \
        _step_zero(found, name) or session_models(session).get(name)
    if loaded is None:
        return missing
    return f"**{markdown_literal(loaded.name)}**: {markdown_literal(loaded.description)}"


def enclosing_tab() -> gr.Tab | None:
    from gradio.context import Context

    block = Context.block
    while block is not None and not isinstance(block, gr.Tab):
        block = getattr(block, "parent", None)
    return block


def refreshed_choices(session: dict | None, current: str | None,
                      task: str | tuple[str, ...]):
    """A model dropdown's update and its line: this session's models now, the chosen one kept
    while it is still there."""
    names = choices_for(session, task)
    value = current if current in names else (names[0] if names else None)
    return gr.update(choices=names, value=value), model_info(session, value, task)


def refresh_when_selected(session: gr.State, dropdown: gr.Dropdown, info: gr.Markdown,
                          task: str | tuple[str, ...]):
    """When the tab around the dropdown is selected, offer this session's models (a model
    trained or imported in another tab shows up). The event, for a tab to chain its own
    `.then` to; None outside a tab."""
    tab = enclosing_tab()
    if tab is None:
        return None
    return tab.select(lambda session_value, current: refreshed_choices(session_value, current,
                                                                       task),
                      [session, dropdown], [dropdown, info], api_visibility="private",
                      queue=False)


def model_selector(session: gr.State, task: str | tuple[str, ...], label: str = "Model",
                   refresh_on_select: bool = True) -> tuple[gr.Dropdown, gr.Markdown]:
    """A dropdown of the models `task` can use (one task, or several: the Model tab's), with a
    line saying what the chosen one is (or what is missing and how to make it). Call it inside
    a `gr.Tab`: the choices refresh when the tab is selected, so a model trained in another tab
    shows up here for this session (refresh_on_select=False: the tab wires
    `refresh_when_selected` itself, to chain more to it)."""
    names = choices_for({}, task)
    # allow_custom_value: a program may name a model this session imported or trained without
    # the dropdown having been refreshed; resolve() explains unknown names in plain words.
    dropdown = gr.Dropdown(names, value=names[0] if names else None, label=label,
                           interactive=True, allow_custom_value=True)
    info = gr.Markdown(model_info({}, dropdown.value, task))
    if refresh_on_select:
        refresh_when_selected(session, dropdown, info, task)
    dropdown.change(lambda session_value, name: model_info(session_value, name, task),
                    [session, dropdown], info, api_visibility="private", queue=False)
    return dropdown, info


def warm_up() -> None:
    """Load the embedded defaults and run each once, so the first visitor's request does not
    pay for PyTorch's first-call set-up (a few hundred milliseconds on a CPU)."""
    for task in TASKS:
        loaded = embedded(task)
        if loaded is None:
            continue
        tok = loaded.tokenizer
        ids = torch.tensor([[tok.bos_token_id, tok.mask_token_id, tok.eos_token_id]])
        try:
            with torch.inference_mode():
                loaded.model(ids)
                loaded.model(ids, output_attentions=True)
        except Exception:  # only an optimisation: the first request will say what is wrong
            logging.getLogger(__name__).exception("warming up %s failed", loaded.name)


def warm_up_in_background(delay: float = 1.0) -> threading.Thread:
    """Warm up after `delay` seconds, so it does not compete with the server's start. Not a
    daemon: a process that exits meanwhile waits for it instead of aborting inside PyTorch."""
    timer = threading.Timer(delay, warm_up)
    timer.name = "warm-up"
    timer.start()
    return timer
