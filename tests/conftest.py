"""Shared fixtures: a tiny embedded model, the app served in-process, a client, a browser.

- `tiny_assets`: an assets folder with an untrained nano masked LM and sentiment classifier
  (tokenizer trained on a few hundred sentences); ROBERTA_LAB_ASSETS points at it for the
  session, so the app's "embedded" models are these.
- `app_url`: the whole app launched in this process on a free port (once per session).
- `client`: a fresh `gradio_client.Client` (so a fresh browser session) per test.
- `browser` / `page`: Debian's chromium driven by playwright. `page` aborts and records every
  request that would leave 127.0.0.1; a test that caused one fails. Without chromium the browser
  tests skip, unless ROBERTA_LAB_REQUIRE_BROWSER=1 (CI), where they fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import torch
from gradio_client import Client as GradioClient
from hypothesis import settings as hypothesis_settings

from roberta.defaults import ASSETS_ENV

# Property tests draw the same examples on every run and every machine: a CI failure can be
# reproduced, and a green run is not luck of the draw (HYPOTHESIS_PROFILE=explore to search).
hypothesis_settings.register_profile("repeatable", derandomize=True, deadline=None)
hypothesis_settings.register_profile("explore", deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

# One intra-op thread: the suite shares 2 cores with chromium and the app's server threads, and
# oversubscribed OpenMP threads run small models ~10x slower (measured here).
torch.set_num_threads(int(os.environ.get("ROBERTA_LAB_TEST_THREADS", "1")))

REQUIRE_BROWSER_ENV = "ROBERTA_LAB_REQUIRE_BROWSER"
# The same chromium .ci/run checks for: the one on the PATH (Debian's: /usr/bin/chromium).
CHROMIUM = Path(os.environ.get("ROBERTA_LAB_CHROMIUM") or shutil.which("chromium")
                or "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
LOCAL_SCHEMES = {"data", "blob", "about"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_local(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in LOCAL_SCHEMES or parsed.hostname in LOCAL_HOSTS


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory) -> Path:
    from tiny_assets import make_tiny_assets

    from roberta.ui import registry

    directory = make_tiny_assets(tmp_path_factory.mktemp("assets"))
    previous = os.environ.get(ASSETS_ENV)
    os.environ[ASSETS_ENV] = str(directory)
    registry.clear_embedded_cache()
    yield directory
    if previous is None:
        os.environ.pop(ASSETS_ENV, None)
    else:
        os.environ[ASSETS_ENV] = previous
    registry.clear_embedded_cache()


def launch(demo) -> str:
    from roberta.ui.app import launch_kwargs

    port = free_port()
    demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1",
                server_port=port, **launch_kwargs())
    return f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="session")
def launch_app():
    """launch(demo) -> url, for tests that need an app of their own (close it after)."""
    return launch


@pytest.fixture(scope="session")
def app_url(tiny_assets) -> str:
    from roberta.ui.app import build_app

    demo = build_app()
    url = launch(demo)
    yield url
    demo.close()


@pytest.fixture(scope="session")
def browser_app_url(tiny_assets) -> str:
    """An app of the browser tests' own: an API test's run (or one whose client has left and
    that has not yet noticed) never holds the training slot a browser test presses Start for."""
    from roberta.ui.app import build_app

    demo = build_app()
    url = launch(demo)
    yield url
    demo.close()


# The longest a test waits for one API call: a hung endpoint fails the test that called it
# with a TimeoutError instead of hanging until pytest-timeout kills the whole session's process.
PREDICT_TIMEOUT_S = 300


class TimedClient(GradioClient):
    """gradio_client's Client whose predict() gives up after PREDICT_TIMEOUT_S seconds
    (Client.predict waits forever: it is submit(...).result() with no timeout)."""

    def predict(self, *args, api_name=None, fn_index=None, headers=None, **kwargs):
        job = self.submit(*args, api_name=api_name, fn_index=fn_index, headers=headers,
                          **kwargs)
        return job.result(timeout=PREDICT_TIMEOUT_S)


@pytest.fixture(scope="session")
def connect():
    """connect(url) -> a new TimedClient (a new browser session) on that app."""
    return lambda url: TimedClient(url, verbose=False)


@pytest.fixture
def client(app_url, connect):
    return connect(app_url)


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The chromium executable; fail (CI) or skip (elsewhere) when it is missing."""
    problem = None
    if not CHROMIUM.is_file():
        problem = (f"chromium not found at {CHROMIUM}; install it with "
                   f"`apt-get update && apt-get install -y chromium`")
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "playwright is not installed (pip install -r requirements-dev.txt)"
    if problem:
        if os.environ.get(REQUIRE_BROWSER_ENV) == "1":
            pytest.fail(f"{problem} ({REQUIRE_BROWSER_ENV}=1: browser tests must run)",
                        pytrace=False)
        pytest.skip(problem)
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS,
                                              headless=True)
        yield launched
        launched.close()


