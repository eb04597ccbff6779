"""Every endpoint × every argument × every class of bad value, through the HTTP API as any
program may call it (issue #31's target: 0 generic errors and 0 tracebacks over ≥ 1,000 bad
inputs).

    nice -n 19 python -m bench.bad_inputs                  # ~2,200 calls, 5-15 minutes on 2 cores
    python -m bench.bad_inputs --sample 100                # a systematic sample of them

The calls are generated, not written by hand: the app's own API description
(`/gradio_api/info`) names each endpoint and its parameters with their defaults; each call
gives one parameter one bad value (`BAD_VALUES`: wrong types, None, lists, objects, NaN and
infinities, huge and negative numbers, deep nesting, lone surrogates, a server path where a file
goes, huge strings) and the others their defaults; then each endpoint gets malformed requests
(`BAD_BODIES`: too few and too many arguments, no list, not JSON, not UTF-8, nesting deeper than
JSON parsers recurse). Training endpoints run one step where a bad value is accepted.

The app runs in its own process (one torch thread, its own temp folder), and the calls go one
at a time through Gradio's two-step call API (`/gradio_api/call/<name>`, raw JSON, so NaN is
sent as a browser or curl could), so each traceback in the server's log is the one call's.
Each answer is one of: answered; refused in a plain sentence (the app's message); refused by
the web framework before the app (an HTTP 4xx with its own JSON); a **generic error** (Gradio's
"error" with no message, or an HTTP 5xx); no answer in time. Printed: the counts per endpoint
and in all, and every generic error and traceback with the call that caused it; the exit status
is non-zero when there is one.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

SURROGATE = '"\\ud800 \\u0000 <script>alert(1)</script> \\u202e"'  # lone surrogate, NUL, markup
BAD_VALUES: dict[str, str] = {  # name -> the value as JSON text
    "null": "null",
    "true": "true",
    "zero": "0",
    "minus_one": "-1",
    "fraction": "1.5",
    "huge_int": str(2**70),
    "huge_negative": str(-(2**70)),
    "huge_float": "1e308",
    "nan": "NaN",
    "inf": "Infinity",
    "minus_inf": "-Infinity",
    "empty_string": '""',
    "word": '"abc"',
    "many_masks": json.dumps("<mask> " * 5_000),
    "huge_string": json.dumps("word " * 400_000),  # 2 MB
    "odd_unicode": SURROGATE,
    "empty_list": "[]",
    "list": '["a", "b"]',
    "nested_list": "[" * 40 + "1" + "]" * 40,
    "object": '{"x": 1}',
    "server_file": '{"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}',
    "deep_nesting": "[" * 50_000 + "]" * 50_000,  # past any JSON parser's recursion
}
# Whole request bodies: (name, builder of the body's bytes from the baseline arguments' JSON).
BAD_BODIES = {
    "no_arguments": lambda args: b'{"data": []}',
    "extra_argument": lambda args: ('{"data": [' + ", ".join([*args, '"extra"']) + "]}").encode(),
    "data_not_a_list": lambda args: b'{"data": {"text": "abc"}}',
    "data_null": lambda args: b'{"data": null}',
    "no_data": lambda args: b'{"x": 1}',
    "not_json": lambda args: b"data=abc",
    "not_utf8": lambda args: b'{"data": ["\xff\xfe\xfa"]}',
    "deep_body": lambda args: b'{"data": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
}
# Training endpoints: where a bad value is accepted, one step on the embedded tokenizer.
RUN_BASELINES = {
    "/train": {"max_steps": 1, "tokenizer": "embedded", "eval_every": 1},
    "/finetune": {"max_steps": 1, "eval_every": 1},
    "/compare": {"max_steps": 1},
}


@dataclass(frozen=True)
class Call:
    api: str  # "/fill_mask"
    argument: str  # the parameter given a bad value, or "(body)"
    value: str  # the name of the bad value or body
    body: bytes


@dataclass
class Outcome:
    kind: str  # answered | plain | http_refused | generic | no_answer
    message: str = ""


def endpoints(url: str) -> dict[str, list[tuple[str, object]]]:
    """{"/fill_mask": [(parameter, default), …]} from the app's API description."""
    import httpx

    info = httpx.get(f"{url}gradio_api/info", timeout=60).json()
    return {api: [(p["parameter_name"], p.get("parameter_default")) for p in spec["parameters"]]
            for api, spec in info["named_endpoints"].items()}


