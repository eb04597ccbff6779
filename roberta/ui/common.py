"""Small helpers every tab uses: turning library errors into plain messages, and making text
from a model or a visitor inert in Markdown."""

from __future__ import annotations

import html
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import gradio as gr

from roberta.tokenizer import MASK

log = logging.getLogger("roberta.ui")


def shown(message: str) -> str:
    """Gradio renders pop-up messages as HTML, where "<mask>" would vanish as an unknown tag:
    escape it so the message reads as written."""
    return html.escape(message, quote=False)


# Characters that start Markdown syntax: emphasis, code, links and images, headings, tables,
# strikethrough, LaTeX. Each is shown as itself when preceded by a backslash.
_MARKDOWN_SYNTAX = re.compile(r"([\\`*_\[\]()#|!~$])")


def markdown_literal(text: object) -> str:
    """`text` as one line that Markdown (and the HTML it may contain) shows exactly as typed.

    Labels, tokens, model and file names come from checkpoints and visitors, so none of them
    may become a tag, a link, an image or a code fence: line breaks become spaces (no line can
    start a fence, a heading or a list), Markdown's syntax characters are backslash-escaped,
    and then `< > & " '` become entities (after, so the `#` of an entity stays intact).
    Gradio's sanitiser would strip event handlers too, but the page must not rely on it."""
    one_line = " ".join(str(text).splitlines())
    return html.escape(_MARKDOWN_SYNTAX.sub(r"\\\1", one_line), quote=True)


def _server_folders() -> list[str]:
    """Folders whose paths say nothing to a visitor and something about the server: the temp
    folder (uploads, Gradio's cache, import folders), Gradio's own, the home folder."""
    folders = {tempfile.gettempdir(), os.environ.get("GRADIO_TEMP_DIR", ""),
               os.path.expanduser("~")}
    return sorted((f.rstrip("/") for f in folders if len(f.rstrip("/")) > 1), key=len,
                  reverse=True)


_PATH_CHAR = r"[^\s'\"“”`,;:()<>]"  # what ends a path inside a sentence


def without_server_paths(message: str) -> str:
    """Library messages name files by their full path (right for the command line); on the page
    a path under a server folder becomes its file name: "model.safetensors is not…" rather than
    "/tmp/roberta-import-x1y2/checkpoint/model.safetensors is not…"."""
    for folder in _server_folders():
        path = re.escape(folder) + rf"(?:/{_PATH_CHAR}*)?(?!{_PATH_CHAR})"
        message = re.sub(path, lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1] or "…", message)
    return message


def user_error(message: str) -> gr.Error:
    """A gr.Error showing `message` as plain text, without the server's paths. A visitor's
    mistake is not the server's: it is logged as one line at INFO, and Gradio is told not to
    print its traceback."""
    log.info("refused: %s", message)
    return gr.Error(shown(without_server_paths(message)), print_exception=False)


# --- numbers from the page or a program ----------------------------------------------------

# Gradio's Number and Slider pass any JSON value to their preprocess: a string fails there with
# a TypeError that the page only sees as "the upstream app raised an exception", NaN (which a raw
# HTTP client can send) reaches the handler, and a huge integer overflows a seed.
LARGEST_WHOLE_NUMBER = 2**63 - 1  # what torch and numpy take as a seed


