"""The embedded default models shipped in assets/: they load here and in transformers, their
model-card metrics reproduce, they fit a Space, and the defaults point at them."""

import json
import subprocess
import sys

import pytest
import torch
import transformers

from roberta import RobertaForMaskedLM, RobertaForSequenceClassification
from roberta.data import sentiment_task
from roberta.defaults import REPO_ASSETS, default_model_dir
from roberta.inference import classify, fill_mask
from roberta.tokenizer import RobertaTokenizer

MLM, CLASSIFIER = REPO_ASSETS / "mlm", REPO_ASSETS / "sentiment"


@pytest.fixture(autouse=True)
def repo_assets(monkeypatch):
    monkeypatch.delenv("ROBERTA_LAB_ASSETS", raising=False)


def test_assets_fit_a_space():
    files = [p for p in REPO_ASSETS.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 20 * 2**20
    assert max(p.stat().st_size for p in files) <= 10 * 2**20
    for directory in (MLM, CLASSIFIER):
        for name in ("config.json", "model.safetensors", "tokenizer.json", "vocab.json",
                     "merges.txt", "README.md", "metrics.json"):
            assert (directory / name).is_file(), directory / name


def test_defaults_point_at_the_shipped_files():
    assert default_model_dir("mlm") == MLM and default_model_dir("classifier") == CLASSIFIER
    result = subprocess.run([sys.executable, "-m", "roberta", "fill-mask",
                             "This coffee tastes <mask>."], cwd=REPO_ASSETS.parent,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("%") == 5


@pytest.mark.parametrize("ours_cls,auto_cls,directory", [
    (RobertaForMaskedLM, transformers.AutoModelForMaskedLM, MLM),
    (RobertaForSequenceClassification, transformers.AutoModelForSequenceClassification,
     CLASSIFIER),
])
def test_shipped_models_load_here_and_in_transformers(ours_cls, auto_cls, directory):
    ours = ours_cls.from_pretrained(directory)
    assert all(p.dtype == torch.float32 for p in ours.parameters())  # fp16 on disk
    theirs = auto_cls.from_pretrained(directory, dtype=torch.float32).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    batch = tokenizer(["The film was a huge <mask> at the box office.", "Great coffee."],
                      padding=True, return_tensors="pt")
    assert batch["input_ids"].tolist() == RobertaTokenizer.from_pretrained(directory)(
        ["The film was a huge <mask> at the box office.", "Great coffee."])["input_ids"].tolist()
    with torch.no_grad():
        a = ours(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        b = theirs(**batch).logits
    real = batch["attention_mask"].bool() if a.dim() == 3 else slice(None)
    assert (a[real] - b[real]).abs().max() < 1e-4


def test_sentiment_test_accuracy_reproduces_the_model_card():
    card = json.loads((CLASSIFIER / "metrics.json").read_text())
    model = RobertaForSequenceClassification.from_pretrained(CLASSIFIER)
    tokenizer = RobertaTokenizer.from_pretrained(CLASSIFIER)
    task = sentiment_task()
    # A deterministic sample of 300 held-out reviews; the card scores all 1,000, so allow the
    # sampling error of a proportion (3 standard errors).
    texts, labels = task.test_texts[::3][:300], task.test_labels[::3][:300]
    correct = 0
    names = model.config.id2label
    for start in range(0, len(texts), 50):
        for probs, label in zip(classify(model, tokenizer, texts[start:start + 50]),
                                labels[start:start + 50], strict=True):
            correct += max(probs, key=probs.get) == names[label]
    accuracy = correct / len(texts)
    p = card["test_accuracy"]
    assert abs(accuracy - p) < 3 * (p * (1 - p) / len(texts)) ** 0.5 + 1e-9


def test_fill_mask_probes_reproduce_the_model_card():
    card = json.loads((MLM / "metrics.json").read_text())
    model = RobertaForMaskedLM.from_pretrained(MLM)
    tokenizer = RobertaTokenizer.from_pretrained(MLM)
    for text, guesses in card["probes"].items():
        result = fill_mask(model, tokenizer, text)
        top = result.predictions[0].candidates[0]
        assert guesses[0].startswith(top.token.strip() or repr(top.token)), (text, guesses)
    assert card["validation_masked_token_accuracy"] > card["unigram_baseline_accuracy"]
