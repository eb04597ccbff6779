"""The training engine: learning, resume == uninterrupted, stop, NaN guard, fine-tuning, CLI,
and two processes against one."""

import contextlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import transformers

from roberta import RobertaConfig, RobertaForMaskedLM, RobertaForSequenceClassification, cli
from roberta.data import ClassificationData
from roberta.model import IGNORE_INDEX
from roberta.packing import PackedSequences
from roberta.settings import TrainingError
from roberta.tokenizer import RobertaTokenizer
from roberta.training.config import FinetuneConfig, PretrainConfig
from roberta.training.engine import recover_checkpoint, run_to_end
from roberta.training.finetuning import Finetuner, classifier_from, finetune_split
from roberta.training.pretraining import Pretrainer, PretrainingData, prepare_pretraining_data

REPO = Path(__file__).resolve().parents[1]
ANIMALS = ["cat", "dog", "bird", "fish", "horse", "mouse"]
PLACES = ["garden", "house", "river", "field", "kitchen", "forest"]


def tiny_corpus(n_docs=120):
    """Documents with learnable structure: 'the cat sat in the garden' patterns."""
    g = torch.Generator().manual_seed(0)
    docs = []
    for d in range(n_docs):
        sentences = []
        for _ in range(6):
            a = ANIMALS[int(torch.randint(len(ANIMALS), (1,), generator=g))]
            p = PLACES[int(torch.randint(len(PLACES), (1,), generator=g))]
            sentences.append(f"The {a} sat in the {p} and the {a} was happy.")
        docs.append(f"Story {d}. " + " ".join(sentences))
    return docs


@pytest.fixture(scope="module")
def tokenizer():
    return RobertaTokenizer.train(tiny_corpus(), vocab_size=300, min_frequency=1)


@pytest.fixture(scope="module")
def data(tokenizer):
    return prepare_pretraining_data(tiny_corpus(), tokenizer, seq_length=32,
                                    validation_fraction=0.1, seed=0)


def new_model(tokenizer, seed=0, **overrides):
    torch.manual_seed(seed)
    return RobertaForMaskedLM(RobertaConfig.preset("nano", vocab_size=tokenizer.vocab_size,
                                                   max_position_embeddings=34, **overrides))


def settings(**overrides):
    base = dict(max_steps=20, batch_size=8, learning_rate=2e-3, warmup_steps=5, eval_every=10,
                precision="fp32", device="cpu", seed=0, seq_length=32, eval_sequences=32,
                probes=("The cat sat in the <mask>.",))
    return PretrainConfig(**{**base, **overrides})


def losses(events):
    return [e.metrics["loss"] for e in events if e.kind == "step"]


@pytest.mark.slow  # 300 steps
def test_pretraining_learns_and_beats_the_unigram_baseline(tokenizer, data):
    # ~150 steps sit on the unigram plateau (predicting "the"); by 300 context is used.
    trainer = Pretrainer(new_model(tokenizer), tokenizer, data, settings(
        max_steps=300, eval_every=150, batch_size=16, warmup_steps=20))
    events = list(trainer.run())
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert kinds.count("step") == 300 and kinds.count("eval") == 2
    evals = [e for e in events if e.kind == "eval"]
    final = evals[-1].metrics
    assert final["val_accuracy"] > events[-1].metrics["unigram_accuracy"] + 0.03
    # The reported loss is the mean cross-entropy over every scored validation token, computed
    # here independently from the final weights and the same fixed masks.
    trainer.model.eval()
    with torch.no_grad():
        total, count = 0.0, 0
        for batch in trainer._validation:
            logits = trainer.model(batch["input_ids"],
                                   attention_mask=batch["attention_mask"]).logits
            scored = batch["labels"] != IGNORE_INDEX
            total += torch.nn.functional.cross_entropy(
                logits[scored].float(), batch["labels"][scored], reduction="sum").item()
            count += int(scored.sum())
    assert final["val_loss"] == pytest.approx(total / count, rel=1e-4)
    assert final["val_perplexity"] == pytest.approx(math.exp(total / count), rel=1e-4)
    step_losses = losses(events)
    assert sum(step_losses[-10:]) / 10 < sum(step_losses[:10]) / 10 - 0.5
    probe = evals[-1].probes[0]
    assert probe.text == "The cat sat in the <mask>." and len(probe.predictions[0].candidates) == 5
    assert all(e.metrics["tokens_per_s"] > 0 for e in events if e.kind == "step")


def test_repeated_documents_are_extra_training_rounds_and_never_held_out(tokenizer, data):
    texts = tiny_corpus()  # every document starts "Story <n>."
    weighted = prepare_pretraining_data(texts, tokenizer, seq_length=32, validation_fraction=0.1,
                                        repeats={texts[0]: 3, texts[1]: 2})
    assert torch.equal(weighted.validation.input_ids, data.validation.input_ids)  # same split

    def text(sequences) -> str:
        real = sequences.input_ids[sequences.attention_mask.bool()]
        return tokenizer.decode(real.tolist())  # special tokens skipped

    once, weighed = text(data.train), text(weighted.train)
    held_out = text(data.validation)
    assert "Story 0." in once and "Story 1." in once and "Story 0." not in held_out
    plain = next(f"Story {k}." for k in range(2, 20) if f"Story {k}." in once)
    assert (weighed.count("Story 0."), weighed.count("Story 1."), weighed.count(plain)) \
        == (3, 2, 1)
    first, second = [i for i in range(len(weighed)) if weighed.startswith("Story 0.", i)][:2]
    assert second - first >= len(once) - 200  # a whole round apart, never side by side
    with pytest.raises(TrainingError, match="at least 1 copy"):
        prepare_pretraining_data(texts, tokenizer, seq_length=32, validation_fraction=0.1,
                                 repeats={texts[0]: 0})


