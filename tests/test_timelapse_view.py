"""The time-lapse's figures (roberta/viz/timelapse.py) against the TimeLapse they are made from,
and the block's value (roberta/ui/timelapse_view.py): what the page replays at each snapshot is
what the run recorded there."""

from __future__ import annotations

import json

import numpy as np
import pytest

from roberta.timelapse import ROLE_NAMES, Snapshot, TimeLapse
from roberta.viz.attention import ROLE_SHORT
from roberta.viz.timelapse import MAP_LABELS, figure_at, probes_html, replay_data


def made_up(snapshots: int = 4, layers: int = 2, heads: int = 3, tokens: int = 6,
            words: int = 50, width: int = 16, seed: int = 0) -> TimeLapse:
    """A time-lapse of random (but row-normalised) attention and embeddings drifting step by
    step, with roles cycling through every label."""
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(words, width))
    shots = []
    for i in range(snapshots):
        a = rng.random((layers, heads, tokens, tokens))
        embeddings = embeddings + rng.normal(scale=0.3, size=embeddings.shape)
        roles = [[ROLE_NAMES[(i + layer * heads + h) % len(ROLE_NAMES)] for h in range(heads)]
                 for layer in range(layers)]
        shots.append(Snapshot(
            step=i * 10, metrics={"val_mask_accuracy": 0.1 * i, "val_loss": 5.0 - i},
            probes=[[(" coffee", 0.5 - 0.01 * i), (" tea", 0.2)], [("<script>", 0.9)]],
            attention=(a / a.sum(-1, keepdims=True)).astype(np.float16), roles=roles,
            embeddings=embeddings.astype(np.float16)))
    names = ["<s>", *(f" t{i}" for i in range(tokens - 2)), "</s>"]
    return TimeLapse("I drink a cup of coffee.", names,
                     ["I drink <mask> every day.", "A <b>bold</b> <mask>."],
        [f"w{i}" for i in range(words)], shots)


@pytest.fixture(scope="module")
def timelapse() -> TimeLapse:
    return made_up()


@pytest.fixture(scope="module")
def data(timelapse) -> dict:
    return replay_data(timelapse, "A: structured start")


def test_one_heatmap_per_head_holding_that_snapshots_attention(timelapse, data):
    figure = data["figures"]["attention"]
    assert len(figure["frames"]) == len(timelapse.snapshots)
    for index, snapshot in enumerate(timelapse.snapshots):
        drawn = figure_at(figure, index)["data"]
        L, H = snapshot.attention.shape[:2]
        assert [t["type"] for t in drawn] == ["heatmap"] * (L * H)
        for k, trace in enumerate(drawn):
            layer, head = divmod(k, H)
            percent = np.asarray(trace["z"])
            assert np.abs(percent - snapshot.attention[layer, head] * 100).max() <= 0.5 + 1e-3
            assert trace["name"] == f"layer {layer + 1} head {head + 1}"
    titles = [a["text"] for a in figure["layout"]["annotations"]]
    assert titles == [f"layer {la} · head {h}" for la in (1, 2) for h in (1, 2, 3)]


def test_the_map_points_are_the_timelapses_at_that_index(timelapse, data):
    points = timelapse.map_points()
    extent = float(np.ptp(points.reshape(-1, 2), axis=0).max())
    figure = data["figures"]["map"]
    x_range, y_range = figure["layout"]["xaxis"]["range"], figure["layout"]["yaxis"]["range"]
    for index in range(len(timelapse.snapshots)):
        (trace,) = figure_at(figure, index)["data"]
        drawn = np.stack([trace["x"], trace["y"]], axis=1)
        np.testing.assert_allclose(drawn, points[index], atol=extent * 1e-3)
        # The axes hold every snapshot's points: the map never rescales under the slider.
        assert x_range[0] < drawn[:, 0].min() and drawn[:, 0].max() < x_range[1]
        assert y_range[0] < drawn[:, 1].min() and drawn[:, 1].max() < y_range[1]
    labels = figure["data"][0]["text"]
    assert labels[:MAP_LABELS] == timelapse.map_words[:MAP_LABELS]
    assert set(labels[MAP_LABELS:]) == {""}  # the rest on hover only
    assert figure["data"][0]["hovertext"] == timelapse.map_words


