"""The time-lapse of a run (roberta/timelapse.py): what a snapshot records against the library's
own readings, one PCA basis for the map, role counts, the file's round trip, and a bad file (a
hostile upload) refused in one sentence, never an exception."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
import transformers
from safetensors.numpy import save_file
from test_checkpoint_zip import LIMIT, folder_files, make_zip
from test_train import run_cli
from tiny_assets import tiny_corpus

from roberta import RobertaConfig, RobertaForMaskedLM
from roberta.checkpoint_zip import load_checkpoint_zip
from roberta.inference import attention_maps, fill_mask
from roberta.timelapse import (
    FILE_NAME,
    MAX_FILE_BYTES,
    MAX_SNAPSHOTS,
    ROLE_NAMES,
    SENTENCE,
    Snapshot,
    TimeLapse,
    TimeLapseRecorder,
    load_timelapse,
    snapshot_interval,
)
from roberta.tokenizer import RobertaTokenizer
from roberta.training.config import PretrainConfig
from roberta.training.engine import run_to_end
from roberta.training.pretraining import Pretrainer, prepare_pretraining_data
from roberta.viz.head_roles import head_roles

PROBES = ("The cat <mask> good.", "This coffee tasted <mask> yesterday.")


@pytest.fixture(scope="module")
def tokenizer():
    return RobertaTokenizer.train(tiny_corpus(), vocab_size=400, min_frequency=1)


@pytest.fixture(scope="module")
def recorded(tokenizer):
    """A nano model snapshotted at steps 0, 10 and 20, its weights moved between snapshots."""
    torch.manual_seed(0)
    model = RobertaForMaskedLM(RobertaConfig.preset("nano", vocab_size=tokenizer.vocab_size,
                                                    max_position_embeddings=66))
    ids = torch.cat([torch.tensor(tokenizer.encode(t).ids) for t in tiny_corpus()])
    recorder = TimeLapseRecorder(tokenizer, model.config, ids, max_steps=20, eval_every=10,
                                 probes=PROBES)
    for step in (0, 10, 20):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        recorder.record(model, step, {"val_loss": 5.0 - step / 10} if step else {})
    return recorder, model


def test_a_snapshot_is_what_the_library_reads_from_the_model(recorded, tokenizer):
    recorder, model = recorded
    last = recorder.timelapse.snapshots[-1]
    assert model.training  # recording left the model in the mode it found it in
    model.eval()  # the references below read it with dropout on otherwise
    # One padded batch of the role sentences gives what reading each alone gives.
    assert last.roles == head_roles(model, tokenizer).labels
    alone = attention_maps(model, tokenizer, SENTENCE)
    assert recorder.timelapse.tokens == alone.tokens
    np.testing.assert_allclose(last.attention.astype(np.float32), alone.attentions.numpy(),
                               atol=2e-3)
    for guesses, probe in zip(last.probes, PROBES, strict=True):
        expected = fill_mask(model, tokenizer, probe).predictions[0].candidates
        assert [t for t, _ in guesses] == [c.token for c in expected]
        np.testing.assert_allclose([p for _, p in guesses], [c.probability for c in expected])
    words = model.roberta.embeddings.word_embeddings.weight[recorder.map_ids].detach().numpy()
    np.testing.assert_allclose(last.embeddings.astype(np.float32), words, atol=2e-3)
    assert last.metrics == {"val_loss": 3.0} and recorder.timelapse.snapshots[0].metrics == {}


def test_the_map_words_are_the_corpus_most_frequent_whole_words(recorded):
    words = recorded[0].timelapse.map_words
    counts = {}
    for text in tiny_corpus():
        for word in text.replace(".", " ").split():
            counts[word] = counts.get(word, 0) + 1
    assert {"was", "the", "The"} & set(words[:5])
    assert set(words) <= set(counts)  # whole words only: no "ing", no pieces
    assert len(words) == len(set(words))


def _timelapse(embeddings: list[np.ndarray], roles=None) -> TimeLapse:
    W, C = embeddings[0].shape
    snaps = [Snapshot(i, {}, [], np.zeros((1, 1, 3, 3), np.float16),
                      roles[i] if roles else [["mixed"]], e.astype(np.float16))
             for i, e in enumerate(embeddings)]
    return TimeLapse("s", ["<s>", "a", "</s>"], [], [f"w{i}" for i in range(W)], snaps)


def test_the_map_projects_every_snapshot_on_the_last_snapshots_axes():
    rng = np.random.default_rng(0)
    last = rng.normal(size=(50, 16)) * np.linspace(3, 0.2, 16)  # clear principal axes
    last = last.astype(np.float16).astype(np.float64)
    rotation, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    first = (last - last.mean(0)) @ rotation + last.mean(0)  # the same cloud, turned
    points = _timelapse([first, last]).map_points()
    assert points.shape == (2, 50, 2) and points.dtype == np.float32
    # Independent reference: the covariance's top two eigenvectors (eigh, not an SVD).
    centre = last.mean(0)
    values, vectors = np.linalg.eigh(np.cov((last - centre).T))
    axes = vectors[:, ::-1][:, :2]
    reference_last = (last - centre) @ axes
    signs = np.sign((reference_last * points[1]).sum(0))  # an axis' sign is a convention
    np.testing.assert_allclose(points[1], reference_last * signs, atol=1e-3)
    # The last snapshot's own points are its PCA: uncorrelated, variances the top eigenvalues.
    np.testing.assert_allclose(np.cov(points[1].T), np.diag(values[::-1][:2]), atol=1e-2)
    # The turned cloud is shown on the same axes, so it turns: its own PCA would not move it.
    first16 = first.astype(np.float16).astype(np.float64)
    np.testing.assert_allclose(points[0], ((first16 - centre) @ axes) * signs, atol=1e-3)
    assert not np.allclose(np.abs(points[0]), np.abs(points[1]), atol=0.5)


def test_role_counts_count_each_roles_heads_per_snapshot():
    roles = [[["previous", "next"], ["first", "first"]], [["off", "mixed"], ["broad", "self"]]]
    counts = _timelapse([np.ones((3, 2))] * 2, roles).role_counts()
    assert list(counts) == list(ROLE_NAMES)
    assert counts["first"] == [2, 0] and counts["previous"] == [1, 0] and counts["off"] == [0, 1]
    assert [sum(c[i] for c in counts.values()) for i in range(2)] == [4, 4]


def test_save_then_load_gives_the_same_time_lapse(recorded, tmp_path):
    timelapse = recorded[0].timelapse
    path = timelapse.save(tmp_path)
    assert path == tmp_path / FILE_NAME
    assert abs(path.stat().st_size - timelapse.nbytes()) < 2_000
    loaded, why = load_timelapse(tmp_path)
    assert why == "" and loaded is not None
    for name in ("sentence", "tokens", "probe_texts", "map_words"):
        assert getattr(loaded, name) == getattr(timelapse, name)
    assert loaded.steps() == [0, 10, 20]
    for a, b in zip(loaded.snapshots, timelapse.snapshots, strict=True):
        assert (a.step, a.metrics, a.probes, a.roles) == (b.step, b.metrics, b.probes, b.roles)
        np.testing.assert_array_equal(a.attention, b.attention)
        np.testing.assert_array_equal(a.embeddings, b.embeddings)
        assert a.attention.dtype == a.embeddings.dtype == np.float16
    np.testing.assert_array_equal(loaded.map_points(), timelapse.map_points())
    assert loaded.role_counts() == timelapse.role_counts()
    empty = TimeLapse("s", ["<s>", "</s>"], [], [])
    assert load_timelapse(empty.save(tmp_path / "empty"))[0].snapshots == []


def _raw(path, header: dict, data: bytes = b"") -> None:
    """A safetensors file written by hand: any header, any bytes."""
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


def _resave(tmp_path, recorded, change) -> None:
    """The recorded time-lapse's file with its arrays or metadata changed by `change`."""
    tensors, meta = recorded[0].timelapse._contents()
    meta = json.loads(meta)
    change(tensors, meta)
    save_file(tensors, tmp_path / FILE_NAME, metadata={
        "timelapse": meta if isinstance(meta, str) else json.dumps(meta)})