def test_same_seed_same_curve(tokenizer, data):
    a = losses(Pretrainer(new_model(tokenizer), tokenizer, data, settings(max_steps=6)).run())
    b = losses(Pretrainer(new_model(tokenizer), tokenizer, data, settings(max_steps=6)).run())
    assert a == b


def test_resume_continues_the_same_curve(tokenizer, data, tmp_path):
    full = losses(Pretrainer(new_model(tokenizer), tokenizer, data,
                             settings(max_steps=12, eval_every=100)).run())
    first = Pretrainer(new_model(tokenizer), tokenizer, data,
                       settings(max_steps=12, eval_every=100))
    half = []
    for event in first.run():
        if event.kind == "step":
            half.append(event.metrics["loss"])
            if event.step == 6:
                first.save_checkpoint(tmp_path / "ckpt")
                break
    resumed = Pretrainer.resume(tmp_path / "ckpt", data, settings(max_steps=12, eval_every=100))
    assert resumed.step == 6
    rest = losses(resumed.run())
    assert half + rest == pytest.approx(full, abs=1e-6)


def test_a_crash_between_the_saves_renames_loses_no_resume_point(tokenizer, data, tmp_path,
                                                                monkeypatch):
    """Killed after the old checkpoint was moved aside and before the new one took its place:
    recover_checkpoint puts the newest complete checkpoint back and clears the leftovers."""
    trainer = Pretrainer(new_model(tokenizer), tokenizer, data, settings(max_steps=12))
    target = tmp_path / "ckpt"
    for event in trainer.run():
        if event.kind == "step" and event.step == 3:
            trainer.save_checkpoint(target)
        if event.kind == "step" and event.step == 5:
            break
    real_rename, calls = Path.rename, []

    def crash_on_the_second_rename(self, new):
        calls.append(self)
        if len(calls) == 2:  # the old one is aside, the new one not yet in place
            raise KeyboardInterrupt("killed")
        return real_rename(self, new)

    monkeypatch.setattr(Path, "rename", crash_on_the_second_rename)
    with pytest.raises(KeyboardInterrupt):
        trainer.save_checkpoint(target)
    monkeypatch.setattr(Path, "rename", real_rename)
    assert not target.exists() and (tmp_path / ".ckpt.old").is_dir()
    # A killed process leaves its half-written temporary folder too (no `finally` ran).
    (tmp_path / ".ckpt.half").mkdir()
    (tmp_path / ".ckpt.half" / "config.json").write_text("{")
    assert recover_checkpoint(target) == target
    assert Pretrainer.resume(target, data, settings(max_steps=12)).step == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]

    # Killed after the new checkpoint was complete but before any rename: the newest wins.
    trainer.save_checkpoint(tmp_path / "newer")  # step 5
    shutil.rmtree(target)
    (tmp_path / "newer").rename(tmp_path / ".ckpt.x1")
    assert recover_checkpoint(target) == target
    assert json.loads((target / "trainer_state.json").read_text())["step"] == 5
    assert recover_checkpoint(tmp_path / "nothing") is None


def test_stop_flag_ends_the_run_with_a_usable_model(tokenizer, data):
    trainer = Pretrainer(new_model(tokenizer), tokenizer, data, settings(max_steps=1000))
    events = []
    for event in trainer.run():
        events.append(event)
        if event.kind == "step" and event.step == 3:
            threading.Thread(target=trainer.stop).start()  # from another thread, as the UI does
    assert events[-1].kind == "stopped"
    assert events[-1].step < 10
    from roberta.inference import fill_mask
    result = fill_mask(trainer.model, tokenizer, "The cat sat in the <mask>.")
    assert len(result.predictions) == 1


def test_nan_loss_ends_the_run_before_touching_the_weights(tokenizer, data):
    trainer = Pretrainer(new_model(tokenizer), tokenizer, data, settings(max_steps=10))
    events = []
    for event in trainer.run():
        events.append(event)
        if event.kind == "step" and event.step == 2:
            before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
            with torch.no_grad():  # poison the forward pass: the next loss is NaN
                trainer.model.roberta.embeddings.LayerNorm.bias.fill_(float("nan"))
    assert events[-1].kind == "failed"
    assert "NaN" in events[-1].message and "step 3" in events[-1].message
    after = trainer.model.state_dict()
    # Nothing but the poisoned tensor changed: the optimizer step was skipped.
    for key, value in before.items():
        if "embeddings.LayerNorm.bias" not in key:
            assert torch.equal(value, after[key]), key


NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def test_gradient_accumulation_matches_one_batch_of_the_whole_size(tokenizer, data):
    """Two micro-batches of 4 give the same update as one batch of 8 with the same masks — even
    when the micro-batches hold very different numbers of masked tokens (token-weighted)."""
    whole = Pretrainer(new_model(tokenizer, **NO_DROPOUT), tokenizer, data, settings(batch_size=8))
    batch = whole.micro_batch(0)
    batch["labels"][:4, ::2] = IGNORE_INDEX  # the first half keeps far fewer scored tokens
    scored = batch["labels"] != IGNORE_INDEX
    counts = [scored[:4].sum(), scored[4:].sum()]
    assert counts[1] > 2 * counts[0]
    halves = [{k: v[:4] for k, v in batch.items()}, {k: v[4:] for k, v in batch.items()}]
    accumulated = Pretrainer(new_model(tokenizer, **NO_DROPOUT), tokenizer, data,
                             settings(batch_size=4, grad_accum_steps=2))
    whole.micro_batch = lambda index: batch
    accumulated.micro_batch = lambda index: halves[index % 2]
    loss_whole = whole._optimizer_step()[0]
    loss_accumulated = accumulated._optimizer_step()[0]
    assert loss_accumulated == pytest.approx(loss_whole, rel=1e-5)
    for (name, a), b in zip(whole.model.named_parameters(), accumulated.model.parameters(),
                            strict=True):
        assert torch.allclose(a, b, atol=1e-6), name