def checked_number(value: object, label: str, minimum: float | None = None,
                   maximum: float | None = None, whole: bool = False) -> float | int | None:
    """`value` as a finite number within [minimum, maximum] (a whole one when `whole`), or a
    user_error naming the field. None (a cleared field) passes through."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise user_error(f"{label} must be a number, not {str(value)[:40]!r}.")
    if not math.isfinite(value):
        raise user_error(f"{label} must be a finite number, not {value}.")
    if whole and abs(round(value)) > LARGEST_WHOLE_NUMBER:
        raise user_error(f"{label} must be a whole number between {-LARGEST_WHOLE_NUMBER:,} "
                         f"and {LARGEST_WHOLE_NUMBER:,}.")
    if minimum is not None and value < minimum:
        raise user_error(f"{label} must be at least {minimum:g}, not {value:g}.")
    if maximum is not None and value > maximum:
        raise user_error(f"{label} must be at most {maximum:g}, not {value:g}.")
    return value


def checked_choice(value: object, label: str, many: bool) -> object:
    """A dropdown's value as Gradio may pass it from a program: one name or number (a list of
    them when `many`), else a user_error naming the field. None (nothing chosen) passes."""
    if value is None:
        return None
    scalar = (str, int, float)
    if many:
        if not isinstance(value, list) or not all(
                isinstance(v, scalar) and not isinstance(v, bool) for v in value):
            raise user_error(f"{label} must be a list of choices, not {str(value)[:40]!r}.")
    elif isinstance(value, bool) or not isinstance(value, scalar):
        raise user_error(f"{label} must be one choice, not {str(value)[:40]!r}.")
    return value


class _PlainFileModel:
    """A File component's data model (FileData, ListFiles) whose validation failure (a string,
    a number or a list where an uploaded file goes) is a plain message naming the field;
    everything else is the model's own."""

    def __init__(self, model, label: str):
        self._model, self._label = model, label

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    def model_validate(self, value, *args, **kwargs):
        from pydantic import ValidationError

        try:
            return self._model.model_validate(value, *args, **kwargs)
        except ValidationError:
            raise user_error(f"{self._label} must be an uploaded file, not "
                             f"{str(value)[:40]!r}.") from None


def _check_input(block, payload) -> None:
    """user_error unless `payload` is a value `block` (an input of this app) can take."""
    if isinstance(block, (gr.Number, gr.Slider)):
        label = f"“{block.label or 'The number'}”"
        if payload is None:  # every number of this app has a value (none means "unset")
            raise user_error(f"{label} must be a number, not None.")
        checked_number(payload, label, block.minimum, block.maximum,
                       whole=block.precision == 0)
        return
    label = f"“{block.label or 'The choice'}”"
    if isinstance(block, gr.Checkbox):
        if not isinstance(payload, bool):
            raise user_error(f"{label} must be true or false, not {str(payload)[:40]!r}.")
        return
    many = isinstance(block, gr.CheckboxGroup) or bool(getattr(block, "multiselect", False))
    checked_choice(payload, label, many)
    if payload is None or getattr(block, "allow_custom_value", False):
        return
    allowed = [value for _, value in block.choices]
    for value in payload if many else [payload]:
        if value not in allowed:
            shown_choices = ", ".join(map(str, allowed[:12])) + (", …" if len(allowed) > 12
                                                                 else "")
            raise user_error(f"{label} must be one of {shown_choices}; not "
                             f"{str(value)[:40]!r}.")


FILE_INPUTS = (gr.File, gr.UploadButton)
GUARDED_INPUTS = (gr.Number, gr.Slider, gr.Dropdown, gr.Radio, gr.CheckboxGroup, gr.Checkbox,
                  *FILE_INPUTS)


def guard_number_inputs(demo: gr.Blocks) -> None:
    """Check every Number, Slider, Dropdown, Radio, CheckboxGroup, Checkbox, File and
    UploadButton of `demo` before Gradio preprocesses it: a wrong value (text, NaN, infinity,
    out of range, a whole number too large, None; a list or an object where one choice goes, a
    single value where a list goes, a value that is not one of the choices; anything but true
    or false for a checkbox; anything but an uploaded file where one goes) is a plain message
    naming the field, logged at INFO, instead of Gradio's generic error or its own refusal with a
    traceback in the log. What Gradio's conversion still refuses (a file of the wrong type) is
    shown the same quiet way."""
    for block in demo.blocks.values():
        if isinstance(block, FILE_INPUTS) and block.data_model is not None \
                and not isinstance(block.data_model, _PlainFileModel):
            block.data_model = _PlainFileModel(block.data_model, f"“{block.label or 'File'}”")
        if not isinstance(block, GUARDED_INPUTS) or hasattr(block, "_unchecked"):
            continue
        block._unchecked = block.preprocess  # the component's own conversion, run after

        def preprocess(payload, block=block):
            if not isinstance(block, FILE_INPUTS):
                _check_input(block, payload)
            try:
                return block._unchecked(payload)
            except gr.Error as err:  # Gradio's own refusal: the message, without a traceback
                if not getattr(err, "print_exception", True):
                    raise
                raise user_error(str(err.message)) from None

        block.preprocess = preprocess


MISSING_VALUES = ("This call does not send a value for each of the endpoint's parameters: send "
                  "them all, in order (the app's API page lists them).")
SERVER_FILE = ("A file can only be given by uploading it to this app; this one names a file on "
               "the server, which is not read.")


