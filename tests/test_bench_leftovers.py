"""The issue-#31 benches run end to end with tiny settings (smoke tests, not measurements), and
print what they promise in a form a script can read."""

from __future__ import annotations

import re

import pytest

KEY_VALUE_LINE = re.compile(r"^(?P<label>[a-z]+)(?P<fields>( [a-z_0-9]+=\S+)+)$")


def parsed(output: str) -> list[tuple[str, dict[str, str]]]:
    """Each report line as (label, {key: value}); a line of another shape fails the test."""
    lines = []
    for text in output.splitlines():
        if not text.strip() or text.startswith("#"):
            continue
        match = KEY_VALUE_LINE.match(text)
        assert match, f"not a key=value report line: {text!r}"
        fields = dict(pair.split("=", 1) for pair in match["fields"].split())
        lines.append((match["label"], fields))
    return lines


@pytest.mark.slow  # starts the app in its own process
def test_repeat_runs_reports_memory_and_disk_after_each_run(tiny_assets, capsys):
    from bench.repeat_runs import main

    result = main(["--quick", "--runs", "2", "--kinds", "import", "download"])
    lines = parsed(capsys.readouterr().out)
    labels = [label for label, _ in lines]
    assert labels == ["baseline", "run", "run", "after", "run", "run", "after", "log"]
    runs = [fields for label, fields in lines if label == "run"]
    assert [(r["kind"], r["n"]) for r in runs] == [("import", "1"), ("import", "2"),
                                                 ("download", "1"), ("download", "2")]
    for fields in runs:
        float(fields["rss_mb"]), float(fields["rss_delta_mb"]), float(fields["disk_delta_mb"])
        int(fields["files_delta"])
    assert dict(lines[-1][1]) == {"sessions_ended": "6", "tracebacks": "0"}  # 2 warm-ups + 4
    for kind in ("import", "download"):
        # A served zip, an upload or an empty temp file left behind would show here.
        assert result["kinds"][kind]["disk_delta_mb"] == pytest.approx(0, abs=0.001)
        assert result["kinds"][kind]["files_delta"] == 0
        assert result["kinds"][kind]["disk_target"] == "met"
        assert result["kinds"][kind]["memory_target"] == "met"


@pytest.mark.slow  # starts the app in its own process
def test_worst_model_reports_the_other_visitors_latency(tiny_assets, capsys):
    import os

    from bench.worst_model import QUICK_GFLOPS, main
    from roberta.ui.limits import ENV_MAX_IMPORT_GFLOPS

    before = os.environ.get(ENV_MAX_IMPORT_GFLOPS)
    result = main(["--quick", "--seconds", "8", "--calls-alone", "2"])
    assert os.environ.get(ENV_MAX_IMPORT_GFLOPS) == before  # the quick budget is not left set
    lines = dict(parsed(capsys.readouterr().out))
    assert list(lines) == ["model", "heavy", "visitor", "result"]
    # The model is the budget's worst: just under the (quick) cap per window, and accepted.
    assert QUICK_GFLOPS * 0.5 < float(lines["model"]["window_gflops"]) <= QUICK_GFLOPS
    assert int(lines["heavy"]["requests_at_once"]) == 4
    # One runs, one waits, the rest are refused at once (the lane); refusals are not errors.
    assert int(lines["heavy"]["calls"]) >= 2
    assert int(lines["heavy"]["calls"]) + int(lines["heavy"]["refused"]) >= 4
    assert 0 < float(lines["heavy"]["alone_s"]) < 60
    assert int(lines["visitor"]["calls"]) >= 1
    for key in ("alone_p50_s", "alone_p95_s", "p50_s", "p95_s", "max_s"):
        assert 0 < float(lines["visitor"][key]) < 60
    assert float(lines["visitor"]["p50_s"]) <= float(lines["visitor"]["p95_s"])
    assert lines["result"]["errors"] == "0" and lines["result"]["tracebacks"] == "0"
    assert result["loaded_p95_s"] == pytest.approx(float(lines["visitor"]["p95_s"]), abs=1e-3)