def test_static_masking_repeats_and_dynamic_does_not(tokenizer, data):
    static = Pretrainer(new_model(tokenizer), tokenizer, data,
                        settings(static_masking=True, static_copies=2))
    dynamic = Pretrainer(new_model(tokenizer), tokenizer, data, settings())
    per_epoch = len(data.train) // 8
    # Batch 0 of epoch 0 and of epoch 2 hold the same rows (different permutations, so
    # compare the masks of one fixed sequence via its row index instead).
    for trainer, should_repeat in ((static, True), (dynamic, False)):
        rows0 = trainer.rows_for(0, len(data.train))
        seq = int(rows0[0])
        masks = {}
        for epoch in (0, 2):
            for k in range(per_epoch):
                index = epoch * per_epoch + k
                rows = trainer.rows_for(index, len(data.train))
                if seq in rows.tolist():
                    batch = trainer.micro_batch(index)
                    masks[epoch] = batch["labels"][rows.tolist().index(seq)]
                    break
        assert torch.equal(masks[0], masks[2]) == should_repeat


@pytest.mark.parametrize("bad,message", [
    (dict(learning_rate=0), "learning_rate"),
    (dict(max_steps=0), "max_steps"),
    (dict(batch_size=1000), "fewer than one batch"),
    (dict(precision="fp16"), "fp16 needs a CUDA device"),
    (dict(device="cuda:0"), "CUDA is not available"),
])
def test_impossible_settings_are_clear_errors(tokenizer, data, bad, message):
    if "cuda" in str(bad.get("device", "")) and torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(TrainingError, match=message):
        Pretrainer(new_model(tokenizer), tokenizer, data, settings(**bad))


def review_task() -> ClassificationData:
    g = torch.Generator().manual_seed(1)

    def review(label):
        word = ["awful", "bad", "poor"] if label == 0 else ["great", "lovely", "good"]
        w = word[int(torch.randint(3, (1,), generator=g))]
        a = ANIMALS[int(torch.randint(len(ANIMALS), (1,), generator=g))]
        return f"The {a} food was {w} and the {a} knew it."

    labels = [i % 2 for i in range(160)]
    return ClassificationData([review(y) for y in labels], labels,
                              [review(y) for y in labels[:40]], labels[:40],
                              label_names=("bad", "good"))


def nano_classifier(tokenizer) -> RobertaForSequenceClassification:
    torch.manual_seed(0)
    return RobertaForSequenceClassification(RobertaConfig.preset(
        "nano", vocab_size=tokenizer.vocab_size, max_position_embeddings=34,
        id2label={0: "bad", 1: "good"}))


def run_keeping_weights_at_each_evaluation(trainer):
    """(every event of the run, {step: the weights at that step's evaluation}). The final
    report (which restores the best weights) comes after the last evaluation event."""
    events, weights_at = [], {}
    for event in trainer.run():
        events.append(event)
        if event.kind == "eval":
            weights_at[event.step] = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    return events, weights_at


def assert_same_weights(model, weights) -> None:
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key]), key


def test_finetuning_reports_test_metrics_beside_the_tfidf_baseline(tokenizer):
    data, model = review_task(), nano_classifier(tokenizer)
    trainer = Finetuner(model, tokenizer, data, FinetuneConfig(
        max_steps=40, batch_size=16, learning_rate=3e-3, eval_every=10, device="cpu",
        precision="fp32", seq_length=32))
    events, weights_at = run_keeping_weights_at_each_evaluation(trainer)
    done = events[-1]
    assert done.kind == "done", done.message
    m = done.metrics
    assert m["test_accuracy"] > 0.9 and m["baseline_accuracy"] > 0.9
    assert 0 <= m["test_macro_f1"] <= 1
    evals = [e for e in events if e.kind == "eval"]
    assert len(evals) == 4
    # The best step is the first with the highest validation accuracy (here step 30 of 40: two
    # evaluations reach 100%), and its weights are the ones restored, weight for weight; the
    # test figures are those weights' test figures.
    best = max(evals, key=lambda e: (e.metrics["val_accuracy"], -e.step))
    assert m["best_step"] == best.step < evals[-1].step
    assert_same_weights(trainer.model, weights_at[best.step])
    assert trainer.score(*trainer._val)["accuracy"] == best.metrics["val_accuracy"]
    assert trainer.test_scores()["accuracy"] == m["test_accuracy"]


def test_a_stopped_run_ends_with_an_evaluation_of_the_model_it_leaves(tokenizer, data):
    trainer = Pretrainer(new_model(tokenizer), tokenizer, data, settings(max_steps=1000))
    events = []
    for event in trainer.run():
        events.append(event)
        if event.kind == "step" and event.step == 3:
            trainer.stop()
    evaluation, stopped = events[-2:]
    assert (evaluation.kind, stopped.kind) == ("eval", "stopped")
    assert evaluation.step == stopped.step == 3 and "val_mask_accuracy" in evaluation.metrics
    assert evaluation.probes and "unigram_accuracy" in stopped.metrics  # the final report


