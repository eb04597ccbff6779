"""A reload keeps the models: a session that ends with models is kept a while for its browser.

Gradio starts a new session on every page load, and this app lets a session's models go the
moment its page goes away (session_end.py), so a reload used to lose a finished run's model.
Now each browser carries a random key in its localStorage (gr.BrowserState); a session that ends
while holding models is set aside under that key for `KEEP_SECONDS` instead of being let go,
and the next page that loads with the same key takes its models back (the Fill-mask, Attention,
Model and Sentiment tabs list them again). Kept models still count against the host's caps;
after `KEEP_SECONDS` they are let go as before.

Where Gradio does not allow it: a run still training when the page goes away is stopped with its
session (its page streamed it), and the Train tab's own fields (the status, the download button)
start empty after a reload; API clients (gradio_client) carry no browser storage, so their
sessions end as before. A private window or storage the browser clears ends them too.
"""

from __future__ import annotations

import secrets
import threading

import gradio as gr

from roberta.ui import registry
from roberta.ui.common import shown

KEEP_SECONDS = 15 * 60
STORAGE_KEY = "roberta-lab-browser"
BROWSER_KEY = "browser key"  # the session dict's entry holding its browser's key

_kept: dict[str, list[dict]] = {}  # browser key -> sessions that ended with models
_lock = threading.Lock()


def browser_state() -> gr.BrowserState:
    """The browser's key, in its localStorage. Call inside the Blocks."""
    return gr.BrowserState("", storage_key=STORAGE_KEY)


def release_or_keep(session: dict | None) -> int:
    """The session gr.State's delete_callback: a session with models and a browser key is kept
    for its browser; any other is let go at once (registry.release). How many models were let
    go now."""
    key = session.get(BROWSER_KEY) if isinstance(session, dict) else None
    if not key or not _models(session):
        return registry.release(session)
    with _lock:
        kept = _kept.setdefault(key, [])
        if any(earlier is session for earlier in kept):
            return 0  # kept already (Gradio's state deletion was tried twice)
        kept.append(session)
    timer = threading.Timer(KEEP_SECONDS, _let_go, (key, session))
    timer.daemon = True
    timer.start()
    return 0


def _models(session: dict) -> dict:
    return session.get(registry.SESSION_MODELS) or {}


def _let_go(key: str, session: dict) -> None:
    with _lock:
        sessions = _kept.get(key, [])
        if session not in sessions:
            return  # taken back by a reload
        sessions.remove(session)
        if not sessions:
            _kept.pop(key, None)
    registry.release(session)


def take_back(browser_key: str | None, session: dict | None) -> tuple[str, dict]:
    """On page load: give this browser a key if it has none, and move the models its earlier
    sessions left (a reload, or a page closed a moment ago) into this one."""
    session = session if isinstance(session, dict) else {}
    key = browser_key if isinstance(browser_key, str) and 16 <= len(browser_key) <= 64 \
        else secrets.token_urlsafe(24)
    session[BROWSER_KEY] = key
    with _lock:
        earlier = _kept.pop(key, [])
    names = []
    for old in earlier:
        for name, loaded in list(_models(old).items()):
            try:
                registry.add(session, loaded)  # already counted by the host: costs nothing
            except gr.Error:  # this session is full: the rest stays let go
                break
            names.append(name)
        registry.release(old)
    if names:
        gr.Info(shown(f"Your models from before the reload are back: "
                      f"{', '.join(f'“{n}”' for n in names)} (in the model lists of the other "
                      f"tabs)."))
    return key, session


def keep_models_across_reloads(demo: gr.Blocks, session: gr.State) -> None:
    """Call inside `with demo:`, with the app's session gr.State (whose delete_callback must be
    `release_or_keep`)."""
    key = browser_state()
    demo.load(take_back, [key, session], [key, session], api_visibility="private")
