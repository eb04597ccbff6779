"""The embedded sentiment classifier's data and model card (issue 29): fine-tuned on every
training domain of roberta.sentiment_domains at once, balanced by roberta.sentiment_protocol's
rules, and scored on every domain's test split beside TF-IDF + logistic regression fitted on
exactly the same rows.

The recipe's finetune stage (roberta/recipe.py) trains on `sentiment_data(recipe).mix`; the
leave-one-domain-out half of the protocol (other models, one per held-out domain) is
bench/sentiment_domains.py's, measured apart and reported in docs/sentiment.md."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .inference import MAX_CLASSIFY_WINDOWS
from .model import RobertaForSequenceClassification
from .sentiment_domains import (
    DOMAIN_LOADERS,
    DOMAIN_ORDER,
    imdb_domain,
    overlap_counts,
    read_domains,
    without_shared_texts,
)
from .sentiment_protocol import (
    DEFAULT_TEST_FRACTION,
    DomainSplit,
    TrainingMix,
    all_domains_tests,
    balanced_mix,
    classifier_scorer,
    format_rows,
    mean_over_domains,
    score_rows,
    split_counts,
    split_domains,
)
from .tokenizer import RobertaTokenizer
from .training.devices import resolve_precision


@dataclass(frozen=True)
class SentimentData:
    """Every domain split (test sides fixed by the seed), the training mix, and how many texts
    each pair of domains shared as read (kept only in the first: `without_shared_texts`)."""

    splits: list[DomainSplit]
    mix: TrainingMix
    overlaps: dict[str, int]
    sources: dict[str, dict[str, str]]  # per domain: its title, source and label rule


def _first_of_each_label(texts: tuple[str, ...], labels: tuple[int, ...], n: int):
    kept = [i for label in (0, 1) for i in [j for j, y in enumerate(labels) if y == label][:n]]
    kept.sort()
    return tuple(texts[i] for i in kept), tuple(labels[i] for i in kept)


def _subsampled(split: DomainSplit, n: int) -> DomainSplit:
    """At most `n` texts of each label on each side (for tests of the recipe)."""
    train = _first_of_each_label(split.train_texts, split.train_labels, n)
    test = _first_of_each_label(split.test_texts, split.test_labels, n)
    return replace(split, train_texts=train[0], train_labels=train[1], test_texts=test[0],
                   test_labels=test[1], neutral_texts=split.neutral_texts[:n])


def sentiment_data(recipe) -> SentimentData:
    """Read every domain (a missing or damaged archive: DataError here, before any training),
    split each, and mix the training sides. `recipe`: a recipe.BundledRecipe."""
    # IMDB split by the recipe's seed, as pretraining splits it: its test reviews stay unread.
    loaders = {**DOMAIN_LOADERS, "imdb": lambda: imdb_domain(recipe.seed)}
    raw = read_domains(DOMAIN_ORDER, loaders)
    overlaps = {f"{a} & {b}": n
                for (a, b), n in overlap_counts({d.name: d.texts for d in raw}).items()}
    splits = split_domains(without_shared_texts(raw), DEFAULT_TEST_FRACTION, recipe.seed)
    if recipe.subsample:
        splits = [_subsampled(s, recipe.subsample) for s in splits]
    mix = balanced_mix([s for s in splits if not s.test_only], cap=recipe.finetune_cap,
                       max_copies=recipe.finetune_max_copies,
                       validation_fraction=recipe.finetune_validation, seed=recipe.seed)
    sources = {d.name: {"title": d.title, "source": d.source, "label_rule": d.label_rule,
                        "test_only": d.test_only} for d in raw}
    return SentimentData(splits, mix, overlaps, sources)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature T that minimises the cross-entropy of softmax(logits / T) on held-out
    texts (Guo et al. 2017, "On calibration of modern neural networks"). A fine-tuned classifier
    is over-confident; dividing its logits by T > 1 leaves every decision as it was and makes
    its probabilities mean what they say (a factual sentence nearer 50%)."""
    log_t = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200)

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss
    optimizer.step(closure)
    temperature = float(log_t.detach().exp())
    return temperature if math.isfinite(temperature) and temperature > 0 else 1.0


