"""A bounded load test of the app on this machine: N fill-mask clients, 2 training sessions and 1
importer, all through gradio_client against the app started here on a free loopback port.

    python -m bench.load --clients 8 --seconds 60

It stops by itself: every client ends after `--seconds`, then the clients disconnect, the
script waits `--settle` seconds for the server to let go of their sessions, reads the server's
memory and temp folder once more, and stops the server. Nothing leaves 127.0.0.1.

Reported: fill-mask latency (p50, p95), calls and errors per kind of client, the server's
resident memory (RSS) and its temp folder's size at the start (after one warm-up of each
kind, so first-use caches are not counted as growth), at the peak, and after the clients left.
Targets on a 2-core host: 0 errors, RSS back within 100 MB of the start, the temp folder back
to its start.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MASKED = "The food was <mask> and the service was slow."
TRAIN_ARGS = dict(tokenizer="embedded", seq_length=64, batch_size=4, eval_every=1000)
SERVER = """
import logging, sys
logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
logging.getLogger("roberta").setLevel(logging.INFO)
from roberta.ui.app import build_app, launch_kwargs
build_app().launch(server_name="127.0.0.1", server_port=int(sys.argv[1]), quiet=True,
                   **launch_kwargs())
"""


@dataclass
class Tally:
    seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, call) -> None:
        start = time.perf_counter()
        try:
            call()
        except Exception as err:  # any failure is a finding: counted, and its message kept
            with self.lock:
                self.errors.append(f"{type(err).__name__}: {str(err)[:200]}")
            return
        with self.lock:
            self.seconds.append(time.perf_counter() - start)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def folder_mb(folder: Path) -> float:
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:  # removed while we walked
            pass
    return total / 1e6


def checkpoint_zip(target: Path) -> Path:
    """The embedded masked LM zipped as a visitor would upload it."""
    from roberta.defaults import default_model_dir

    with zipfile.ZipFile(target, "w") as archive:
        for file in default_model_dir("mlm").iterdir():
            archive.write(file, file.name)
    return target


def start_server(port: int, temp: Path, threads: int, log: Path,
                 code: str = SERVER) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(temp), "GRADIO_TEMP_DIR": str(temp / "gradio"),
           "ROBERTA_LAB_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(ROOT)}
    with log.open("w") as sink:  # a file, not a pipe: nobody reads a pipe while clients run
        return subprocess.Popen([sys.executable, "-c", code, str(port)], cwd=ROOT, env=env,
                                stdout=sink, stderr=subprocess.STDOUT, text=True)


def wait_until_up(url: str, server: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the app exited at start:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "config", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit(f"the app did not answer within {timeout:.0f} s")


def stop_server(server: subprocess.Popen, temp: Path) -> None:
    """Stop the app a bench started, and delete its temp folder."""
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
    shutil.rmtree(temp, ignore_errors=True)


def run(clients: int, seconds: float, settle: float, threads: int, train_steps: int) -> dict:
    from gradio_client import Client, handle_file

    temp = Path(tempfile.mkdtemp(prefix="roberta-load-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    (temp / "server").mkdir()
    log = temp / "server.log"
    server = start_server(port, temp / "server", threads, log)
    upload = checkpoint_zip(temp / "checkpoint.zip")
    tallies = {kind: Tally() for kind in ("fill-mask", "training", "import")}
    try:
        wait_until_up(url, server, log)
        # Warm-up, one of each kind, so the start figures include first-use caches.
        warm = Client(url, verbose=False)
        warm.predict(MASKED, api_name="/fill_mask")
        warm.predict(2, **TRAIN_ARGS, api_name="/train")
        warm.predict(handle_file(str(upload)), api_name="/import_checkpoint")
        warm.close()
        time.sleep(settle)
        start = {"rss_mb": rss_mb(server.pid), "temp_mb": folder_mb(temp / "server")}
        peak = dict(start)
        end_at = time.monotonic() + seconds

        def fill_masker():
            client = Client(url, verbose=False)
            while time.monotonic() < end_at:
                tallies["fill-mask"].record(lambda: client.predict(MASKED,
                                                                   api_name="/fill_mask"))
            client.close()

        def trainer():
            client = Client(url, verbose=False)
            while time.monotonic() < end_at:
                tallies["training"].record(lambda: client.predict(
                    train_steps, **TRAIN_ARGS, api_name="/train"))
            client.close()

        def importer():
            client = Client(url, verbose=False)
            n = 0
            while time.monotonic() < end_at:
                # Eight names cycling: past the session's cap, the oldest is let go.
                named = temp / f"checkpoint-{n % 8}.zip"
                shutil.copyfile(upload, named)
                tallies["import"].record(lambda named=named: client.predict(
                    handle_file(str(named)), api_name="/import_checkpoint"))
                n += 1
            client.close()

        workers = ([threading.Thread(target=fill_masker) for _ in range(clients)]
                   + [threading.Thread(target=trainer) for _ in range(2)]
                   + [threading.Thread(target=importer)])
        for worker in workers:
            worker.start()
        while any(w.is_alive() for w in workers):
            peak = {"rss_mb": max(peak["rss_mb"], rss_mb(server.pid)),
                    "temp_mb": max(peak["temp_mb"], folder_mb(temp / "server"))}
            time.sleep(1)
        time.sleep(settle)  # the server notices the closed heartbeats and lets go
        after = {"rss_mb": rss_mb(server.pid), "temp_mb": folder_mb(temp / "server")}
        gradio_cache = folder_mb(temp / "server" / "gradio")
        server_log = log.read_text()
    finally:
        stop_server(server, temp)
    fill = tallies["fill-mask"].seconds
    return {"clients": clients, "seconds": seconds, "settle": settle, "start": start,
            "peak": peak, "after": after, "gradio_cache_after_mb": gradio_cache,
            "p50": percentile(fill, 0.5), "p95": percentile(fill, 0.95),
            "calls": {k: len(t.seconds) for k, t in tallies.items()},
            "sessions_ended": server_log.count("a session ended"),
            "tracebacks_in_log": server_log.count("Traceback"),
            "errors": {k: t.errors for k, t in tallies.items()}}


def report(result: dict) -> str:
    s, p, a = result["start"], result["peak"], result["after"]
    errors = sum(len(e) for e in result["errors"].values())
    lines = [
        f"{result['clients']} fill-mask clients + 2 training sessions + 1 importer for "
        f"{result['seconds']:.0f} s (then {result['settle']:.0f} s for the server to let go)",
        f"fill-mask latency: p50 {result['p50']:.2f} s, p95 {result['p95']:.2f} s",
        "calls: " + ", ".join(f"{k} {v}" for k, v in result["calls"].items()),
        f"errors: {errors}; tracebacks in the server log: {result['tracebacks_in_log']}",
        f"sessions the server saw end: {result['sessions_ended']} (of {result['clients'] + 4}, "
        f"the warm-up's included)",
        f"server RSS: start {s['rss_mb']:.0f} MB, peak {p['rss_mb']:.0f} MB, after "
        f"{a['rss_mb']:.0f} MB ({a['rss_mb'] - s['rss_mb']:+.0f} MB)",
        f"temp folder: start {s['temp_mb']:.1f} MB, peak {p['temp_mb']:.1f} MB, after "
        f"{a['temp_mb']:.1f} MB ({a['temp_mb'] - s['temp_mb']:+.1f} MB; Gradio's upload cache "
        f"{result['gradio_cache_after_mb']:.1f} MB of it)",
        "targets: 0 errors {}; RSS within 100 MB of the start {}; temp folder back to the "
        "start {}".format(*("met" if ok else "MISSED" for ok in (
            errors == 0, a["rss_mb"] - s["rss_mb"] <= 100, a["temp_mb"] <= s["temp_mb"] + 0.05))),
    ]
    for kind, messages in result["errors"].items():
        for message in sorted(set(messages))[:5]:
            lines.append(f"  {kind} error: {message}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=8, help="fill-mask clients (default 8)")
    p.add_argument("--seconds", type=float, default=60, help="how long they call (default 60)")
    p.add_argument("--settle", type=float, default=25,
                   help="seconds to wait after the clients leave (default 25: Gradio notices a "
                        "closed heartbeat at its next beat, every 15 s)")
    p.add_argument("--threads", type=int, default=1, help="the server's torch threads")
    p.add_argument("--train-steps", type=int, default=10, help="steps per training run")
    args = p.parse_args(argv)
    if not 1 <= args.clients <= 64 or not 1 <= args.seconds <= 600:
        p.error("--clients must be 1-64 and --seconds 1-600: this is a bounded test")
    result = run(args.clients, args.seconds, args.settle, args.threads, args.train_steps)
    print(report(result))
    return result


if __name__ == "__main__":
    main()
