"""Small helpers every tab uses: turning library errors into plain messages, and making text
from a model or a visitor inert in Markdown."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

import gradio as gr

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


def user_error(message: str) -> gr.Error:
    """A gr.Error showing `message` as plain text."""
    return gr.Error(shown(message))


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
    running = (gr.update(interactive=False), gr.update(interactive=True))
    idle = (gr.update(interactive=True), gr.update(interactive=False))
    run = start_button.click(lambda: running, None, buttons, queue=False,
                             api_visibility="private").then(fn, inputs, outputs, **event_kwargs)
    for after in (run.then, run.failure):
        after(lambda: idle, None, buttons, queue=False, api_visibility="private")
    return run
