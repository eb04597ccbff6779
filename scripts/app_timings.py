"""Time the app as a visitor meets it: `python app.py` to first served page, and fill-mask
latency through gradio_client (median of 20).

    python scripts/app_timings.py              # the embedded models in assets/
    python scripts/app_timings.py --tiny       # a throw-away nano model, if assets/ is empty
    python scripts/app_timings.py --baseline   # also time an empty Gradio app importing torch

The machine is often shared: `--baseline` starts a bare `gradio + torch` app the same way, so
the app's own share of the start-up can be told apart from a slow machine.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BARE_APP = ("import gradio as gr, torch\n"
            "with gr.Blocks() as demo:\n    gr.Markdown('bare')\n"
            "demo.launch()\n")
TEXT = "The food was <mask> and the service was slow."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(command: list[str], env: dict, timeout: float = 120.0):
    """Start a server; return (process, url, seconds until its first page answered 200)."""
    port = free_port()
    env = {**env, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    began = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    while time.perf_counter() - began < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return process, url, time.perf_counter() - began
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise TimeoutError(f"no page from {url} within {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--baseline", action="store_true")
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    env = dict(os.environ)
    if args.tiny:
        sys.path.insert(0, str(ROOT / "tests"))  # the tiny assets are a test fixture
        from tiny_assets import make_tiny_assets

        env["ROBERTA_LAB_ASSETS"] = str(make_tiny_assets(tempfile.mkdtemp()))

    if args.baseline:
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as bare:
            bare.write(BARE_APP)
        process, _, seconds = start([sys.executable, bare.name], env)
        process.terminate()
        process.wait()
        print(f"bare gradio + torch app, first page: {seconds:.1f} s")

    process, url, seconds = start([sys.executable, "app.py"], env)
    print(f"python app.py, first page:          {seconds:.1f} s")
    try:
        from gradio_client import Client

        client = Client(url, verbose=False)
        began = time.perf_counter()
        client.predict(TEXT, api_name="/fill_mask")
        first = time.perf_counter() - began
        latencies = []
        for _ in range(args.calls):
            began = time.perf_counter()
            client.predict(TEXT, api_name="/fill_mask")
            latencies.append(time.perf_counter() - began)
        latencies.sort()
        print(f"fill-mask via gradio_client: first call {first * 1000:.0f} ms, then median of "
              f"{args.calls} {statistics.median(latencies) * 1000:.0f} ms "
              f"(min {latencies[0] * 1000:.0f}, max {latencies[-1] * 1000:.0f})")
    finally:
        process.terminate()
        process.wait()
    print(f"load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
          f"on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
