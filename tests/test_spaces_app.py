"""The root app.py as Hugging Face Spaces runs it (`python app.py`, a port from
GRADIO_SERVER_PORT), with the README's host settings in its environment, driven from outside
through gradio_client: one CPU run at a time (the next waits its turn), the per-run time limit
stops a run, the batch-token cap refuses a batch, ROBERTA_LAB_THREADS sizes torch's pool and
ROBERTA_LAB_PREWARM=0 starts no background preparation."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from gradio_client.exceptions import AppError
from tiny_assets import tiny_corpus

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
RUN_SECONDS = 4  # ROBERTA_LAB_MAX_RUN_SECONDS for the served app
BATCH_TOKENS = 256  # ROBERTA_LAB_MAX_BATCH_TOKENS: 8 × 32 fits, 16 × 32 does not


def fast_run(**overrides):
    """A run on a small pasted corpus with the embedded (tiny) tokenizer: it starts at once."""
    return {**dict(corpus="pasted", pasted_text="\n\n".join(tiny_corpus(300)),
                   tokenizer="embedded", seq_length=32, batch_size=8, eval_every=5),
            **overrides}


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "config", timeout=5) as response:
            return response.status == 200 and "components" in json.loads(response.read())
    except OSError:
        return False


def serve_app_py(env: dict, attempts: int = 3, timeout: float = 180):
    """`python app.py` on a port from GRADIO_SERVER_PORT, as Spaces starts it; (process, url)
    once it answers /config. A port taken between choosing and binding it (the server exits
    saying so) is retried on a fresh one."""
    for _ in range(attempts):
        port = unused_port()
        process = subprocess.Popen(
            [sys.executable, "app.py"], cwd=REPO, text=True, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**env, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)})
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            if answers(url):
                return process, url
            time.sleep(0.5)
        process.kill()
        output = process.communicate()[0]
        if "port" not in output.lower():  # not a lost port race: a real failure
            raise AssertionError(f"app.py did not start:\n{output[-3000:]}")
    raise AssertionError(f"app.py found no free port in {attempts} attempts:\n{output[-3000:]}")


@pytest.fixture(scope="module")
def spaces_app(tiny_assets):
    env = {**os.environ, "ROBERTA_LAB_ASSETS": str(tiny_assets), "ROBERTA_LAB_THREADS": "1",
           "ROBERTA_LAB_PREWARM": "0", "ROBERTA_LAB_MAX_RUN_SECONDS": str(RUN_SECONDS),
           "ROBERTA_LAB_MAX_BATCH_TOKENS": str(BATCH_TOKENS)}
    for name in ("ROBERTA_LAB_MAX_TRAINING_RUNS", "ROBERTA_LAB_MAX_TRAINING_QUEUE"):
        env.pop(name, None)  # the defaults for a CPU host are what is tested
    process, url = serve_app_py(env)
    yield url
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_app_py_serves_the_app_on_the_port_spaces_gives_it(spaces_app, connect):
    client = connect(spaces_app)
    table, *_ = client.predict("The cat sat on the <mask>.", api_name="/fill_mask")
    assert len(table["data"]) == 5  # top-5 from the embedded (tiny) masked LM
    label, *_ = client.predict("Great coffee.", api_name="/classify")
    assert {c["label"] for c in label["confidences"]} == {"negative", "positive"}


def test_one_cpu_run_at_a_time_and_the_time_limit_stops_it(spaces_app, connect):
    """The defaults of a CPU host allow one training run at a time: a second visitor waits,
    told they are next; ROBERTA_LAB_MAX_RUN_SECONDS stops the first run with a usable model,
    and then the second run starts by itself."""
    first, second = connect(spaces_app), connect(spaces_app)
    running = first.submit(5000, **fast_run(), api_name="/train")
    waiting = None
    try:
        deadline = time.monotonic() + 120
        while not any(str(o[0]).startswith("Training") for o in running.outputs()):
            assert time.monotonic() < deadline and not running.done(), running.outputs()[-1:]
            time.sleep(0.2)
        waiting = second.submit(10, **fast_run(), api_name="/train")
        deadline = time.monotonic() + 60
        while not any("next in line" in str(o[0]) for o in waiting.outputs()):
            assert time.monotonic() < deadline and not waiting.done(), waiting.outputs()[-1:]
            time.sleep(0.2)
        status, *_, name = running.result(timeout=180)
        assert status.startswith("Stopped after"), status
        assert "ROBERTA_LAB_MAX_RUN_SECONDS" in status
        assert name.startswith("My model 1 (")
        status, *_ = waiting.result(timeout=180)  # its turn came when the first run ended
        assert status.startswith(("Finished after 10 steps", "Stopped after")), status
    finally:
        for client, job in ((first, running), (second, waiting)):
            if job is not None and not job.done():
                client.predict(api_name="/stop_training")


def test_the_batch_token_cap_refuses_a_larger_batch(spaces_app, connect):
    client = connect(spaces_app)
    with pytest.raises(AppError) as refused:
        client.predict(5, **fast_run(batch_size=16), api_name="/train")
    message = str(refused.value)
    assert "16 × 32" in message and f"({BATCH_TOKENS:,})" in message
    assert "ROBERTA_LAB_MAX_BATCH_TOKENS" in message and "Traceback" not in message


# Builds the app as Spaces imports app.py, without launching it, and says what it set up:
# first with the settings given, then (the modules already imported, so it is quick) with none.
REPORT_SETUP = """
import json, os, runpy, threading, torch

def setup():
    runpy.run_path("app.py")
    return {"threads": torch.get_num_threads(),
            "prewarm": any(t.name == "roberta-lab-prewarm" for t in threading.enumerate())}

given = setup()
del os.environ["ROBERTA_LAB_THREADS"], os.environ["ROBERTA_LAB_PREWARM"]
print(json.dumps([given, setup()]))
"""


def test_threads_and_prewarm_follow_the_environment(tiny_assets):
    result = subprocess.run([sys.executable, "-c", REPORT_SETUP], cwd=REPO, text=True,
                            capture_output=True, timeout=300,
                            env={**os.environ, "ROBERTA_LAB_ASSETS": str(tiny_assets),
                                 "ROBERTA_LAB_THREADS": "1", "ROBERTA_LAB_PREWARM": "0"})
    assert result.returncode == 0, result.stderr[-3000:]
    given, default = json.loads(result.stdout.strip().splitlines()[-1])
    assert given == {"threads": 1, "prewarm": False}
    assert default == {"threads": max(1, os.cpu_count() // 2), "prewarm": True}