HOSTILE = {
    "truncated": lambda d, r: (r[0].timelapse.save(d), (d / FILE_NAME).write_bytes(
        (d / FILE_NAME).read_bytes()[:-100])),
    "not safetensors": lambda d, r: (d / FILE_NAME).write_bytes(b"PK\x03\x04 zip" * 50),
    "huge header length": lambda d, r: (d / FILE_NAME).write_bytes(
        struct.pack("<Q", 2**62) + b"{}"),
    "huge declared shape": lambda d, r: _raw(d / FILE_NAME, {
        "attention": {"dtype": "F16", "shape": [60, 64, 64, 2**20, 2**20],
                      "data_offsets": [0, 16]}}, b"\0" * 16),
    "over the size cap": lambda d, r: (d / FILE_NAME).write_bytes(b"\0" * (MAX_FILE_BYTES + 1)),
    "wrong dtype": lambda d, r: _resave(d, r, lambda t, m: t.update(
        attention=t["attention"].astype(np.float32))),
    "wrong shape": lambda d, r: _resave(d, r, lambda t, m: t.update(
        embeddings=t["embeddings"][:, :-1])),
    "missing array": lambda d, r: _resave(d, r, lambda t, m: t.pop("roles")),
    "mismatched counts": lambda d, r: _resave(d, r, lambda t, m: m.update(steps=[0, 10])),
    "too many snapshots": lambda d, r: _resave(d, r, lambda t, m: m.update(
        steps=list(range(MAX_SNAPSHOTS + 1)))),
    "steps out of order": lambda d, r: _resave(d, r, lambda t, m: m.update(steps=[10, 0, 20])),
    "unknown role": lambda d, r: _resave(d, r, lambda t, m: t.update(
        roles=t["roles"] + np.uint8(200))),
    "not finite": lambda d, r: _resave(d, r, lambda t, m: t["embeddings"].fill(np.inf)),
    "bad probe guesses": lambda d, r: _resave(d, r, lambda t, m: m.update(
        probes=[[["a", "b"]]] * 3)),
    "bad metrics": lambda d, r: _resave(d, r, lambda t, m: m.update(metrics=[{"x": [1]}] * 3)),
    "no metadata": lambda d, r: save_file({"a": np.zeros(2, np.float16)}, d / FILE_NAME),
}