class OfflineGuard:
    """Aborts and remembers every request (and websocket) that would leave 127.0.0.1."""

    def __init__(self):
        self.outside: list[str] = []

    def route(self, route):
        url = route.request.url
        if is_local(url):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def websocket(self, ws):
        if not is_local(ws.url):
            self.outside.append(ws.url)

    def check(self) -> None:
        assert not self.outside, f"requests left 127.0.0.1: {self.outside}"


@pytest.fixture(scope="module")
def offline_guard() -> OfflineGuard:
    return OfflineGuard()


@pytest.fixture(autouse=True)
def stays_offline(request):
    """A browser test fails at its own request that left 127.0.0.1 (the page fixture checks
    again when its module ends)."""
    if request.node.get_closest_marker("browser") is None:
        yield
        return
    guard = request.getfixturevalue("offline_guard")
    yield
    guard.check()


# Every toast the page shows, kept in window.__toasts as it appears: Gradio's toasts expire
# after a few seconds, so counting them on the page later can miss one.
RECORD_TOASTS = """
window.__toasts = [];
new MutationObserver(records => {
  for (const record of records) for (const node of record.addedNodes) {
    if (!(node instanceof Element)) continue;
    const bodies = node.matches('.toast-body') ? [node] : node.querySelectorAll('.toast-body');
    for (const body of bodies) window.__toasts.push({error: body.classList.contains('error'),
                                                     text: body.innerText});
  }
}).observe(document, {childList: true, subtree: true});
"""


class PageErrors:
    """JavaScript errors on the page: uncaught exceptions and console.error messages.

    A test that caused one fails (conftest's autouse check), so a frontend that throws while
    the assertions happen to pass still fails. Failed loads of requests the OfflineGuard
    aborted are its business, not counted twice here."""

    def __init__(self):
        self.errors: list[str] = []

    def on_page_error(self, error) -> None:
        self.errors.append(f"uncaught: {error}")

    def on_console(self, message) -> None:
        if message.type == "error" and "net::ERR_FAILED" not in message.text:
            self.errors.append(f"console.error: {message.text}")

    # What Gradio's frontend logs when its page goes away (its beforeunload listener closes the
    # connection): expected when a test reloads the page, an error anywhere else.
    UNLOAD_NOISE = ("AbortError: signal is aborted without reason",
                    "Unexpected error Connection errored out.")

    @contextlib.contextmanager
    def reloading(self):
        """Around a test's own reload: Gradio's unload messages are not counted."""
        before = len(self.errors)
        yield
        self.errors[before:] = [e for e in self.errors[before:]
                                if not any(noise in e for noise in self.UNLOAD_NOISE)]

    def check(self) -> None:
        errors, self.errors = self.errors, []
        assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="module")
def page_errors() -> PageErrors:
    return PageErrors()


@pytest.fixture(autouse=True)
def no_javascript_errors(request):
    """Fails a browser test during which the page logged a JavaScript error."""
    if "page" not in request.fixturenames:
        yield
        return
    errors = request.getfixturevalue("page_errors")
    errors.check()  # one left from loading the page or an earlier test is reported there
    yield
    errors.check()


@pytest.fixture
def shown_toasts(page):
    """shown_toasts() -> every toast shown so far on the module's page, expired or not, as
    {"error": bool, "text": str} in order of appearance."""
    return lambda: page.evaluate("window.__toasts")


@pytest.fixture(scope="module")
def page(browser, browser_app_url, offline_guard, page_errors):
    """One page per test module (loading Gradio's frontend is the slow part), with every
    request that would leave 127.0.0.1 aborted and recorded; the module fails if there was
    one. Tests call `offline_guard.check()` to fail at the request's own test. JavaScript
    errors are recorded too (PageErrors) and fail the test they happened in."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.route("**/*", offline_guard.route)
    context.add_init_script(RECORD_TOASTS)
    new_page = context.new_page()
    new_page.on("websocket", offline_guard.websocket)
    new_page.on("pageerror", page_errors.on_page_error)
    new_page.on("console", page_errors.on_console)
    new_page.set_default_timeout(60_000)  # generous: CI machines are shared
    new_page.goto(browser_app_url)
    new_page.get_by_role("tab", name="Fill-mask").wait_for()
    yield new_page
    context.close()
    offline_guard.check()


def pytest_report_header(config):
    found = "found" if CHROMIUM.is_file() else "MISSING"
    return [f"chromium: {CHROMIUM} ({found}); python {sys.version.split()[0]}"]


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: absent when it is not installed
def pytest_xdist_make_scheduler(config, log):
    """The heaviest tests first, one per worker (tests/heaviest_first.py); another --dist mode
    asked for on the command line is left to xdist (None)."""
    if config.getvalue("dist") != "load":
        return None
    from heaviest_first import HeaviestFirst
    return HeaviestFirst(config, log)
