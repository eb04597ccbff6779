"""The browser asks before leaving a page whose run trains, and "stay" keeps the run.

A run belongs to its page: reloading or closing the page ends the session, and the server stops
the run (issue 33: "at step 400 the page came back to 'Press Start'"). While a run trains its
Start button is disabled (common.start_stop), so the page asks the browser's own leave-page
question (`beforeunload`) exactly while one of the tabs' Start buttons is. Browsers show their
own wording, and only once the visitor has interacted with the page (they pressed Start).

Gradio's frontend has a `beforeunload` listener of its own that closes the page's connection to
the server whatever the visitor answers, so a visitor who chose to stay lost the run anyway
(measured: the stream broke, Gradio's reconnect reloaded the page). Listeners run in the order
they were added and Gradio adds its own before a `head` script runs, so this script must run
first: `EarlyScriptMiddleware` puts it into the page's HTML ahead of Gradio's module (Gradio has
no public way to run a script earlier). It wraps every `beforeunload` listener added after it so
that none runs while a run trains; a visitor who leaves anyway drops the connection with the page.
"""

from __future__ import annotations

# The Start buttons of the runs that take the training slot: Train, Experiments, Sentiment.
RUN_STARTS = ("train-start", "compare-start", "finetune-start")

LEAVE_GUARD_SCRIPT = """<script>
(() => {
  const starts = RUN_STARTS;
  const disabled = id => {
    const element = document.getElementById(id);
    if (!element) return false;
    const button = element.tagName === "BUTTON" ? element : element.querySelector("button");
    return Boolean(button && button.disabled);
  };
  window.robertaLabRunGoing = () => starts.some(disabled);  // for tests
  const add = window.addEventListener, remove = window.removeEventListener;
  add.call(window, "beforeunload", event => {
    if (!window.robertaLabRunGoing()) return;
    event.preventDefault();
    event.returnValue = "";  // older browsers need it set to ask
  });
  const wrapped = new WeakMap();  // a listener added later -> the one that skips while training
  window.addEventListener = function (type, listener, options) {
    if (type !== "beforeunload" || typeof listener !== "function") {
      return add.call(this, type, listener, options);
    }
    if (!wrapped.has(listener)) {
      wrapped.set(listener, function (event) {
        if (!window.robertaLabRunGoing()) return listener.call(this, event);
      });
    }
    return add.call(this, type, wrapped.get(listener), options);
  };
  window.removeEventListener = function (type, listener, options) {
    return remove.call(this, type, wrapped.get(listener) || listener, options);
  };
})();
</script>""".replace("RUN_STARTS", "[" + ", ".join(f'"{s}"' for s in RUN_STARTS) + "]")

_MODULE_TAG = b'<script type="module"'


class EarlyScriptMiddleware:
    """ASGI middleware: puts LEAVE_GUARD_SCRIPT into every HTML page just before its first
    module script (Gradio's app), so it runs before Gradio adds its listeners. Other responses
    pass through untouched. Give it to Gradio as `launch(app_kwargs={"middleware": [...]})`."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "GET":
            return await self.app(scope, receive, send)
        start: dict | None = None
        chunks: list[bytes] = []

        async def rewrite(message):
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                if headers.get(b"content-type", b"").startswith(b"text/html") and \
                        b"content-encoding" not in headers:
                    start = message  # held until the whole body is here
                    return
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                body = b"".join(chunks).replace(
                    _MODULE_TAG, LEAVE_GUARD_SCRIPT.encode() + _MODULE_TAG, 1)
                headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                await send({**start, "headers": headers})
                return await send({"type": "http.response.body", "body": body})
            await send(message)

        await self.app(scope, receive, rewrite)
