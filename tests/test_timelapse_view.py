"""The time-lapse's figures (roberta/viz/timelapse.py) against the TimeLapse they are made from,
and the block's value (roberta/ui/timelapse_view.py): what the page replays at each snapshot is
what the run recorded there."""

from __future__ import annotations

import json

import numpy as np
import pytest

from roberta.timelapse import ROLE_NAMES, Snapshot, TimeLapse
from roberta.viz.timelapse import (
    MAP_LABELS,
    MAP_SCALE,
    attention_at,
    map_at,
    probes_html,
    replay_data,
)


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


def test_every_heads_attention_at_every_snapshot(timelapse, data):
    a = data["attention"]
    L, H, T = timelapse.snapshots[0].attention.shape[:3]
    assert (a["layers"], a["heads"]) == (L, H) == (2, 3)
    assert a["tokens"] == ["<s>", "␣t0", "␣t1", "␣t2", "␣t3", "</s>"]  # spaces made visible
    assert len(a["frames"]) == len(timelapse.snapshots)
    for index, snapshot in enumerate(timelapse.snapshots):
        drawn = attention_at(data, index)
        assert drawn.shape == (L, H, T, T)
        np.testing.assert_allclose(drawn, snapshot.attention.astype(np.float32), atol=0.005)
        assert all(isinstance(v, int) for v in a["frames"][index])  # whole percents


def test_the_map_points_are_the_timelapses_at_that_index(timelapse, data):
    points = timelapse.map_points()
    extent = np.ptp(points.reshape(-1, 2), axis=0)
    m = data["map"]
    assert m["words"] == timelapse.map_words and m["labelled"] == MAP_LABELS
    for index in range(len(timelapse.snapshots)):
        np.testing.assert_allclose(map_at(data, index), points[index], atol=extent.max() * 2e-4)
        frame = m["frames"][index]
        # The axes hold every snapshot's points: the map never rescales under the slider.
        assert min(frame["x"]) > 0 and max(frame["x"]) < MAP_SCALE
        assert min(frame["y"]) > 0 and max(frame["y"]) < MAP_SCALE


def test_the_role_grid_and_the_counts_follow_the_snapshots(timelapse, data):
    expected_counts = timelapse.role_counts()
    assert data["counts"]["lines"] == {r: c for r, c in expected_counts.items() if any(c)}
    assert list(data["counts"]["lines"]) == [r for r in ROLE_NAMES if any(expected_counts[r])]
    assert data["counts"]["heads"] == 6 and data["counts"]["steps"] == timelapse.steps()
    assert set(data["role_colors"]) == set(data["role_short"]) == set(ROLE_NAMES)
    assert data["role_short"]["first"] == "<s>"  # a label the page writes as text
    for index, snapshot in enumerate(timelapse.snapshots):
        assert data["roles"][index] == snapshot.roles


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
    assert len(data["steps"]) == len(data["map"]["frames"]) == len(data["roles"]) == 3
    with pytest.raises(ValueError, match="no snapshot"):
        replay_data(made_up(snapshots=0))


def test_the_block_value_holds_runs_with_snapshots_and_says_why_there_are_none(timelapse):
    from roberta.ui.timelapse_view import WAITING, timelapse_value

    assert json.loads(timelapse_value([None])) == {"runs": [], "message": WAITING}
    reason = "This model has no time-lapse (no timelapse.safetensors beside its weights)."
    assert json.loads(timelapse_value([None], message=reason)) == {"runs": [], "message": reason}
    text = timelapse_value([timelapse, made_up(seed=1)], ["A: x", "B: y"])
    assert "<" not in text  # "<mask>", "<script>": escaped in the text, intact once parsed
    both = json.loads(text)
    assert [r["title"] for r in both["runs"]] == ["A: x", "B: y"] and both["message"] == ""
    assert both["runs"][0] == json.loads(json.dumps(replay_data(timelapse, "A: x")))


def test_a_micro_runs_sixty_snapshots_stay_under_a_megabyte_of_json():
    """The Train tab's default model (micro: 2 layers × 2 heads) on the fixed sentence (~14
    tokens), 300 map words, 60 snapshots: the whole time-lapse the page holds."""
    data = replay_data(made_up(snapshots=60, layers=2, heads=2, tokens=14, words=300,
                               width=128))
    size = len(json.dumps(data, separators=(",", ":")))
    assert size < 1_000_000, size