@torch.no_grad()
def fold_temperature_(model: RobertaForSequenceClassification, temperature: float) -> None:
    """Divide the classification head's last layer by `temperature`: the model then computes
    logits / T itself, so transformers and every reader of the weights get the calibrated
    probabilities."""
    model.classifier.out_proj.weight.div_(temperature)
    model.classifier.out_proj.bias.div_(temperature)


def describe_mix(mix: TrainingMix) -> str:
    """"imdb 3,600 x1, drugs 638 x4, ..." : each domain's unique texts and copies."""
    return ", ".join(f"{name} {plan['texts']:,} x{plan['copies']}"
                     for name, plan in mix.plan.items())


def classifier_rows(directory: Path, data: SentimentData, device: str = "cpu") -> list[dict]:
    """The classifier in `directory` beside TF-IDF fitted on the mix's rows, on every domain's
    test side and all training domains' pooled (sentiment_protocol.score_rows' rows)."""
    device = torch.device(device)
    model = RobertaForSequenceClassification.from_pretrained(directory).to(device)
    scorer = classifier_scorer(model, RobertaTokenizer.from_pretrained(directory), None,
                               device, resolve_precision("auto", device))
    return score_rows(data.mix, scorer, all_domains_tests(data.splits))


def sentiment_report(rows: list[dict], data: SentimentData) -> dict:
    """metrics.json's figures: every row, the means over domains, and how many test-only
    domains the model beats TF-IDF on (macro-F1: accuracy rewards leaning to the majority)."""
    test_only = [r for r in rows if r["kind"] == "test only"]
    return {"rows": rows,
            "mean_over_domains": {kind: mean_over_domains(rows, kind)
                                  for kind in ("test only", "in domain")},
            "test_only_domains_won_macro_f1": sum(
                r["model"]["macro_f1"] > r["tfidf"]["macro_f1"] for r in test_only),
            "test_only_domains": len(test_only),
            "split_counts": split_counts(data.splits), "mix": data.mix.plan,
            "texts_shared_between_domains": data.overlaps, "sources": data.sources}


def sentiment_card(report: dict, max_length: int) -> dict[str, object]:
    """The model card's sections (recipe.card writes them)."""
    plans = report["mix"].values()
    held_share = sum(p["validation"] for p in plans) / sum(p["texts"] + p["validation"]
                                                           for p in plans)
    return {
        "Model": "RobertaForSequenceClassification fine-tuned from the embedded masked LM; "
                 f"classes: negative, positive. Reads {max_length - 2} tokens at a time: a "
                 f"longer text in windows side by side (the last ending at its end, at most "
                 f"{MAX_CLASSIFY_WINDOWS}), whose logits are averaged "
                 f"(roberta.inference.classify). Every figure below reads the texts that way."
                 + (f" Calibrated by temperature scaling on the validation texts: the head's "
                    f"last layer divides its logits by {report['temperature']:.2f} (decisions "
                    f"unchanged; above 1, probabilities less extreme)."
                    if report.get("temperature") not in (None, 1.0) else ""),
        "Data": "Every domain, where it comes from and how it is labelled (no label was made "
                "by a model or a lexicon; every archive is pinned by sha256 in "
                "roberta/wheels.py, read without installing it; a test split is fixed by the "
                "seed, by whole review or article, and never trained on):\n\n"
                + "\n".join(f"- **{d['title']}**{' (test only)' if d['test_only'] else ''}: "
                            f"{d['source']}; {d['label_rule']}."
                            for d in report["sources"].values())
                + f"\n\nThe training mix (roberta.sentiment_protocol.balanced_mix): "
                f"at most {max(p['texts'] + p['validation'] for p in report['mix'].values()):,} "
                f"texts per domain, a smaller domain repeated in whole copies so none drowns "
                f"the others; {held_share:.0%} of each domain's texts (never copied) pick the "
                f"best step. "
                f"The baseline is TF-IDF (1-2 grams) + logistic regression fitted in the same "
                f"run on exactly the mix's rows. A two-class model: a factual sentence should "
                f"get a probability between 30% and 70% ('neutral in band'). Leave-one-domain-"
                f"out figures (other models, each trained without one domain) are in "
                f"docs/sentiment.md (bench/sentiment_domains.py).",
        "Results (shipped weights)": format_rows(report["rows"]),
        "Metrics": report,
    }