def plain_request_errors(demo: gr.Blocks) -> None:
    """Two refusals Gradio makes before any component sees a value, each printed with a
    traceback and shown to a program as a bare error: a call with fewer values than its
    endpoint takes, and a file given as a path on the server that nobody uploaded (Gradio rightly
    will not read it; any argument may carry one, since Gradio looks for files in every value).
    Both become a plain sentence, logged as one line; the checks themselves stay Gradio's."""
    from gradio.exceptions import InvalidPathError

    checked = demo.preprocess_data

    async def preprocess_data(block_fn, inputs, state, explicit_call=False):
        if not isinstance(inputs, list) or len(inputs) < len(block_fn.inputs):
            raise user_error(MISSING_VALUES)
        try:
            return await checked(block_fn, inputs, state, explicit_call)
        except InvalidPathError:
            raise user_error(SERVER_FILE) from None

    demo.preprocess_data = preprocess_data


@contextmanager
def plain_errors(action: str) -> Iterator[None]:
    """Show a library ValueError as its own plain sentence and anything unexpected as one line
    (the traceback goes to the server log, never to the page)."""
    try:
        yield
    except gr.Error:
        raise
    except ValueError as err:
        raise user_error(str(err)) from None
    except Exception as err:
        log.exception("%s failed", action)
        raise user_error(f"{action} failed unexpectedly ({type(err).__name__}: {err}).") from None


def request_stop(control: dict | None, run: str, kept: str) -> str:
    """Ask this browser tab's run (`control` is its gr.State) to stop after the current step, or
    to leave the queue; `run` names it ("training run"), `kept` says what survives."""
    control = control if isinstance(control, dict) else {}
    if not control.get("running"):
        return f"No {run} is going in this browser tab."
    control["stop"].set()
    log.info("stop requested: %s", run)  # the host's record; bench/page_weight.py times it
    trainer = control.get("trainer")
    if trainer is not None:
        trainer.stop()
    message = f"Stopping after the current step… {kept}"
    gr.Info(message)
    return message


def start_stop(start_button: gr.Button, stop_button: gr.Button, fn, inputs, outputs,
               **event_kwargs):
    """Wire a long run to its Start and Stop buttons: Start disables itself and enables Stop,
    `fn` runs, and both buttons go back when it ends — also when it raised (a settings error):
    a `.then` after an event that raised does not run, a `.failure` does."""
    buttons = [start_button, stop_button]
    # Client-side updates (no round trip, so nothing can arrive out of order): Start greys and
    # Stop wakes at once; when the run ends, Start wakes and Stop greys with its own label back.
    running = _set_buttons(start=False, stop=True, stop_label=stop_button.value)
    idle = _set_buttons(start=True, stop=False, stop_label=stop_button.value)
    run = start_button.click(None, None, buttons, js=running, api_visibility="private") \
        .then(fn, inputs, outputs, **event_kwargs)
    for after in (run.then, run.failure):
        after(None, None, buttons, js=idle, api_visibility="private")
    # Stop greys out and says "Stopping…" the moment it is pressed, in the browser, however busy
    # the page or the server is; the tab's own Stop handler answers from the server (its
    # "Stopping after the current step…" message may wait behind chart redraws).
    stop_button.click(None, None, stop_button, js=STOPPING, api_visibility="private")
    return run


STOPPING = "() => ({__type__: 'update', interactive: false, value: 'Stopping…'})"


def _set_buttons(start: bool, stop: bool, stop_label: str) -> str:
    """A js-only event's function: the Start and Stop buttons' new state."""
    update = {"__type__": "update"}
    return (f"() => [{json.dumps({**update, 'interactive': start})}, "
            f"{json.dumps({**update, 'interactive': stop, 'value': stop_label})}]")


def check_masked_text(text: str | None) -> str:
    """Plain messages for the mistakes people make in a fill-mask text before the library sees
    it (Fill-mask and its side-by-side comparison)."""
    if not isinstance(text, str) or not text.strip():
        raise user_error("The text is empty: type a sentence with <mask> where a word should be "
                         "guessed.")
    if MASK not in text and re.search(r"\[mask\]|<mask>", text, flags=re.IGNORECASE):
        raise user_error("RoBERTa's mask token is written <mask> (lower case, angle brackets), "
                         "not [MASK] as in BERT.")
    return text
