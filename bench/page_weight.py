"""How heavy the Train tab's page gets while it trains, measured in chromium (issue 13, item 2).

Launches the app in this process, opens it in Debian's chromium through playwright (no network:
every request that would leave 127.0.0.1 is aborted), optionally visits every tab first, starts
a run on a small pasted corpus (the embedded tokenizer, 32-token sequences: many steps a second,
so a long run's series build up quickly), and every few seconds records:

- the tab's JS heap (CDP Performance.getMetrics: JSHeapUsedSize) and the renderer process's
  resident memory (psutil; the process that draws the page),
- how long reading the page takes (`document.body.innerText`: the page's layout cost),
- how many points the loss chart holds,
- the share of the time the page's main thread spent in long tasks (> 50 ms): while it is
  busy it can neither take a click nor draw a message.

Then it presses Stop and reports, from the click as the page saw it: when the button greyed
and said "Stopping…" (the page's clock: no round trip), when the server received the request
(its "stop requested" log line, on the wall clock), when the page drew the server's "Stopping
after the current step…" message (the animation frame after it appeared) and when it drew the
run's status saying "Stopped after" (the final evaluation included). `--stops N` times N stops
(N-1 in new runs after `--every` seconds of training) and reports the median and the slowest.

    python bench/page_weight.py [--steps 5000] [--visit-tabs] [--tiny] [--stops 5] [--json F]

Targets (issue 13): tab memory <= 400 MB after a 5,000-step run, Stop acknowledged within
0.5 s, the same after visiting every tab. Run it on an idle machine: on a shared CPU the
training thread, the server and chromium compete, and the times say more about the machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tiny_assets: a fixture

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TABS = ("Fill-mask", "Sentiment", "Attention", "Masking", "Model", "Train")
MB = 1024 * 1024

LOSS_POINTS = """() => {
    const plot = document.querySelector('#train-loss-plot .js-plotly-plot');
    return plot && plot.data && plot.data.length ? plot.data[0].x.length : 0;
}"""
# Installed before the page loads: the time the page's main thread spends in long tasks (> 50 ms),
# during which it can neither take a click nor show a message.
COUNT_BUSY = """
window.__busyMs = 0;
new PerformanceObserver(list => {
    for (const entry of list.getEntries()) window.__busyMs += entry.duration;
}).observe({type: 'longtask', buffered: true});
"""
BUSY = "() => [window.__busyMs || 0, performance.now()]"
STEP = """() => {
    const m = (document.querySelector('#train-progress') || {innerText: ''})
        .innerText.match(/step ([0-9,]+)/);
    return m ? Number(m[1].replace(/,/g, '')) : 0;
}"""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000,
                        help="press Stop once the run has taken this many steps")
    parser.add_argument("--visit-tabs", action="store_true",
                        help="press every tab's main button before training")
    parser.add_argument("--tiny", action="store_true",
                        help="a throw-away untrained nano model instead of assets/")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--stops", type=int, default=1,
                        help="time Stop this many times: the first after --steps, the others "
                             "in new runs after --every seconds of training each")
    parser.add_argument("--max-seconds", type=float, default=1800.0,
                        help="press Stop after this long even if the run is not done")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--json", type=Path, help="also write the samples and summary here")
    return parser.parse_args(argv)


def renderer_rss(browser_pid: int | None) -> float | None:
    """Resident memory (MB) of the largest chromium renderer: the page's own process."""
    try:
        import psutil
    except ImportError:
        return None
    roots = [psutil.Process(browser_pid)] if browser_pid else [psutil.Process()]
    renderers = []
    for root in roots:
        for child in root.children(recursive=True):
            try:
                if "--type=renderer" in " ".join(child.cmdline()):
                    renderers.append(child.memory_info().rss)
            except psutil.Error:
                continue
    return max(renderers) / MB if renderers else None


def sample(page, cdp, started: float, last_busy: list) -> dict:
    """One row; `last_busy` holds the previous (busy ms, page ms) and is updated."""
    busy_ms, now_ms = page.evaluate(BUSY)
    busy = (busy_ms - last_busy[0]) / max(1.0, now_ms - last_busy[1])
    last_busy[:] = [busy_ms, now_ms]
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    t0 = time.perf_counter()
    page.evaluate("() => document.body.innerText.length")
    read_s = time.perf_counter() - t0
    return {"t": round(time.monotonic() - started, 1), "step": page.evaluate(STEP),
            "js_heap_mb": round(metrics.get("JSHeapUsedSize", 0) / MB, 1),
            "renderer_rss_mb": round(renderer_rss(None) or 0, 1),
            "dom_nodes": int(metrics.get("Nodes", 0)),
            "read_page_s": round(read_s, 3), "busy_share": round(busy, 2),
            "loss_points": page.evaluate(LOSS_POINTS)}