def test_the_apps_zip_carries_the_timelapse_and_the_import_panel_replays_it(tiny_assets,
                                                                             tmp_path):
    """The Train tab's download (pretrain_job.export_hf_zip) writes the run's time-lapse beside
    the weights; importing that zip (model_import) gives the panel's block the same snapshots,
    and a model without one gives the block the library's one sentence why."""
    from roberta.model import RobertaForMaskedLM
    from roberta.tokenizer import RobertaTokenizer
    from roberta.ui import registry
    from roberta.ui.model_import import import_checkpoint, imported_timelapse
    from roberta.ui.pretrain_job import export_hf_zip

    model = RobertaForMaskedLM.from_pretrained(tiny_assets / "mlm")
    tokenizer = RobertaTokenizer.from_pretrained(tiny_assets / "mlm")
    config = model.config
    recorded = made_up(snapshots=3, layers=config.num_hidden_layers,
                       heads=config.num_attention_heads)
    archive = export_hf_zip(model, tokenizer, "run", parent=tmp_path / "with", timelapse=recorded)
    plain = export_hf_zip(model, tokenizer, "plain", parent=tmp_path / "without")
    session: dict = {}
    for upload in (archive, plain):
        copy = tmp_path / f"{'run' if upload is archive else 'plain'}.zip"
        copy.write_bytes(upload.read_bytes())  # the import deletes its upload once read
        session, *_ = import_checkpoint(session, str(copy), None)
    shown = json.loads(imported_timelapse(session, "Imported: run"))
    (run,) = shown["runs"]
    assert run["steps"] == recorded.steps() and run["title"] == "Time-lapse of Imported: run"
    np.testing.assert_allclose(attention_at(run, 2),
                               recorded.snapshots[2].attention.astype(np.float32), atol=0.005)
    assert run["roles"] == [s.roles for s in recorded.snapshots]
    assert registry.session_models(session)["Imported: run"].timelapse is not None
    assert json.loads(imported_timelapse(session, "Imported: plain")) == {
        "runs": [], "message": "This model has no time-lapse (no timelapse.safetensors beside "
                               "its weights)."}
    assert json.loads(imported_timelapse(session, "Nobody")) == {"runs": [], "message": ""}


def test_a_run_streams_its_timelapse_as_it_grows_and_whole_at_the_end(timelapse):
    """live_value: sent when a snapshot was added, held back TIMELAPSE_SECONDS between sends
    (the page replays what it has), sent whole once the run has ended; a run that ended with
    no snapshot says so instead of waiting for one."""
    from roberta.ui.live import SendWhenChanged
    from roberta.ui.timelapse_view import NONE_TAKEN, TIMELAPSE_SECONDS, WAITING, live_value

    now = [0.0]
    send = SendWhenChanged(clock=lambda: now[0])
    growing = made_up(snapshots=0)
    assert json.loads(live_value(send, [growing], False))["message"] == WAITING
    growing.snapshots.append(timelapse.snapshots[0])
    assert not isinstance(live_value(send, [growing], False), str)  # gr.skip(): too soon
    now[0] += TIMELAPSE_SECONDS
    (run,) = json.loads(live_value(send, [growing], False))["runs"]
    assert run["steps"] == [0]
    now[0] += TIMELAPSE_SECONDS / 2
    assert not isinstance(live_value(send, [growing], False), str)  # nothing new to send
    growing.snapshots.append(timelapse.snapshots[1])
    now[0] += TIMELAPSE_SECONDS / 4
    assert not isinstance(live_value(send, [growing], False), str)  # too soon after the last
    now[0] += TIMELAPSE_SECONDS / 4
    (run,) = json.loads(live_value(send, [growing], False))["runs"]
    assert run["steps"] == [0, 10]
    growing.snapshots.append(timelapse.snapshots[2])
    (run,) = json.loads(live_value(send, [growing], True))["runs"]  # ended: sent at once
    assert run["steps"] == [0, 10, 20]
    assert json.loads(live_value(SendWhenChanged(), [made_up(snapshots=0)], True)) == {
        "runs": [], "message": NONE_TAKEN}