def test_a_stopped_fine_tuning_keeps_its_best_step_and_the_baseline_it_was_given(
        tokenizer, monkeypatch):
    """The caller's TF-IDF model (fitted on the same split) is the one scored: never refitted."""
    from roberta.baselines import fit_tfidf, scores
    from roberta.training import finetuning

    data = review_task()
    config = FinetuneConfig(max_steps=1000, batch_size=16, learning_rate=3e-3, eval_every=4,
                            device="cpu", precision="fp32", seq_length=32)
    split = finetune_split(data, config)
    tfidf = fit_tfidf(split.train_texts, split.train_labels)
    monkeypatch.setattr(finetuning, "fit_tfidf", lambda *args: pytest.fail("fitted again"))
    trainer = Finetuner(nano_classifier(tokenizer), tokenizer, data, config, tfidf=tfidf)
    assert trainer.train_split == split.train_texts
    events, weights_at = [], {}
    for event in trainer.run():
        events.append(event)
        if event.kind == "step" and event.step == 10:
            trainer.stop()
        if event.kind == "eval":
            weights_at[event.step] = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    stopped = events[-1]
    assert stopped.kind == "stopped" and events[-2].kind == "eval" and events[-2].step == 10
    evals = [e for e in events if e.kind == "eval"]
    best = max(evals, key=lambda e: (e.metrics["val_accuracy"], -e.step))
    # Evaluated at 4, 8 and 10 (the stop), all three equally accurate here: a tie goes to the
    # earlier step, so the model left must be step 4's, not that of step 10 where it stopped.
    assert stopped.metrics["best_step"] == best.step < stopped.step
    assert stopped.metrics["best_val_accuracy"] == best.metrics["val_accuracy"]
    assert_same_weights(trainer.model, weights_at[best.step])
    assert stopped.metrics["test_accuracy"] == trainer.test_scores()["accuracy"]
    expected = scores(tfidf.predict(data.test_texts).tolist(), data.test_labels, 2)
    assert stopped.metrics["baseline_accuracy"] == expected["accuracy"]


def test_a_resumed_fine_tuning_keeps_the_best_step_it_had_before(tokenizer, tmp_path):
    """The checkpoint carries the best validation step so far: a run resumed after it (whose
    later evaluations may never beat it) still ends on that step's weights."""
    data = review_task()
    config = FinetuneConfig(max_steps=12, batch_size=16, learning_rate=3e-3, eval_every=4,
                            device="cpu", precision="fp32", seq_length=32)
    trainer = Finetuner(nano_classifier(tokenizer), tokenizer, data, config)
    for event in trainer.run():
        if event.kind == "step" and event.step == 8:
            trainer.save_checkpoint(tmp_path / "run")
            break
    accuracy, step, weights = trainer.best
    assert step in (4, 8)
    resumed = Finetuner.resume(tmp_path / "run", data, config)
    assert resumed.step == 8 and resumed.best[:2] == (accuracy, step)
    for key, value in weights.items():
        assert torch.equal(resumed.best[2][key], value), key
    resumed.best = (2.0, step, weights)  # nothing after the resume can beat it
    done = run_to_end(resumed)
    assert done.kind == "done" and done.metrics["best_step"] == step
    for key, value in resumed.model.state_dict().items():
        assert torch.equal(value, weights[key]), key


class UnlearningFinetuner(Finetuner):
    """Learns the reviews for `flip_after` steps, then trains on every label flipped: the
    validation accuracy climbs, then falls, so the best evaluation is well before the last."""

    flip_after = 30

    def micro_batch(self, index):
        batch = super().micro_batch(index)
        if self.step >= self.flip_after:
            batch["labels"] = 1 - batch["labels"]
        return batch


def test_fine_tuning_ends_on_its_best_evaluation_and_reports_that_steps_figures(tokenizer):
    data = review_task()
    trainer = UnlearningFinetuner(nano_classifier(tokenizer), tokenizer, data, FinetuneConfig(
        max_steps=60, batch_size=16, learning_rate=3e-3, warmup_steps=3, eval_every=10,
        device="cpu", precision="fp32", seq_length=32))
    events, weights_at = run_keeping_weights_at_each_evaluation(trainer)
    done = events[-1]
    assert done.kind == "done", done.message
    accuracy_at = {e.step: e.metrics["val_accuracy"] for e in events if e.kind == "eval"}
    best_step = min(accuracy_at, key=lambda step: (-accuracy_at[step], step))
    # The premise: the run peaked and then got clearly worse.
    assert best_step <= 30 and accuracy_at[60] < accuracy_at[best_step] - 0.2, accuracy_at
    report = done.metrics
    assert report["best_step"] == best_step
    assert report["best_val_accuracy"] == accuracy_at[best_step]
    # The model the run leaves is the best step's, weight for weight ...
    assert_same_weights(trainer.model, weights_at[best_step])
    assert trainer.score(*trainer._val)["accuracy"] == accuracy_at[best_step]
    # ... and the test figures reported are that model's, not the last weights'.
    best_test = trainer.test_scores()
    assert (report["test_accuracy"], report["test_macro_f1"]) == \
        (best_test["accuracy"], best_test["macro_f1"])
    trainer.model.load_state_dict(weights_at[60])
    assert trainer.test_scores()["accuracy"] < best_test["accuracy"] - 0.2


def test_classifier_from_copies_the_encoder_as_loading_the_checkpoint_would(tokenizer,
                                                                             tmp_path):
    mlm = new_model(tokenizer)
    mlm.save_pretrained(tmp_path)
    torch.manual_seed(5)
    ours = classifier_from(mlm, ("bad", "good"), dropout=0.0)
    torch.manual_seed(5)
    with pytest.warns(UserWarning, match="newly initialised"):
        loaded = RobertaForSequenceClassification.from_pretrained(
            tmp_path, id2label={0: "bad", 1: "good"}, label2id={"bad": 0, "good": 1})
    assert ours.config.id2label == {0: "bad", 1: "good"}
    assert ours.config.hidden_dropout_prob == 0.0 != mlm.config.hidden_dropout_prob
    for key, value in loaded.state_dict().items():  # the same encoder and the same new head
        assert torch.equal(ours.state_dict()[key], value), key
    with torch.no_grad():
        ours.roberta.embeddings.word_embeddings.weight.zero_()
    assert mlm.roberta.embeddings.word_embeddings.weight.abs().sum() > 0  # a copy


# --- command line ------------------------------------------------------------------------------

