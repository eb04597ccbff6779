"""A script for the page's <head>: the browser asks before leaving a page whose run trains.

A run belongs to its page: reloading or closing the page ends the session, and the server stops
the run (issue 33: "at step 400 the page came back to 'Press Start'"). While a run trains its
Start button is disabled (common.start_stop), so the page asks the browser's own leave-page
question (`beforeunload`) exactly while one of the tabs' Start buttons is. Browsers show their
own wording, and only once the visitor has interacted with the page (they pressed Start).
Gradio's frontend closes its connection on `beforeunload` whatever the answer, which would end
the run of a visitor who chose to stay; while a run trains the guard skips those aborts.
"""

from __future__ import annotations

# The Start buttons of the runs that take the training slot: Train, Experiments, Sentiment.
RUN_STARTS = ("train-start", "compare-start", "finetune-start")

LEAVE_GUARD_HEAD = """<script>
(() => {
  const starts = RUN_STARTS;
  const disabled = id => {
    const element = document.getElementById(id);
    if (!element) return false;
    const button = element.tagName === "BUTTON" ? element : element.querySelector("button");
    return Boolean(button && button.disabled);
  };
  window.robertaLabRunGoing = () => starts.some(disabled);  // for tests
  window.addEventListener("beforeunload", event => {
    if (!window.robertaLabRunGoing()) return;
    event.preventDefault();
    event.returnValue = "";  // older browsers need it set to ask
  });
  // Gradio's frontend has its own beforeunload listener, registered before this script loads,
  // which aborts the page's streams from the server even when the visitor then chooses to stay
  // (the run would end). While a run trains, aborts asked for during beforeunload are skipped;
  // leaving anyway drops the connections as before.
  const abort = AbortController.prototype.abort;
  AbortController.prototype.abort = function (...args) {
    const event = window.event;
    if (event && event.type === "beforeunload" && window.robertaLabRunGoing()) return;
    return abort.apply(this, args);
  };
})();
</script>""".replace("RUN_STARTS", "[" + ", ".join(f'"{s}"' for s in RUN_STARTS) + "]")