@pytest.mark.parametrize("kind", [*HOSTILE, "non-JSON metadata", "deeply nested metadata",
                                  "missing"])
def test_a_bad_file_is_refused_in_one_sentence(kind, recorded, tmp_path):
    if kind in HOSTILE:
        HOSTILE[kind](tmp_path, recorded)
    elif kind != "missing":
        bad = "{not json" if kind.startswith("non") else "[" * 100_000 + "]" * 100_000
        _resave(tmp_path, recorded, lambda t, m: None)
        save_file(recorded[0].timelapse._contents()[0], tmp_path / FILE_NAME,
                  metadata={"timelapse": bad})
    timelapse, why = load_timelapse(tmp_path)
    assert timelapse is None
    assert why.endswith(".") and "\n" not in why and len(why) < 200, why
    assert why.count(". ") == 0, why  # one sentence
    assert ("no time-lapse" in why) == (kind == "missing"), why


def test_snapshots_fall_on_evaluations_and_within_the_limits(recorded, tokenizer):
    # The Train tab's run: 3,000 steps evaluated every 50 -> every 100th step, 31 snapshots.
    assert snapshot_interval(3000, 50, MAX_SNAPSHOTS) == 100
    assert snapshot_interval(3000, 50, 2) == 3000 and snapshot_interval(10, 50, 60) == 50
    recorder = recorded[0]
    assert recorder.every == 10 and recorder.most == MAX_SNAPSHOTS
    assert not recorder.due(10) and not recorder.due(20)  # recorded already
    short = TimeLapseRecorder(tokenizer, RobertaConfig.preset("nano", vocab_size=400),
                              torch.tensor([0, 1]), max_steps=95, eval_every=10, probes=PROBES,
                              snapshots=4)
    assert short.every == 40  # 0, 40, 80 and the last step, 95
    assert [s for s in range(96) if short.due(s)] == [0, 40, 80, 95]
    # Full (a resumed run made longer): only the last step is still due, replacing the latest.
    short.timelapse.snapshots = [Snapshot(s, {}, [], None, [], None) for s in (0, 40, 80, 90)]
    assert [s for s in range(96) if short.due(s)] == [95]
    assert short.due(93, final=True)  # a run stopped there
    none_fit = TimeLapseRecorder(tokenizer, RobertaConfig.preset("nano", vocab_size=400),
                                 torch.tensor([0, 1]), 95, 10, PROBES, max_bytes=1_000)
    assert none_fit.most == 0 and not any(none_fit.due(s) for s in range(96))