def baseline(api: str, parameters: list[tuple[str, object]]) -> list[str]:
    """Each argument's default as JSON (a training endpoint's made cheap)."""
    cheap = RUN_BASELINES.get(api, {})
    return [json.dumps(cheap.get(name, default)) for name, default in parameters]


def bad_calls(apis: dict[str, list[tuple[str, object]]]) -> list[Call]:
    """Every endpoint × every argument × every bad value, then every bad body per endpoint."""
    calls = []
    for api, parameters in apis.items():
        defaults = baseline(api, parameters)
        for i, (name, _) in enumerate(parameters):
            for value, text in BAD_VALUES.items():
                arguments = [*defaults[:i], text, *defaults[i + 1:]]
                calls.append(Call(api, name, value,
                                  ('{"data": [' + ", ".join(arguments) + "]}").encode()))
        for value, build in BAD_BODIES.items():
            calls.append(Call(api, "(body)", value, build(defaults)))
    return calls


def sample(calls: list[Call], n: int) -> list[Call]:
    """`n` calls spread over every endpoint, argument and value: the endpoints take turns, and
    each walks its own calls in steps of 23 (one more than the number of bad values), so one
    pick moves to the next argument and the next kind of value; each endpoint starts at
    another kind."""
    if n >= len(calls):
        return list(calls)
    by_api: dict[str, list[Call]] = {}
    for call in calls:
        by_api.setdefault(call.api, []).append(call)
    taken = {api: 0 for api in by_api}
    chosen: list[Call] = []
    while len(chosen) < n:
        for api, own in by_api.items():
            if taken[api] < len(own) and len(chosen) < n:
                start = 7 * list(by_api).index(api)
                chosen.append(own[(start + taken[api] * 23) % len(own)])
                taken[api] += 1
    return chosen


def send(url: str, call: Call, timeout: float = 120) -> Outcome:
    """One call through `/gradio_api/call/<name>`, and what came back."""
    import httpx

    base = f"{url}gradio_api/call{call.api}"
    try:
        posted = httpx.post(base, content=call.body, timeout=60,
                            headers={"content-type": "application/json"})
    except httpx.HTTPError as err:
        return Outcome("no_answer", f"POST: {type(err).__name__}")
    if posted.status_code >= 500:
        return Outcome("generic", f"HTTP {posted.status_code}: {posted.text[:200]}")
    if posted.status_code != 200:
        return Outcome("http_refused", f"HTTP {posted.status_code}: {posted.text[:200]}")
    event_id = posted.json().get("event_id")
    kind, data = None, None
    deadline = time.monotonic() + timeout  # Gradio's heartbeats keep a stream alive forever
    try:
        with httpx.stream("GET", f"{base}/{event_id}", timeout=timeout) as answer:
            for line in answer.iter_lines():
                if time.monotonic() > deadline:
                    return Outcome("no_answer", f"no answer in {timeout:.0f} s")
                if line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and kind in ("complete", "error"):
                    data = line.split(":", 1)[1].strip()
                    break
    except httpx.HTTPError as err:
        return Outcome("no_answer", f"GET: {type(err).__name__}")
    if kind == "complete":
        return Outcome("answered")
    if kind != "error":
        return Outcome("no_answer", f"stream ended after {kind!r}")
    try:
        parsed = json.loads(data) if data else None
    except ValueError:
        parsed = data
    message = parsed.get("error") if isinstance(parsed, dict) else parsed
    if not isinstance(message, str) or not message.strip() or "Traceback" in message:
        return Outcome("generic", str(parsed)[:200])
    return Outcome("plain", message)