def test_the_role_grid_and_the_counts_follow_the_snapshots(timelapse, data):
    roles, counts = data["figures"]["roles"], data["figures"]["counts"]
    expected_counts = timelapse.role_counts()
    lines = {t["name"]: t["y"] for t in counts["data"] if t["name"] != "shown"}
    assert lines == {r: c for r, c in expected_counts.items() if any(c)}
    for index, snapshot in enumerate(timelapse.snapshots):
        (grid,) = figure_at(roles, index)["data"]
        assert grid["text"] == [[ROLE_SHORT[r] or "mixed" for r in row] for row in snapshot.roles]
        assert [[ROLE_NAMES[z] for z in row] for row in grid["z"]] == snapshot.roles
        marker = figure_at(counts, index)["data"][-1]
        assert marker["name"] == "shown" and marker["x"] == [snapshot.step, snapshot.step]


def test_probe_guesses_per_snapshot_first_guess_bold_and_escaped(timelapse, data):
    assert len(data["probes"]) == len(timelapse.snapshots)
    first = data["probes"][0]
    assert "I drink <b>coffee</b> every day." in first
    assert "coffee (50%)" in first and "tea (20%)" in first
    assert "<script>" not in first and "&lt;script&gt; (90%)" in first
    assert "A &lt;b&gt;bold&lt;/b&gt; <b>&lt;script&gt;</b>." in first  # the visitor's text
    assert "coffee (47%)" in data["probes"][3]
    assert data["lines"][2] == ("step 20 · validation accuracy where the input was <mask>: "
                                "20.0% · validation loss 3.000")
    assert data["steps"] == [0, 10, 20, 30] and data["title"] == "A: structured start"


def test_no_guess_yet_leaves_the_sentence_as_typed():
    html = probes_html(["The <mask> sat."], [[]])
    assert "The &lt;mask&gt; sat." in html and "<b>" not in html


def test_a_live_run_appending_while_the_data_is_made_is_read_as_one_list(timelapse):
    growing = made_up(snapshots=3)
    data = replay_data(growing)
    growing.snapshots.append(timelapse.snapshots[-1])  # after: the data keeps its 3
    assert len(data["steps"]) == len(data["figures"]["map"]["frames"]) == 3
    with pytest.raises(ValueError, match="no snapshot"):
        replay_data(made_up(snapshots=0))


def test_the_block_value_holds_runs_with_snapshots_and_says_why_there_are_none(timelapse):
    from roberta.ui.timelapse_view import WAITING, timelapse_value

    assert timelapse_value([None]) == {"runs": [], "message": WAITING}
    reason = "This model has no time-lapse (no timelapse.safetensors beside its weights)."
    assert timelapse_value([None], message=reason) == {"runs": [], "message": reason}
    both = timelapse_value([timelapse, made_up(seed=1)], ["A: x", "B: y"])
    assert [r["title"] for r in both["runs"]] == ["A: x", "B: y"] and both["message"] == ""
    json.dumps(both)  # plain JSON: what the page receives


def test_a_micro_runs_sixty_snapshots_stay_under_a_megabyte_of_json():
    """The Train tab's default model (micro: 2 layers × 2 heads) on the fixed sentence (~14
    tokens), 300 map words, 60 snapshots: the whole time-lapse the page holds."""
    data = replay_data(made_up(snapshots=60, layers=2, heads=2, tokens=14, words=300,
                               width=128))
    size = len(json.dumps(data, separators=(",", ":")))
    assert size < 1_000_000, size
