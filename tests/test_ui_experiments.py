"""The Experiments tab through gradio_client against the app launched in-process (conftest.py):
/compare with only its first argument, Stop stopping both runs, both models usable in the other
tabs for this session only, one turn of the host's training slots, and bad input as plain
sentences."""

from __future__ import annotations

import json

import pytest
from gradio_client.exceptions import AppError
from streaming import stream

from roberta.ui import limits


def app_error(call) -> str:
    with pytest.raises(AppError) as caught:
        call()
    message = str(caught.value)
    assert "Traceback" not in message and 'File "' not in message, message
    return message


def traces(plot_output) -> dict[str, int]:
    """{trace name: number of points} of a streamed gr.Plot value ({} when not redrawn)."""
    if not plot_output or "plot" not in plot_output:
        return {}
    return {t["name"]: len(t["x"]) for t in json.loads(plot_output["plot"])["data"]}




def both_sides_at_mask(output) -> bool:
    lines = traces(output[3])
    return sum(1 for name, n in lines.items() if name.endswith("at <mask>") and n >= 1) == 2


def test_compare_endpoints_are_named(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert "/compare" in endpoints and "/stop_comparison" in endpoints
    parameters = endpoints["/compare"]["parameters"]
    assert parameters[0]["parameter_name"] == "comparison"
    assert all(p["parameter_has_default"] for p in parameters)


@pytest.mark.slow
def test_compare_with_only_its_first_argument_then_stop_both(app_url):
    """A visitor's first click: the plateau comparison at its defaults, stopped once both
    runs have been evaluated; both models are then usable in Fill-mask, in this session."""
    from gradio_client import Client

    owner, stranger = Client(app_url, verbose=False), Client(app_url, verbose=False)
    job = owner.submit("init", api_name="/compare")
    stream(job, until=both_sides_at_mask, timeout=400)
    assert limits.TRAINING_QUEUE.running == 1  # two runs, one turn of the training slots
    assert "No comparison" in stranger.predict(api_name="/stop_comparison")
    assert "Stopping" in owner.predict(api_name="/stop_comparison")
    outputs = stream(job, timeout=120)
    status, progress, paragraph, accuracy, loss, perplexity, speed, replay, models = outputs[-1]
    assert status.startswith("Stopped: A after"), status
    # Each side's time-lapse, replayed side by side: the same snapshot steps on both.
    side_a, side_b = json.loads(replay)["runs"]
    assert (side_a["title"], side_b["title"]) == ("A: structured start",
                                                  "B: RoBERTa's random start")
    assert side_a["steps"] == side_b["steps"] and side_a["steps"][0] == 0
    steps_a = int(status.split("A after ")[1].split(" steps")[0].replace(",", ""))
    steps_b = int(status.split("B after ")[1].split(",")[0].replace(",", ""))
    assert steps_a == steps_b >= 50  # Stop stopped both at the same step
    lines = traces(accuracy)
    assert {"A: structured start: at <mask>", "B: RoBERTa's random start: at <mask>",
            "A: structured start: overall", "B: RoBERTa's random start: overall"} <= set(lines)
    for plot in (loss, perplexity, speed):
        assert len(traces(plot)) == 2
    assert "What the paper found" in paragraph and "What this run found" in paragraph
    assert "lower bound" in paragraph  # stopped early: the measured spread does not apply
    names = models.splitlines()
    assert len(names) == 2 and names[0].startswith("Experiment 1 A: structured start")
    for name in names:
        table, *_ = owner.predict("The film was a <mask>.", name, api_name="/fill_mask")
        assert len(table["data"]) == 5
    message = app_error(lambda: stranger.predict("A <mask>.", names[0], api_name="/fill_mask"))
    assert "no masked language model called" in message
    assert limits.TRAINING_QUEUE.running == 0


@pytest.mark.parametrize("kwargs, expected", [
    (dict(comparison="custom", custom_setting="learning_rate", custom_a="1e-3",
          custom_b="0.001"), "identical"),
    (dict(comparison="custom", custom_setting="init", custom_a="structured",
          custom_b="sideways"), "Unknown initialisation"),
    (dict(comparison="custom", custom_setting="batch_size", custom_a="8",
          custom_b="4000"), "more than this app allows"),
    (dict(comparison="init", max_steps=10**7), "more than this app allows"),
    (dict(comparison="init", seed=-3), "Seed must be"),
    (dict(comparison="nsp"), "Unknown comparison"),
])
def test_bad_comparisons_are_plain_errors(client, kwargs, expected):
    message = app_error(lambda: client.predict(**kwargs, api_name="/compare"))
    assert expected in message
    assert limits.TRAINING_QUEUE.running == 0


def test_stop_without_a_comparison_says_so(client):
    assert "No comparison" in client.predict(api_name="/stop_comparison")


@pytest.mark.slow
def test_a_custom_comparison_with_a_small_budget_runs_to_its_verdict(client):
    outputs = stream(client.submit("custom", 20, 4, "learning_rate", "1e-3", "4e-3",
                                   api_name="/compare"), timeout=400)
    status, progress, paragraph, accuracy, *_, models = outputs[-1]
    assert status.startswith("Finished: A after 20 steps, B after 20"), status
    assert "step 20 / 20" in progress and "B: step 20 / 20" in progress
    lines = traces(accuracy)
    assert lines["A: learning_rate = 0.001: at <mask>"] == 1  # evaluated at its last step
    assert lines["B: learning_rate = 0.004: at <mask>"] == 1
    assert "What this run found" in paragraph and "lower bound" in paragraph
    assert "not measured for these settings" in paragraph
    assert [n.split(" (")[0] for n in models.splitlines()] == [
        "Experiment 1 A: learning_rate = 0.001", "Experiment 1 B: learning_rate = 0.004"]


# --- issue 33's small things: the paper apart from this lab, the charts that read wrong ---------

def test_what_the_paper_found_holds_only_the_paper():
    from roberta.experiments import COMPARISONS
    from roberta.ui.experiments_tab import describe

    for comparison in COMPARISONS.values():
        assert "bench/" not in comparison.paper, comparison.id  # this lab's figures go in `lab`
    paragraph = describe(COMPARISONS["init"])
    paper = paragraph.split("**What the paper found.**")[1].split("**What this lab")[0]
    assert "like BERT" in paper and "bench/plateau.py" not in paper
    assert "bench/plateau.py" in paragraph.split("**What this lab measured before.**")[1]


def test_the_accuracy_chart_says_why_the_overall_lines_sit_together():
    from roberta.viz.compare_curves import ComparisonHistory

    history = ComparisonHistory(("A: structured start", "B: RoBERTa's random start"), "init",
                                "step")
    spec = history.accuracy_spec()
    legend = spec["layout"]["legend"]
    assert legend["orientation"] == "v"  # four long entries, one per line: none cut off
    notes = " ".join(a["text"] for a in spec["layout"]["annotations"])
    assert "copies" in notes and "thin lines sit together" in notes


def test_log_axes_label_whole_numbers():
    from roberta.viz.curves import PretrainHistory, log_ticks

    ticks = log_ticks(0.5, 3.2)
    assert ticks["ticktext"] == ["5", "10", "20", "50", "100", "200", "500", "1,000"]
    assert log_ticks(0, 6)["ticktext"] == ["1", "10", "100", "1,000", "10,000", "100,000",
                                           "1,000,000"]  # too many: the powers of ten only
    axis = PretrainHistory(planned_steps=100).perplexity_spec()["layout"]["yaxis"]
    assert "dtick" not in axis and axis["ticktext"][:3] == ["1", "10", "100"]
