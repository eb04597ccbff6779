"""Does a positive/negative classifier carry to domains it never saw? (issue 29)

Runs roberta.sentiment_protocol on the domains of roberta.sentiment_domains: for each training
domain (IMDB, drug reviews, tweets, NYT editorials) a classifier fine-tuned from the masked LM
without it and tested on it, then one fine-tuned on all four, tested on the test-only domains
(VADER's product-review and movie-review snippets, the fine-foods reviews), on each training
domain's test split, on all of them pooled, and on bench/everyday_sentiment.py's sentences —
each time beside TF-IDF + logistic regression fitted on exactly the same rows. Human-rated
neutral sentences are scored by the share a two-class model leaves between 30% and 70%.

    python bench/sentiment_domains.py --tfidf-only                  # TF-IDF alone: ~2 minutes
    python bench/sentiment_domains.py --steps 1200 --out runs/domains.json   # 5 fine-tunings
    python bench/sentiment_domains.py --domains imdb,drugs,nyt,products --steps 50   # a smoke run

Every source is read (and its pinned checksum checked) before anything trains: a missing or
damaged archive stops the run at once with one message. Fine-tuning prints its progress; the
rows of each model are written to --out as soon as they are scored.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from everyday_sentiment import NEGATIVE, NEUTRAL, POSITIVE  # noqa: E402

from roberta import sentiment_protocol as protocol  # noqa: E402
from roberta.data import DataError  # noqa: E402
from roberta.sentiment_domains import (  # noqa: E402
    DOMAIN_ORDER,
    overlap_counts,
    read_domains,
    without_shared_texts,
)


def everyday_split() -> protocol.DomainSplit:
    """bench/everyday_sentiment.py's sentences as a test set: 36+36 polar, 20 factual."""
    texts = tuple(POSITIVE + NEGATIVE)
    labels = tuple([1] * len(POSITIVE) + [0] * len(NEGATIVE))
    return protocol.DomainSplit("everyday", "Everyday sentences (bench/everyday_sentiment.py)",
                                True, (), (), texts, labels, tuple(NEUTRAL))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--domains", default=",".join(DOMAIN_ORDER),
                        help=f"comma-separated, of: {', '.join(DOMAIN_ORDER)}")
    parser.add_argument("--tfidf-only", action="store_true", help="no fine-tuning")
    parser.add_argument("--mlm", default=None, help="masked LM directory (default: embedded)")
    parser.add_argument("--steps", type=int, default=1200, help="fine-tuning steps per model")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cap", type=int, default=protocol.DEFAULT_CAP,
                        help="training texts per domain at most (smaller ones are copied)")
    parser.add_argument("--max-copies", type=int, default=protocol.DEFAULT_MAX_COPIES)
    parser.add_argument("--test-fraction", type=float, default=protocol.DEFAULT_TEST_FRACTION)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write counts, overlaps and rows as JSON")
    parser.add_argument("--part", choices=("both", "left-out", "all"), default="both",
                        help="the leave-one-out models, the all-domains model, or both")
    parser.add_argument("--classifier", default=None,
                        help="score this classifier directory as the all-domains model instead "
                             "of fine-tuning one (the recipe's: assets/sentiment)")
    return parser.parse_args(argv)


def model_trainer(args: argparse.Namespace) -> protocol.Trainer | None:
    if args.tfidf_only:
        return None
    from roberta.config import RobertaConfig
    from roberta.defaults import default_model_dir
    from roberta.training.config import FinetuneConfig

    mlm_dir = Path(args.mlm) if args.mlm else default_model_dir("mlm")
    max_length = RobertaConfig.load(mlm_dir / "config.json").max_sequence_length
    config = FinetuneConfig(max_steps=args.steps, batch_size=args.batch_size,
                            learning_rate=args.lr, warmup_steps=min(args.warmup, args.steps),
                            eval_every=max(1, args.steps // 10), seq_length=max_length,
                            device=args.device, seed=args.seed)

    def progress(event) -> None:
        if event.kind in ("eval", "done"):
            print(f"  step {event.step}: {event.metrics}", flush=True)
    print(f"fine-tuning from {mlm_dir}: {args.steps} steps of {args.batch_size} per model",
          flush=True)
    return protocol.finetune_trainer(mlm_dir, config, args.dropout, on_event=progress)


def saved_classifier(directory: str) -> protocol.Trainer:
    """A Trainer that trains nothing: the classifier in `directory`, scored as it is."""
    from roberta.model import RobertaForSequenceClassification
    from roberta.tokenizer import RobertaTokenizer

    def load(mix: protocol.TrainingMix) -> protocol.Scorer:
        return protocol.classifier_scorer(
            RobertaForSequenceClassification.from_pretrained(directory),
            RobertaTokenizer.from_pretrained(directory))
    return load


def print_counts(counts: list[dict]) -> None:
    print("| domain | train neg | train pos | test neg | test pos | test neutral |")
    print("|---|---|---|---|---|---|")
    for c in counts:
        train = ("test only", "") if c["test_only"] else (f"{c['train_negative']:,}",
                                                          f"{c['train_positive']:,}")
        print(f"| {c['title']} | {train[0]} | {train[1]} | {c['test_negative']:,} | "
              f"{c['test_positive']:,} | {c['test_neutral']:,} |")


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    started = time.time()
    try:  # every source read and checked before anything trains
        raw = read_domains([n.strip() for n in args.domains.split(",") if n.strip()])
        named = {d.name: d.texts for d in raw} | {"everyday": everyday_split().test_texts
                                                  + everyday_split().neutral_texts}
        overlaps = {f"{a} & {b}": n for (a, b), n in overlap_counts(named).items()}
        splits = protocol.split_domains(without_shared_texts(raw), args.test_fraction, args.seed)
        # A saved classifier scored as the all-domains model needs no fine-tuning here.
        train_model = None if args.classifier and args.part == "all" else model_trainer(args)
    except DataError as error:
        raise SystemExit(f"error: {error}") from None
    counts = protocol.split_counts(splits)
    print_counts(counts)
    print("\ntexts shared by two sets (normalised; kept only in the first, test-only first): "
          + (", ".join(f"{k} {v}" for k, v in overlaps.items() if v) or "none"))
    report = {"args": vars(args), "counts": counts, "overlaps": overlaps, "rows": []}

    def save(rows: list[dict]) -> None:
        report["rows"] += rows
        print(f"\n{protocol.format_rows(rows)}", flush=True)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(report, indent=1))
    try:
        rows = protocol.run_protocol(
            splits, train_model, extra_tests=[everyday_split()], cap=args.cap,
            max_copies=args.max_copies, seed=args.seed, on_rows=save,
            parts={"both": ("left out", "all"), "left-out": ("left out",),
                   "all": ("all",)}[args.part],
            all_domains_model=saved_classifier(args.classifier) if args.classifier else None)
    except DataError as error:
        raise SystemExit(f"error: {error}") from None
    print(f"\nall rows ({time.time() - started:.0f} s):\n{protocol.format_rows(rows)}")
    print("\nthe all-domains mix, per domain:", json.dumps(rows[-1]["plan"]))
    for kind in ("left out", "in domain"):
        for side, mean in protocol.mean_over_domains(rows, kind).items():
            print(f"mean over domains, {kind}, {side}: accuracy {mean['accuracy']:.1%}, "
                  f"macro-F1 {mean['macro_f1']:.3f} (majority {mean['majority_share']:.1%})")
    return rows


if __name__ == "__main__":
    main()
