"""Memory and disk after every kind of run, repeated (issue #31): does the server give back what
a visitor's run took once the visitor has left?

    nice -n 19 python -m bench.repeat_runs --runs 30        # about an hour on 2 shared cores
    python -m bench.repeat_runs --quick                      # 2 runs of each kind, smallest runs

The app is started here (as bench/load.py does: its own process on a free loopback port, one
torch thread, its temp folder and Gradio's cache in a private folder), and each run is one new
gradio_client — a new visitor's session — that does one thing and leaves:

- train:       the Train tab's pretraining (`/train`, a few steps on the embedded tokenizer)
- finetune:    the Sentiment tab's fine-tuning (`/finetune`, a few steps on an uploaded CSV of
               60 short reviews: the bundled set's final test pass alone takes minutes here)
- experiments: an Experiments pair (`/compare`, the "init" comparison, a few steps a side)
- import:      a checkpoint zip uploaded and imported (`/import_checkpoint`)
- download:    a 1-step pretraining, then its zip (`/download_model`) fetched over HTTP as a
               browser fetches the button's file

After each run the script waits until the server has logged that the session ended (the
server's heartbeat is set to 1 s, GRADIO_HEARTBEAT_INTERVAL, so a leaving client is noticed at
once rather than within 15 s), then reads the server's resident memory (RSS) and the size of its
temp folder (bytes, and files: an empty one weighs nothing) and prints them against the
baseline, one `key=value` line per run. The baseline is read after one warm-up run of each kind
(first-use caches: prepared data, tokenizers, the allocator's pools, are not growth); the kinds
run one after another on the same server, so each figure is cumulative. Targets: RSS within
100 MB and the temp folder within 1 MB of the baseline after all runs of each kind. Nothing
leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.load import (
    SERVER,
    checkpoint_zip,
    folder_mb,
    free_port,
    rss_mb,
    start_server,
    stop_server,
    wait_until_up,
)

KINDS = ("train", "finetune", "experiments", "import", "download")
MEMORY_TARGET_MB = 100
DISK_TARGET_MB = 1.0
SESSION_END_TIMEOUT_S = 120
TRAIN_ARGS = dict(tokenizer="embedded", seq_length=64, batch_size=4, eval_every=1000)
FINETUNE_ARGS = dict(dataset="csv", seq_length=64, batch_size=4, eval_every=1000)
# bench/load.py's server, made to start on a loaded host: Gradio's launch() refuses to start
# when one HEAD request to itself takes over 3 s (networking.url_ok gives up on the first
# timeout), which a niced server on 2 busy cores does; wait_until_up waits for the app instead.
# Its heartbeat every second (GRADIO_HEARTBEAT_INTERVAL, read per connection) so a client
# that leaves is noticed at once, not within 15 s.
PATIENT_SERVER = ("import os\nos.environ['GRADIO_HEARTBEAT_INTERVAL'] = '1'\n"
                  "import gradio.networking\ngradio.networking.url_ok = lambda url: True\n"
                  + SERVER)


def reviews_csv(target: Path, rows: int = 60) -> Path:
    """A small labelled CSV, as a visitor would upload for fine-tuning."""
    good = ["The food was lovely", "Great service and fresh bread", "A wonderful film"]
    bad = ["The food was cold", "Slow service and stale bread", "A dull and long film"]
    lines = [f"{(good if i % 2 else bad)[i % 3]} ({i}).,{i % 2}" for i in range(rows)]
    target.write_text("text,label\n" + "\n".join(lines) + "\n")
    return target


def run_once(kind: str, url: str, uploads: Path, steps: int) -> None:
    """One visitor: a new client does `kind` once and leaves (`uploads`: the folder holding
    checkpoint.zip and reviews.csv)."""
    import httpx
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, download_files=False)
    try:
        if kind == "train":
            client.predict(steps, **TRAIN_ARGS, api_name="/train")
        elif kind == "finetune":
            client.predict(steps, csv_file=handle_file(str(uploads / "reviews.csv")),
                           **FINETUNE_ARGS, api_name="/finetune")
        elif kind == "experiments":
            client.predict("init", steps, api_name="/compare")
        elif kind == "import":
            client.predict(handle_file(str(uploads / "checkpoint.zip")),
                           api_name="/import_checkpoint")
        elif kind == "download":
            client.predict(1, **TRAIN_ARGS, api_name="/train")
            served = client.predict(api_name="/download_model")
            first = b""
            with httpx.stream("GET", served["url"], timeout=120) as response:
                response.raise_for_status()
                for chunk in response.iter_bytes():  # the whole file, as a browser saves it
                    first = first or chunk
            if first[:2] != b"PK":
                raise RuntimeError("the download is not a zip")
        else:
            raise ValueError(f"unknown kind {kind!r}")
    finally:
        client.close()


def file_count(folder: Path) -> int:
    """Files under `folder`: an empty temp file left per upload weighs nothing but counts."""
    return sum(1 for path in folder.rglob("*") if path.is_file())


def sessions_ended(log: Path) -> int:
    return log.read_text(errors="replace").count("a session ended")


def wait_for_session_ends(log: Path, count: int, timeout: float = SESSION_END_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while sessions_ended(log) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"the server did not log {count} session ends within {timeout:.0f} s")
        time.sleep(0.2)
    time.sleep(0.5)  # the unload handler logs before it returns: let it finish trimming


def line(label: str, **fields) -> str:
    """One report line: a label, then key=value pairs (numbers signed where they are deltas)."""
    shown = []
    for key, value in fields.items():
        if isinstance(value, float):
            value = f"{value:+.3f}" if key.endswith("delta_mb") else f"{value:.3f}"
        shown.append(f"{key}={value}")
    return " ".join([label, *shown])


def run(kinds: list[str], runs: int, steps: int, threads: int,
        say: Callable[[str], None] = print) -> dict:
    temp = Path(tempfile.mkdtemp(prefix="roberta-repeat-"))
    (temp / "server").mkdir()
    port, log = free_port(), temp / "server.log"
    url = f"http://127.0.0.1:{port}/"
    server = start_server(port, temp / "server", threads, log, PATIENT_SERVER)
    uploads = temp / "uploads"
    uploads.mkdir()
    checkpoint_zip(uploads / "checkpoint.zip")
    reviews_csv(uploads / "reviews.csv")
    results: dict = {"kinds": {}, "runs": runs, "steps": steps}
    try:
        wait_until_up(url, server, log)
        ended = 0
        for kind in kinds:  # warm-up: one of each kind, not counted
            run_once(kind, url, uploads, steps)
            ended += 1
            wait_for_session_ends(log, ended)

        def measure() -> tuple[float, float, int]:
            return rss_mb(server.pid), folder_mb(temp / "server"), file_count(temp / "server")

        base_rss, base_disk, base_files = measure()
        results["baseline"] = {"rss_mb": base_rss, "disk_mb": base_disk, "files": base_files}
        say(line("baseline", rss_mb=base_rss, disk_mb=base_disk, files=base_files))
        for kind in kinds:
            for n in range(1, runs + 1):
                started = time.perf_counter()
                run_once(kind, url, uploads, steps)
                ended += 1
                wait_for_session_ends(log, ended)
                rss, disk, files = measure()
                say(line("run", kind=kind, n=n, seconds=time.perf_counter() - started,
                         rss_mb=rss, rss_delta_mb=rss - base_rss, disk_mb=disk,
                         disk_delta_mb=disk - base_disk, files_delta=files - base_files))
            rss_delta, disk_delta = rss - base_rss, disk - base_disk
            verdict = {"memory_target": "met" if rss_delta <= MEMORY_TARGET_MB else "MISSED",
                       "disk_target": "met" if abs(disk_delta) <= DISK_TARGET_MB else "MISSED"}
            results["kinds"][kind] = {"rss_delta_mb": rss_delta, "disk_delta_mb": disk_delta,
                                      "files_delta": files - base_files,
                                      **verdict}
            say(line("after", kind=kind, runs=runs, rss_delta_mb=rss_delta,
                     disk_delta_mb=disk_delta, files_delta=files - base_files, **verdict))
        server_log = log.read_text(errors="replace")
        results["tracebacks_in_log"] = server_log.count("Traceback")
        say(line("log", sessions_ended=sessions_ended(log),
                 tracebacks=results["tracebacks_in_log"]))
    finally:
        stop_server(server, temp)
    return results


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.repeat_runs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, help="runs of each kind after the warm-up (default 30; "
                                            "--quick: 2)")
    p.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    p.add_argument("--steps", type=int, help="training steps of each run (default 5; "
                                             "--quick: 2)")
    p.add_argument("--quick", action="store_true", help="2 runs of each kind, 2 steps each")
    p.add_argument("--threads", type=int, default=1, help="the server's torch threads")
    args = p.parse_args(argv)
    runs = args.runs or (2 if args.quick else 30)
    steps = args.steps or (2 if args.quick else 5)
    if not 1 <= runs <= 200 or not 1 <= steps <= 1000:
        p.error("--runs must be 1-200 and --steps 1-1000: this is a bounded test")
    print(f"# {runs} run(s) of each of {', '.join(args.kinds)}; {steps} training steps a run; "
          f"server: {args.threads} torch thread(s), pid-level RSS, temp folder incl. Gradio's "
          f"cache", flush=True)
    return run(args.kinds, runs, steps, args.threads,
               say=lambda text: print(text, flush=True))


if __name__ == "__main__":
    main()