def visit_every_tab(page) -> None:
    for tab, button in (("Fill-mask", "Predict"), ("Sentiment", "Classify"),
                        ("Attention", "Show attention"), ("Masking", "Mask it"),
                        ("Model", None)):
        page.get_by_role("tab", name=tab).click()
        if button:
            page.locator(f"#tab-{tab.lower()}").get_by_role("button", name=button).first.click()
            time.sleep(5)
    page.get_by_role("tab", name="Train").click()


def start_run(page, steps: int) -> None:
    from tiny_assets import set_up_tiny_run

    tab = page.locator("#tab-train")
    set_up_tiny_run(tab, steps)
    tab.get_by_text("Settings: corpus, tokenizer").click()  # fold the settings away again
    page.locator("#train-start").click()


# In the page's own clock: when the Stop click reached the button, when it went grey, and when
# the "Stopping…" message was drawn (the animation frame after it entered the page). Measured
# in the page, not by polling from here: a poll waits behind the page's own work and reads late.
WATCH_STOP = """() => {
    window.stopClickedAt = window.stopGreyedAt = window.stopToastAt = window.stoppedAt = 0;
    const button = document.querySelector('#train-stop');
    button.addEventListener('click', () => { window.stopClickedAt = performance.now(); },
                            {capture: true, once: true});
    new MutationObserver((_, observer) => {
        if (button.disabled) { window.stopGreyedAt = performance.now(); observer.disconnect(); }
    }).observe(button, {attributes: true});
    new MutationObserver((_, observer) => {
        const toast = [...document.querySelectorAll('.toast-body')]
            .find(t => t.innerText.includes('Stopping after the current step'));
        if (toast) {
            observer.disconnect();
            requestAnimationFrame(() => { window.stopToastAt = performance.now(); });
        }
    }).observe(document.body, {childList: true, subtree: true, characterData: true});
    const status = document.querySelector('#train-status');
    new MutationObserver((_, observer) => {
        if (status.innerText.includes('Stopped after')) {
            observer.disconnect();
            requestAnimationFrame(() => { window.stoppedAt = performance.now(); });
        }
    }).observe(status, {childList: true, subtree: true, characterData: true});
}"""
SINCE_CLICK = "(at) => window[at] ? (window[at] - window.stopClickedAt) / 1000 : null"


class StopHeard(logging.Handler):
    """When the server logged that it received a stop request."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.at: float | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("stop requested"):
            self.at = time.time()  # the wall clock: the page's is performance.timeOrigin-based


def stop_and_time(page) -> dict:
    """Press Stop; seconds from the click (as the page saw it) until the button greyed and said
    "Stopping…", the server received it, the page drew the server's "Stopping after the current
    step…" message, and the page drew the run's status saying it stopped."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    heard = StopHeard()
    logger = logging.getLogger("roberta.ui")
    logger.addHandler(heard)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        page.evaluate(WATCH_STOP)
        pressed = time.time()
        page.locator("#train-stop").click(timeout=120_000)
        page.wait_for_function("() => window.stopGreyedAt && window.stopToastAt && "
                               "window.stoppedAt", timeout=300_000)
    except PlaywrightTimeout as err:  # a page too busy to take the click is a result too
        return {"stop_acknowledged_s": None, "stopped_s": None,
                "note": f"Stop did not go through: {str(err).splitlines()[0]}"}
    finally:
        logger.removeHandler(heard)
        logger.setLevel(level)
    # The click as the page saw it, on the wall clock (playwright's click may wait for the page).
    clicked = page.evaluate("() => (performance.timeOrigin + window.stopClickedAt) / 1000")
    return {"stop_greyed_s": round(page.evaluate(SINCE_CLICK, "stopGreyedAt"), 2),
            "stop_received_s": None if heard.at is None else round(heard.at - clicked, 2),
            "stop_acknowledged_s": round(page.evaluate(SINCE_CLICK, "stopToastAt"), 2),
            "stopped_s": round(page.evaluate(SINCE_CLICK, "stoppedAt"), 2),
            # how long playwright waited for the button to be clickable (stable, unobscured)
            "click_waited_s": round(clicked - pressed, 2)}