def sweep(url: str, calls: list[Call], log: Path | None = None, say=print) -> dict:
    """Send every call, one at a time; tracebacks are read from `log` after each."""
    seen = len(log.read_text(errors="replace")) if log else 0
    tally: dict[str, Counter] = {}
    findings = []
    framework: Counter = Counter()  # values the web framework refused, by kind
    started = time.monotonic()
    for n, call in enumerate(calls, start=1):
        outcome = send(url, call)
        tally.setdefault(call.api, Counter())[outcome.kind] += 1
        if outcome.kind == "http_refused":
            framework[call.value] += 1
        if outcome.kind in ("generic", "no_answer"):
            findings.append(f"{outcome.kind}: {call.api} {call.argument}={call.value}: "
                            f"{outcome.message}")
            say(f"# {findings[-1]}")
        if log is not None:
            text = log.read_text(errors="replace")
            new, seen = text[seen:], len(text)
            if "Traceback" in new:
                tally[call.api]["traceback"] += 1
                last = [x for x in new.splitlines() if x.strip()][-1:]
                findings.append(f"traceback: {call.api} {call.argument}={call.value}: "
                                f"{' '.join(last)[:200]}")
                say(f"# {findings[-1]}")
        if n % 250 == 0:
            say(f"# {n} of {len(calls)} calls, {time.monotonic() - started:.0f} s")
    total = sum(tally.values(), Counter())
    return {"calls": len(calls), "seconds": time.monotonic() - started,
            "by_endpoint": tally, "total": total, "findings": findings,
            "http_refused_by_value": framework}


def main(argv: list[str] | None = None) -> int:
    from bench.load import free_port, start_server, stop_server, wait_until_up
    from bench.repeat_runs import PATIENT_SERVER, line
    from roberta.ui.limits import ENV_MAX_STEPS

    p = argparse.ArgumentParser(prog="python -m bench.bad_inputs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sample", type=int, help="send only this many calls, spread over all")
    p.add_argument("--only", nargs="+", help="only these endpoints (e.g. /fill_mask)")
    args = p.parse_args(argv)
    temp = Path(tempfile.mkdtemp(prefix="roberta-bad-inputs-"))
    (temp / "server").mkdir()
    port, log = free_port(), temp / "server.log"
    url = f"http://127.0.0.1:{port}/"
    # A step count of 0 means "the comparison's default" (600 steps a side): with a cap of 2
    # steps, a bad value that a run accepts trains a step or two, and a default is refused.
    server = start_server(port, temp / "server", 1, log,
                          f"import os\nos.environ['{ENV_MAX_STEPS}'] = '2'\n" + PATIENT_SERVER)
    try:
        wait_until_up(url, server, log)
        apis = endpoints(url)
        if args.only:
            apis = {api: ps for api, ps in apis.items() if api in args.only}
        calls = bad_calls(apis)
        # One good call per training endpoint first: its first run prepares the bundled data
        # (minutes on a busy host), which would otherwise land on one bad call's clock.
        for api in RUN_BASELINES:
            if api in apis:
                body = ('{"data": [' + ", ".join(baseline(api, apis[api])) + "]}").encode()
                send(url, Call(api, "(warm-up)", "baseline", body), timeout=1200)
        if args.sample:
            calls = sample(calls, args.sample)
        print(f"# {len(calls)} bad calls: {len(apis)} endpoints, "
              f"{sum(len(ps) for ps in apis.values())} arguments × {len(BAD_VALUES)} values, "
              f"and {len(BAD_BODIES)} bad bodies each", flush=True)
        result = sweep(url, calls, log, say=lambda text: print(text, flush=True))
    finally:
        stop_server(server, temp)
    for api, counts in sorted(result["by_endpoint"].items()):
        print(line(api, **dict(sorted(counts.items()))))
    total = result["total"]
    print(line("total", calls=result["calls"], seconds=result["seconds"],
               **dict(sorted(total.items()))))
    print(line("http_refused", **dict(sorted(result["http_refused_by_value"].items()))))
    bad = total["generic"] + total["traceback"] + total["no_answer"]
    print(line("result", generic=total["generic"], tracebacks=total["traceback"],
               no_answer=total["no_answer"], target="met" if not bad else "MISSED"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