# --- recording during a run ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def data(tokenizer):
    return prepare_pretraining_data(tiny_corpus(400), tokenizer, seq_length=32,
                                    validation_fraction=0.1)


def _trainer(tokenizer, data, **overrides) -> Pretrainer:
    torch.manual_seed(0)
    model = RobertaForMaskedLM(RobertaConfig.preset("nano", vocab_size=tokenizer.vocab_size,
                                                    max_position_embeddings=34))
    config = PretrainConfig(**{**dict(
        max_steps=20, batch_size=8, learning_rate=2e-3, warmup_steps=5, eval_every=5,
        precision="fp32", device="cpu", seq_length=32, eval_sequences=16, probes=PROBES,
        snapshots=MAX_SNAPSHOTS), **overrides})
    return Pretrainer(model, tokenizer, data, config)


def _same_snapshots(a: TimeLapse, b: TimeLapse) -> None:
    assert a.steps() == b.steps()
    for x, y in zip(a.snapshots, b.snapshots, strict=True):
        assert (x.metrics, x.probes, x.roles) == (y.metrics, y.probes, y.roles)
        np.testing.assert_array_equal(x.embeddings, y.embeddings)
        np.testing.assert_array_equal(x.attention, y.attention)


def test_a_run_snapshots_its_evaluations_and_saves_them_beside_the_weights(
        tokenizer, data, tmp_path):
    assert _trainer(tokenizer, data, snapshots=0).timelapse is None  # the library's default
    trainer = _trainer(tokenizer, data, output_dir=str(tmp_path / "run"))
    evals = {e.step: e for e in trainer.run() if e.kind == "eval"}
    timelapse = trainer.timelapse
    assert timelapse.steps() == [0, 5, 10, 15, 20]
    for snapshot in timelapse.snapshots[1:]:  # the evaluation's own figures, not new ones
        event = evals[snapshot.step]
        assert snapshot.metrics == event.metrics
        assert snapshot.probes == [[(c.token, c.probability) for c in p.predictions[0].candidates]
                                   for p in event.probes]
    saved, why = load_timelapse(tmp_path / "run")
    assert why == ""
    _same_snapshots(saved, timelapse)
    hf = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "run")  # still loads
    ids = torch.tensor([tokenizer.encode("The cat was good.").ids])
    with torch.no_grad():
        trainer.model.eval()
        assert (hf(input_ids=ids).logits - trainer.model(ids).logits).abs().max() < 1e-4


def test_a_resumed_run_keeps_the_snapshots_taken_before_the_interruption(
        tokenizer, data, tmp_path):
    whole = _trainer(tokenizer, data, checkpoint_every=10)
    run_to_end(whole)
    out = tmp_path / "run"
    interrupted = _trainer(tokenizer, data, checkpoint_every=10, output_dir=str(out))
    for event in interrupted.run():
        if event.kind == "checkpoint":  # killed after its step-10 checkpoint
            interrupted.stop()
    assert load_timelapse(out)[0].steps() == [0, 5, 10]
    resumed = Pretrainer.resume(out, data, interrupted.config)
    assert resumed.timelapse.steps() == [0, 5, 10]
    run_to_end(resumed)
    _same_snapshots(resumed.timelapse, whole.timelapse)  # as if never interrupted
    _same_snapshots(load_timelapse(out)[0], whole.timelapse)