def run_cli(*args, env=None, timeout=600, process=False):
    """`python -m roberta ARGS`, as a CompletedProcess: in this process (no second import of
    torch: seconds per call) unless `process` or `env` asks for a real one."""
    if process or env:
        return subprocess.run([sys.executable, "-m", "roberta", *args], cwd=REPO, text=True,
                              capture_output=True, timeout=timeout,
                              env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as exited:  # argparse's usage errors
            code = exited.code if isinstance(exited.code, int) else 1
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text("\n\n".join(tiny_corpus(200)))
    return path


@pytest.mark.slow  # ten command-line processes
def test_cli_pretrain_finetune_fill_mask_and_export(corpus_file, tmp_path):
    out = tmp_path / "mlm"
    result = run_cli("pretrain", "--preset", "nano", "--corpus", str(corpus_file),
                     "--vocab-size", "300", "--max-steps", "30", "--eval-every", "15",
                     "--seq-length", "32", "--batch-size", "8", "--warmup-steps", "5",
                     "--out", str(out), process=True)  # `python -m roberta` itself, once
    assert result.returncode == 0, result.stderr[-2000:]
    assert "unigram-frequency baseline" in result.stdout
    # From scratch the CLI takes the structured start (roberta/init.py), on the record.
    assert json.loads((out / "config.json").read_text())["structured_init"]["position_dims"] == 16
    hf = transformers.AutoModelForMaskedLM.from_pretrained(out)
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    ours = RobertaForMaskedLM.from_pretrained(out)
    ids = hf_tok("The cat sat in the <mask>.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert (hf(input_ids=ids).logits - ours(ids).logits).abs().max() < 1e-4

    plain = run_cli("pretrain", "--preset", "nano", "--corpus", str(corpus_file),
                    "--vocab-size", "300", "--max-steps", "2", "--seq-length", "32",
                    "--start", "roberta", "--out", str(tmp_path / "plain"))
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert "structured_init" not in (tmp_path / "plain" / "config.json").read_text()

    again = run_cli("pretrain", "--preset", "nano", "--corpus", str(corpus_file),
                    "--max-steps", "5", "--out", str(out))
    assert again.returncode == 2 and "already holds a model" in again.stderr  # never overwrite

    refused = run_cli("classify", "Great coffee.", "--model", str(out))  # a masked LM
    assert refused.returncode == 2 and "no trained classification head" in refused.stderr

    filled = run_cli("fill-mask", "The cat sat in the <mask>.", "--model", str(out))
    assert filled.returncode == 0 and filled.stdout.count("%") == 5
    no_mask = run_cli("fill-mask", "No mask here.", "--model", str(out))
    assert no_mask.returncode == 2 and "no <mask>" in no_mask.stderr
    assert "Traceback" not in no_mask.stderr

    # The same masked LM fine-tuned from the command line, then asked to classify.
    reviews = review_csv(tmp_path / "reviews.csv")
    classifier = tmp_path / "classifier"
    tuned = run_cli("finetune", "--init", str(out), "--task", "csv", "--csv", str(reviews),
                    "--max-steps", "30", "--batch-size", "8", "--eval-every", "10",
                    "--lr", "3e-3", "--warmup-steps", "3", "--seq-length", "32",
                    "--dropout", "0.05", "--out", str(classifier))
    assert tuned.returncode == 0, tuned.stderr[-2000:]
    config = json.loads((classifier / "config.json").read_text())
    assert config["id2label"] == {"0": "bad", "1": "good"}
    assert config["hidden_dropout_prob"] == config["attention_probs_dropout_prob"] == 0.05
    too_much = run_cli("finetune", "--init", str(out), "--task", "csv", "--csv", str(reviews),
                       "--dropout", "1.5", "--out", str(tmp_path / "refused"))
    assert too_much.returncode == 2 and "--dropout must be in [0, 1)" in too_much.stderr
    assert not (tmp_path / "refused").exists()
    answer = run_cli("classify", "The dog food was great and the dog knew it.", "--model",
                     str(classifier))
    assert answer.returncode == 0, answer.stderr[-2000:]
    shares = {label: float(share.rstrip("%")) for share, label in
              (line.split() for line in answer.stdout.splitlines() if "%" in line)}
    assert set(shares) == {"good", "bad"} and shares["good"] > shares["bad"]

    exported = run_cli("export", str(out), "--out", str(tmp_path / "fp16"), "--fp16")
    assert exported.returncode == 0, exported.stderr
    assert not (tmp_path / "fp16" / "optimizer.pt").exists()
    transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "fp16")


@pytest.mark.slow  # three command-line runs
def test_cli_same_seed_same_run(corpus_file, tmp_path):
    """--seed makes a command-line run reproducible: the same flags twice give the same losses
    and the same weights; another seed does not."""
    def pretrain(name, seed):
        result = run_cli("pretrain", "--preset", "nano", "--corpus", str(corpus_file),
                         "--vocab-size", "300", "--max-steps", "8", "--eval-every", "8",
                         "--seq-length", "32", "--batch-size", "8", "--seed", str(seed),
                         "--precision", "fp32", "--out", str(tmp_path / name))
        assert result.returncode == 0, result.stderr[-2000:]
        log = (tmp_path / f"{name}.metrics.jsonl").read_text().splitlines()
        return [r["loss"] for r in map(json.loads, log) if r.get("kind") == "step"]

    first, again, other = pretrain("a", 3), pretrain("b", 3), pretrain("c", 4)
    assert len(first) == 8 and first == again and first != other
    weights = [RobertaForMaskedLM.from_pretrained(tmp_path / n).state_dict() for n in "ab"]
    for key, value in weights[0].items():
        assert torch.equal(value, weights[1][key]), key


def step_losses(log_path: Path) -> dict[int, float]:
    """{step: loss} from a CLI run's metrics.jsonl (a resumed run appends to the same log)."""
    rows = [json.loads(line) for line in log_path.read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if r["kind"] == "step"}


def saved_masked_lm(corpus_file: Path, directory: Path, seed: int = 0) -> Path:
    """A nano masked LM with a tokenizer trained on `corpus_file`, saved as an --init."""
    tokenizer = RobertaTokenizer.train(corpus_file.read_text().split("\n\n"), vocab_size=300,
                                       min_frequency=1)
    new_model(tokenizer, seed=seed).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def same_weights(model_class, a: Path, b: Path) -> None:
    ours, theirs = (model_class.from_pretrained(d).state_dict() for d in (a, b))
    for key, value in ours.items():
        torch.testing.assert_close(theirs[key], value, rtol=0, atol=1e-6, msg=key)


def kill_then_resume(args: list[str], resume_args: list[str], reference: dict[int, float],
                     process: bool = False, before_resuming=lambda: None) -> None:
    """`python -m roberta ARGS` (its --out checkpointed every 4 steps) SIGKILLed once its first
    checkpoint is written, then continued with RESUME_ARGS (in a process too if `process`): the
    steps logged before the kill and the whole curve after it are `reference`'s (step: loss of
    the same run never interrupted), and the resumed run began at the last checkpoint."""
    out = Path(args[args.index("--out") + 1])
    log = out.with_name(f"{out.name}.metrics.jsonl")
    killed = subprocess.Popen([sys.executable, "-m", "roberta", *args], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 300
        while not (out / "trainer_state.json").is_file() and killed.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint was written"
            time.sleep(0.01)
    finally:
        killed.kill()
        killed.wait()
    assert killed.returncode != 0, "the run ended before it could be killed mid-way"
    before = step_losses(log)
    assert 4 <= len(before) < len(reference)
    assert [before[s] for s in sorted(before)] == [reference[s] for s in sorted(before)]
    before_resuming()

    resumed = run_cli(*resume_args, process=process)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = step_losses(log)  # now the resumed steps as well
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    resumed_from = [r["step"] for r in rows if r["kind"] == "start"][-1]
    # From the last checkpoint (every 4 steps), not from the last step logged before the kill.
    assert max(after) == len(reference) and resumed_from % 4 == 0
    assert resumed_from <= max(before)
    # The steps the killed run logged past its checkpoint were dropped: each step once.
    assert [r["step"] for r in rows if r["kind"] == "step"] == sorted(reference)
    steps = sorted(reference)
    assert [after[s] for s in steps] == pytest.approx([reference[s] for s in steps], abs=1e-6)


@pytest.mark.slow
def test_cli_killed_run_resumes_from_its_last_checkpoint_to_the_same_model(corpus_file,
                                                                           tmp_path):
    """--init starts from a saved masked LM; --checkpoint-every leaves a resume point in --out
    while the run goes on; a run killed (SIGKILL) there and continued with --resume ends on
    the very curve and weights of a run never interrupted (dropout on: the RNG is restored)."""
    start = saved_masked_lm(corpus_file, tmp_path / "start", seed=5)
    flags = ["pretrain", "--init", str(start), "--corpus", str(corpus_file), "--max-steps", "40",
             "--eval-every", "1000", "--checkpoint-every", "4", "--seq-length", "32",
             "--batch-size", "8", "--warmup-steps", "5", "--precision", "fp32", "--device",
             "cpu"]
    whole = run_cli(*flags, "--out", str(tmp_path / "whole"), process=True)
    assert whole.returncode == 0, whole.stderr[-2000:]
    reference = step_losses(tmp_path / "whole.metrics.jsonl")
    assert len(reference) == 40

    kill_then_resume([*flags, "--out", str(tmp_path / "killed")],
                     [*flags, "--resume", "--out", str(tmp_path / "killed")], reference,
                     process=True)
    same_weights(RobertaForMaskedLM, tmp_path / "whole", tmp_path / "killed")


def review_csv(path: Path, good="good", bad="bad") -> Path:
    """A small labelled CSV: a sentence that says "great" or "awful", for each label in turn."""
    rows = [(f"The {a} food was {'great' if i % 2 else 'awful'} and the {a} knew it.",
             good if i % 2 else bad) for i, a in enumerate(ANIMALS * 10)]
    path.write_text("text,label\n" + "\n".join(f"{t},{y}" for t, y in rows) + "\n")
    return path


def log_rows(log_path: Path, kind: str) -> list[dict]:
    return [r for r in map(json.loads, log_path.read_text().splitlines()) if r["kind"] == kind]


@pytest.mark.slow  # one command-line process, killed
def test_cli_killed_finetuning_resumes_to_the_same_classifier(corpus_file, tmp_path):
    """finetune --checkpoint-every leaves a resume point in --out; a run killed (SIGKILL) and
    continued with --resume ends on the uninterrupted run's curve, evaluations, best step and
    weights (dropout on: the RNG is restored; the best step so far travels in the checkpoint)."""
    start = saved_masked_lm(corpus_file, tmp_path / "start", seed=5)
    reviews = review_csv(tmp_path / "reviews.csv")
    flags = ["finetune", "--task", "csv", "--csv", str(reviews), "--max-steps", "40",
             "--batch-size", "8", "--eval-every", "3", "--checkpoint-every", "4", "--lr", "1e-3",
             "--warmup-steps", "3", "--seq-length", "32", "--dropout", "0.1",
             "--precision", "fp32", "--device", "cpu"]
    whole = run_cli(*flags, "--init", str(start), "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr[-2000:]
    reference = step_losses(tmp_path / "whole.metrics.jsonl")
    assert len(reference) == 40

    killed_out, log = tmp_path / "killed", tmp_path / "killed.metrics.jsonl"

    def before_resuming():
        # as the CLI does first: the kill may have landed between a later save's two renames
        recover_checkpoint(killed_out)
        state = torch.load(killed_out / "optimizer.pt", map_location="cpu", weights_only=True)
        assert state["best"]["step"] % 3 == 0 and state["best"]["step"] <= max(step_losses(log))
        again = run_cli(*flags, "--init", str(start), "--out", str(killed_out))
        assert again.returncode == 2 and "pass --resume" in again.stderr  # never overwritten

    kill_then_resume([*flags, "--init", str(start), "--out", str(killed_out)],
                     [*flags, "--resume", "--out", str(killed_out)], reference,
                     before_resuming=before_resuming)
    evals = {r["step"]: r["val_accuracy"] for r in log_rows(log, "eval")}
    assert evals == {r["step"]: r["val_accuracy"]
                     for r in log_rows(tmp_path / "whole.metrics.jsonl", "eval")}
    done, reference_done = (log_rows(path, "done")[-1] for path in
                            (log, tmp_path / "whole.metrics.jsonl"))
    assert done["best_step"] == reference_done["best_step"]
    assert done["best_val_accuracy"] == reference_done["best_val_accuracy"]
    same_weights(RobertaForSequenceClassification, tmp_path / "whole", tmp_path / "killed")


def test_cli_finetune_resume_is_refused_when_it_cannot_continue(corpus_file, tmp_path):
    start = saved_masked_lm(corpus_file, tmp_path / "start")
    reviews = review_csv(tmp_path / "reviews.csv")
    flags = ["finetune", "--task", "csv", "--csv", str(reviews), "--batch-size", "8",
             "--seq-length", "32", "--device", "cpu"]
    no_checkpoint = run_cli(*flags, "--resume", "--out", str(tmp_path / "none"))
    assert no_checkpoint.returncode == 2 and "no checkpoint in" in no_checkpoint.stderr
    both = run_cli(*flags, "--resume", "--init", str(start), "--out", str(tmp_path / "x"))
    assert both.returncode == 2 and "do not go together" in both.stderr
    no_out = run_cli(*flags, "--resume")
    assert no_out.returncode == 2 and "--resume needs --out" in no_out.stderr
    neither = run_cli(*flags)
    assert neither.returncode == 2 and "needs --init" in neither.stderr

    run = run_cli(*flags, "--init", str(start), "--out", str(tmp_path / "run"), "--max-steps",
                  "4", "--checkpoint-every", "2", "--eval-every", "2")
    assert run.returncode == 0, run.stderr[-2000:]
    other_labels = review_csv(tmp_path / "other.csv", good="pos", bad="neg")
    relabelled = run_cli("finetune", "--task", "csv", "--csv", str(other_labels), "--resume",
                         "--out", str(tmp_path / "run"), "--max-steps", "6")
    assert relabelled.returncode == 2, relabelled.stderr[-2000:]
    assert f"--csv {other_labels} (not the text the checkpoint was trained on" \
        in relabelled.stderr  # the run record names the flag
    assert "Traceback" not in relabelled.stderr
    (tmp_path / "run.run.json").unlink()  # a checkpoint from before run records: the engine
    relabelled = run_cli("finetune", "--task", "csv", "--csv", str(other_labels), "--resume",
                         "--out", str(tmp_path / "run"), "--max-steps", "6")
    assert relabelled.returncode == 2, relabelled.stderr[-2000:]
    assert "resume it on the data it began with" in relabelled.stderr
    assert "Traceback" not in relabelled.stderr
    # A corrupt checkpoint: one line that names what is wrong, never torch's page or a traceback
    for name, content, said in (("optimizer.pt", b"", "optimizer.pt is missing, truncated"),
                                ("optimizer.pt", b"garbage", "optimizer.pt is missing, truncated"),
                                ("trainer_state.json", b"{", "cannot resume from"),
                                ("model.safetensors", b"garbage", "not a readable safetensors")):
        (tmp_path / "run" / name).write_bytes(content)
        corrupt = run_cli(*flags, "--resume", "--out", str(tmp_path / "run"))
        assert corrupt.returncode == 2 and said in corrupt.stderr, (name, corrupt.stderr[-500:])
        assert len(corrupt.stderr.strip().splitlines()) == 1, corrupt.stderr


@pytest.mark.slow  # five command-line processes
def test_cli_bad_flags_are_clear(tmp_path):
    result = run_cli("pretrain", "--preset", "nano", "--heads", "3", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "--hidden (64) must be divisible by --heads (3)" in result.stderr  # the flags named
    result = run_cli("pretrain", "--preset", "nope", "--out", str(tmp_path))
    assert result.returncode == 2 and "invalid choice" in result.stderr
    # Refused before a tokenizer is trained: a hold that means nothing, heads too narrow for
    # the structured start (1 dimension each).
    result = run_cli("pretrain", "--preset", "nano", "--hold-positions", "-3", "--out",
                     str(tmp_path))
    assert result.returncode == 2 and "--hold-positions must be" in result.stderr
    assert "tokenizer" not in result.stdout
    result = run_cli("pretrain", "--preset", "nano", "--heads", "64", "--out", str(tmp_path))
    assert result.returncode == 2 and "structured start needs heads" in result.stderr
    result = run_cli("pretrain", "--preset", "nano", "--hidden", "1000000", "--out",
                     str(tmp_path))
    assert result.returncode == 2 and "Choose a smaller --hidden" in result.stderr
    assert "Traceback" not in result.stderr and "tokenizer" not in result.stdout


def masked_lm_without_dropout(corpus_file, directory: Path, seed: int = 0) -> Path:
    """A nano masked LM with its tokenizer, dropout 0, saved where `--init` can start from it:
    with no dropout a training step is a pure function of the weights and the batch."""
    tokenizer = RobertaTokenizer.train(corpus_file.read_text().split("\n\n"), vocab_size=300,
                                       min_frequency=1)
    model = new_model(tokenizer, seed=seed, hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def torchrun(*args, nproc=2, attempts=3, timeout=600):
    """`torchrun --standalone`: the rendezvous store binds port 0 itself, so no port is picked
    and then released for someone else to take; a run that still lost a port race (address in
    use) is retried on a fresh one."""
    for _ in range(attempts):
        result = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone",
             f"--nproc_per_node={nproc}", "-m", "roberta", *args],
            cwd=REPO, text=True, capture_output=True, timeout=timeout,
            env={**os.environ, "OMP_NUM_THREADS": "1"})
        if result.returncode == 0 or "address already in use" not in result.stderr.lower():
            return result
    return result


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_processes_match_one_with_the_same_global_batch(corpus_file, tmp_path):
    """torchrun with 2 gloo processes of batch 4 against 1 process of batch 8, dropout 0: the
    same 8 rows per step, masked by one generator and split by rows across the ranks, the
    gradient and the logged loss weighted by masked tokens over both ranks. Then every step's
    loss, the validation figures and the final weights agree to float rounding."""
    start = masked_lm_without_dropout(corpus_file, tmp_path / "start")
    common = ["pretrain", "--init", str(start), "--corpus", str(corpus_file),
              "--max-steps", "6", "--eval-every", "6", "--seq-length", "32",
              "--warmup-steps", "2", "--lr", "1e-3", "--precision", "fp32", "--device", "cpu"]
    one = run_cli(*common, "--batch-size", "8", "--out", str(tmp_path / "one"), process=True)
    assert one.returncode == 0, one.stderr[-2000:]
    two = torchrun(*common, "--batch-size", "4", "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr[-3000:]

    def log(name):
        return [json.loads(line) for line in
                (tmp_path / f"{name}.metrics.jsonl").read_text().splitlines()]

    def steps(name):
        return [r["loss"] for r in log(name) if r["kind"] == "step"]

    a, b = steps("one"), steps("two")
    assert len(a) == len(b) == 6  # only rank 0 logs
    assert a[0] != a[-1]  # the weights did move
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-5, (a, b)
    (eval_one,), (eval_two,) = ([r for r in log(n) if r["kind"] == "eval"] for n in ("one", "two"))
    assert eval_one["val_loss"] == pytest.approx(eval_two["val_loss"], abs=1e-5)
    assert eval_one["val_accuracy"] == eval_two["val_accuracy"]
    ours, theirs = (RobertaForMaskedLM.from_pretrained(tmp_path / n).state_dict()
                    for n in ("one", "two"))
    for key, value in ours.items():
        assert (value - theirs[key]).abs().max() < 1e-5, key


def test_evaluation_separates_masked_inputs_from_all_scored_tokens(tokenizer, data):
    trainer = Pretrainer(new_model(tokenizer), tokenizer, data, settings(max_steps=30))
    run_to_end(trainer)
    metrics, _ = trainer.evaluate()
    hits = masked_hits = count = masked_count = 0
    with torch.no_grad():  # recomputed with the dense head, every position
        for batch in trainer._validation:
            scored = batch["labels"] != IGNORE_INDEX
            guess = trainer.model(batch["input_ids"], batch["attention_mask"]).logits.argmax(-1)
            right = (guess == batch["labels"]) & scored
            shown = (batch["input_ids"] == tokenizer.mask_token_id) & scored
            hits, count = hits + int(right.sum()), count + int(scored.sum())
            masked_hits += int((right & shown).sum())
            masked_count += int(shown.sum())
    assert 0.7 < masked_count / count < 0.9  # 80% of scored positions show <mask>
    assert metrics["val_accuracy"] == pytest.approx(hits / count)
    assert metrics["val_mask_accuracy"] == pytest.approx(masked_hits / masked_count)


def test_every_front_end_holds_positions_only_for_the_structured_start():
    """One rule (PretrainConfig.hold_for) behind the Train tab, the recipe and the CLI: the
    structured start's position rows are held, RoBERTa's random ones learn from step 0."""
    from roberta.recipe_settings import BundledRecipe
    from roberta.recipe_settings import pretrain_config as recipe_config
    from roberta.training.pretrain_settings import PretrainSettings, pretrain_config

    for init, held in (("structured", -1), ("roberta", 0)):
        assert PretrainConfig.hold_for(init) == held
        assert pretrain_config(PretrainSettings(init=init)).hold_positions_steps == held
        assert recipe_config(BundledRecipe(init=init), "cpu").hold_positions_steps == held
    assert PretrainConfig.hold_for("structured", 300) == 300
    assert PretrainConfig.hold_for("roberta", 300) == 0


def test_a_partial_evaluation_scores_sequences_from_the_whole_held_out_set(tokenizer, data):
    """Held-out documents keep the corpus order (the recipe's start with IMDB's): scoring fewer
    sequences than there are takes them evenly from first to last, not the first few."""
    n = len(data.validation)
    labelled = torch.arange(n).view(-1, 1).expand(-1, 32).clone()  # row i: token id 10 + i
    validation = PackedSequences(labelled + 10, torch.ones_like(labelled))
    trainer = Pretrainer(new_model(tokenizer), tokenizer, PretrainingData(data.train, validation),
                         settings(eval_sequences=5, batch_size=2))
    originals = [torch.where(b["labels"] != IGNORE_INDEX, b["labels"], b["input_ids"])
                 for b in trainer._validation]  # the masking undone
    rows = [int(row[0]) - 10 for batch in originals for row in batch]
    assert len(rows) == 5 and rows[0] == 0 and rows[-1] == n - 1 and rows == sorted(set(rows))
    whole = Pretrainer(new_model(tokenizer), tokenizer, PretrainingData(data.train, validation),
                       settings(eval_sequences=10 * n))
    assert sum(len(b["input_ids"]) for b in whole._validation) == n  # every one, once

