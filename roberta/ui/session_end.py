"""When a visitor leaves: their session's state is dropped, their uploads deleted, and the memory
handed back, at once rather than an hour later.

Gradio keeps a closed session's gr.State values for an hour (in case the tab reconnects) and
its uploaded files until the cache sweep; on a shared host that is a model per import and a file
per upload, held long after anyone can use them (a reload starts a new session anyway). The
unload event runs as soon as the browser tab's (or gradio_client's) heartbeat ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import gradio as gr

from roberta.ui import registry

log = logging.getLogger(__name__)


def upload_folder() -> Path:
    """Where Gradio keeps uploads (and the files it serves)."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")


def _paths_in(value: object) -> Iterator[str]:
    """Every "path" of Gradio's file data inside a component's value (a file, a list of them)."""
    if isinstance(value, dict):
        if isinstance(value.get("path"), str):
            yield value["path"]
        for item in value.values():
            if isinstance(item, (dict, list)):
                yield from _paths_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _paths_in(item)


def session_uploads(session_state) -> list[Path]:
    """Files this session sent to upload components, as Gradio recorded their last values."""
    folder = upload_folder().resolve()
    found = []
    for config in list(getattr(session_state, "config_values", {}).values()):
        value = (config or {}).get("props", {}).get("value") if isinstance(config, dict) else None
        for path in _paths_in(value):
            resolved = Path(path).resolve()
            if resolved.is_relative_to(folder) and resolved.is_file():
                found.append(resolved)
    return found


def delete_uploads(paths: list[Path]) -> None:
    """Delete those of `paths` that are in Gradio's upload folder, and the one-file folders
    Gradio made for them; a path elsewhere (a program's own file) is left alone."""
    folder = upload_folder().resolve()
    for path in (Path(p).resolve() for p in paths):
        if not path.is_relative_to(folder):
            continue
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # the folder is removed only when empty
            path.parent.rmdir()


def hand_memory_back(collect_cycles: bool) -> None:
    """Ask glibc to return freed pages: without it a freed model's memory stays in the
    process's arenas and RSS never comes down. A model is freed by reference counting; a full
    cycle collection (`collect_cycles`, ~0.2-0.7 s holding the GIL on this host) only when
    models were let go, in case something of theirs sits in a cycle."""
    if collect_cycles:
        gc.collect()
    libc = ctypes.util.find_library("c")
    if libc:
        with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
            ctypes.CDLL(libc).malloc_trim(0)


def drop_session(holder, session_hash: str) -> None:
    """Drop every gr.State of the session and then the session itself from Gradio's holder.

    Gradio's own `delete_state` only reaches states a handler has *returned*; a state that is
    only ever changed in place (a tab's run control: its last model, its trainer, its zip) is
    kept with the session, and Gradio keeps a closed session's values (charts included) until
    10,000 newer sessions push it out. So the rest are dropped here, each state's
    delete_callback run first (a tab's deletes its zip). The keys are read once, before any
    is dropped: the session's last event (a run's generator stopping) may still add one, which
    made Gradio's own loop over them fail ("dictionary changed size during iteration")."""
    session_state = holder.session_data.get(session_hash)
    if session_state is None:
        return
    for key in list(session_state.state_data):
        block = session_state.blocks_config.blocks.get(key)
        value = session_state.state_data.pop(key, None)
        callback = getattr(block, "delete_callback", None)
        if callable(callback):
            callback(value)
    with holder.lock:
        holder.session_data.pop(session_hash, None)
        holder.time_last_used.pop(session_hash, None)


def end_session(demo: gr.Blocks, session_hash: str | None) -> None:
    holder = getattr(demo, "state_holder", None)  # Gradio's {session hash: its state}
    if holder is None or not session_hash or session_hash not in holder:
        return
    session_state = holder.session_data[session_hash]
    uploads = session_uploads(session_state)
    models_before = len(registry.held_models())
    drop_session(holder, session_hash)
    delete_uploads(uploads)
    models_freed = models_before - len(registry.held_models())
    hand_memory_back(collect_cycles=models_freed > 0)
    log.info("a session ended: its state was dropped (%d model(s) let go) and %d upload(s) "
             "deleted", models_freed, len(uploads))


def free_sessions_when_they_end(demo: gr.Blocks) -> None:
    """Call inside `with demo:`."""

    def session_ended(request: gr.Request) -> None:
        end_session(demo, getattr(request, "session_hash", None))

    demo.unload(session_ended)