def test_a_stopped_run_snapshots_where_it_stopped(tokenizer, data):
    trainer = _trainer(tokenizer, data)
    for event in trainer.run():
        if event.kind == "step" and event.step == 7:
            trainer.stop()
    assert trainer.timelapse.steps() == [0, 5, 7]
    assert trainer.timelapse.snapshots[-1].metrics["val_loss"] > 0


def test_the_command_line_writes_a_time_lapse_with_snapshots_n(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(tiny_corpus(200)))
    flags = ["pretrain", "--preset", "nano", "--corpus", corpus, "--vocab-size", "300",
             "--max-steps", "8", "--eval-every", "2", "--seq-length", "32", "--batch-size",
             "4", "--precision", "fp32", "--device", "cpu"]
    done = run_cli(*flags, "--snapshots", "3", "--out", tmp_path / "with")
    assert done.returncode == 0, done.stderr[-2000:]
    assert load_timelapse(tmp_path / "with")[0].steps() == [0, 4, 8]  # every 4th: 3 in all
    # Resumed and made longer, with room for more: the first run's snapshots go on.
    longer = [*flags[:flags.index("--max-steps")], "--max-steps", "12",
              *flags[flags.index("--max-steps") + 2:]]
    resumed = run_cli(*longer, "--snapshots", "5", "--resume", "--out", tmp_path / "with")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert load_timelapse(tmp_path / "with")[0].steps() == [0, 4, 8, 12]
    assert run_cli(*flags, "--out", tmp_path / "without").returncode == 0
    assert not (tmp_path / "without" / FILE_NAME).exists()  # off unless asked for
    refused = run_cli(*flags, "--snapshots", "61", "--out", tmp_path / "many")
    assert refused.returncode != 0 and "--snapshots must be between 0 and 60" in refused.stderr


# --- travelling in a zip ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["good", "missing", "truncated", "hostile", "too big",
                                  "damaged in the zip"])
def test_an_imported_zip_brings_its_time_lapse_or_one_line_why_not(kind, recorded, tiny_assets,
                                                                    tmp_path):
    good = recorded[0].timelapse.save(tmp_path / "saved").read_bytes()
    inside = {"good": good, "truncated": good[:len(good) // 2], "damaged in the zip": good,
              "hostile": struct.pack("<Q", 60) + b'{"a": {"dtype": "F16", "shape": [1e9]}}',
              "too big": b"\0" * (MAX_FILE_BYTES + 10)}  # compresses to a few kB
    files = folder_files(tiny_assets / "mlm", "run/")
    if kind in inside:
        files[f"run/{FILE_NAME}"] = inside[kind]
    upload = make_zip(tmp_path / "upload.zip", files)
    if kind == "damaged in the zip":  # the member's bytes changed after its checksum
        raw = upload.read_bytes()
        at = raw.index(good[-4000:-3990])
        upload.write_bytes(raw[:at] + bytes(b ^ 0xFF for b in raw[at:at + 10]) + raw[at + 10:])
    imported = load_checkpoint_zip(upload, tmp_path / "x", LIMIT)
    assert imported.task == "mlm" and imported.model is not None  # the model loads regardless
    if kind == "good":
        assert imported.timelapse_note == ""
        _same_snapshots(imported.timelapse, recorded[0].timelapse)
        return
    assert imported.timelapse is None
    note = imported.timelapse_note
    assert note.endswith(".") and "\n" not in note and note.count(". ") == 0, note
    assert {"missing": "no time-lapse", "too big": "larger than"}.get(kind, "not") in note, note
    if kind == "too big":  # copied no further than one byte past the cap
        assert (tmp_path / "x" / FILE_NAME).stat().st_size == MAX_FILE_BYTES + 1