def stop_again(page, runs: int, seconds: float) -> list[dict]:
    """`runs` more times: Start the same settings, train `seconds`, press Stop and time it."""
    results = []
    for _ in range(runs):
        page.locator("#train-start").click()
        page.wait_for_function(  # training again: the last run's "Stopped after" is gone
            f"() => !document.querySelector('#train-stop').disabled && ({STEP})() > 0 && "
            f"!document.querySelector('#train-status').innerText.includes('Stopped after')")
        time.sleep(seconds)
        results.append(stop_and_time(page))
        print(json.dumps(results[-1]), flush=True)
        page.wait_for_function("() => !document.querySelector('#train-start').disabled")
    return results


def main(argv=None) -> dict:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    if args.tiny:
        from tiny_assets import make_tiny_assets

        from roberta.defaults import ASSETS_ENV

        os.environ[ASSETS_ENV] = str(make_tiny_assets(Path(tempfile.mkdtemp())))
    os.environ.setdefault("ROBERTA_LAB_MAX_STEPS", str(max(2 * args.steps, 5000)))
    os.environ.setdefault("ROBERTA_LAB_MAX_RUN_SECONDS", str(int(args.max_seconds) + 600))
    from playwright.sync_api import sync_playwright

    from roberta.ui.app import build_app, launch_kwargs

    demo = build_app()
    with socket.socket() as probe:  # a free port: other apps may hold Gradio's default
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1",
                server_port=port, **launch_kwargs())
    url = f"http://127.0.0.1:{port}/"
    samples, summary = [], {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium,
                                                 args=CHROMIUM_ARGS, headless=True)
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.route("**/*", lambda route: route.continue_() if urlparse(
                route.request.url).hostname in ("127.0.0.1", "localhost") or urlparse(
                route.request.url).scheme in ("data", "blob", "about") else route.abort())
            context.add_init_script(COUNT_BUSY)
            page = context.new_page()
            page.set_default_timeout(120_000)
            cdp = context.new_cdp_session(page)
            cdp.send("Performance.enable")
            page.goto(url)
            page.get_by_role("tab", name="Train").wait_for()
            started = time.monotonic()
            busy = [0.0, 0.0]
            samples.append({**sample(page, cdp, started, busy), "phase": "loaded"})
            if args.visit_tabs:
                visit_every_tab(page)
                samples.append({**sample(page, cdp, started, busy), "phase": "visited tabs"})
            page.get_by_role("tab", name="Train").click()
            # Twice as long as measured, so that Stop lands in a run with --steps behind it.
            start_run(page, 2 * args.steps)
            page.wait_for_function(f"({LOSS_POINTS})() >= 2", timeout=300_000)
            run_started = time.monotonic()
            while True:
                time.sleep(args.every)
                row = {**sample(page, cdp, started, busy), "phase": "training"}
                samples.append(row)
                print(json.dumps(row), flush=True)
                if row["step"] >= args.steps or \
                        time.monotonic() - run_started > args.max_seconds:
                    break
            stops = []
            if page.locator("#train-stop").is_enabled():
                stops.append(stop_and_time(page))
            else:
                summary["note"] = "the run finished before Stop could be pressed"
            samples.append({**sample(page, cdp, started, busy), "phase": "ended"})
            cdp.send("HeapProfiler.collectGarbage")
            samples.append({**sample(page, cdp, started, busy), "phase": "after GC"})
            stops += stop_again(page, args.stops - 1, args.every)
            browser.close()
    finally:
        demo.close()
    training = [s for s in samples if s["phase"] == "training"]
    for key in ("stop_greyed_s", "stop_received_s", "stop_acknowledged_s", "stopped_s",
                "click_waited_s"):
        times = sorted(t[key] for t in stops if t.get(key) is not None)
        if times:  # the median (the upper one of an even count) and the slowest
            summary[key], summary[key.removesuffix("_s") + "_max_s"] = \
                times[len(times) // 2], times[-1]
    summary.update({
        "stops_timed": len(stops),
        "steps_reached": max((s["step"] for s in samples), default=0),
        "peak_js_heap_mb": max(s["js_heap_mb"] for s in samples),
        "peak_renderer_rss_mb": max(s["renderer_rss_mb"] for s in samples),
        "slowest_page_read_s": max((s["read_page_s"] for s in training), default=None),
        "busiest_share_training": max((s["busy_share"] for s in training), default=None),
        "max_loss_points": max(s["loss_points"] for s in samples),
        "visited_tabs": args.visit_tabs, "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg()[0],
    })
    for s in samples:
        print(json.dumps(s))
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"samples": samples, "summary": summary}, indent=1))
    return summary


if __name__ == "__main__":
    main()
