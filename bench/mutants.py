"""Hand-made bugs in roberta/ and the fast tests that must catch each one (issue #32).

Each mutant is a small, plausible bug written as exact search/replace edits on files of the
library, with the tests that must fail when it is applied. The script copies the library and its
tests to a temporary folder (the working tree is never touched), runs every named test there once
unmutated (they must pass, or a "caught" would mean nothing), then for each mutant: applies it,
runs its tests, restores the file. A mutant is caught when at least one of its tests that passed
unmutated fails or errors with it.

    python -m bench.mutants              # every mutant; a table; exit 1 if any survives
    python -m bench.mutants --list       # the mutants and their tests, nothing run
    python -m bench.mutants --only adam-betas-0.999 warmup-skipped

Tests run in one process each (`-n 0`), one torch thread (OMP_NUM_THREADS=1): ~4 minutes for
the whole table on 2 cores. An edit whose search text is no longer in the file (the code moved
on) is reported as "stale", and fails the run too: update the mutant.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What the tests need of the repository: the library, the tests, the benchmarks some tests
# import, and pyproject.toml (pytest's settings and markers).
COPIED = ("roberta", "tests", "bench", "pyproject.toml")
RUN_LIMIT_S = 900  # one pytest run; the longest here takes ~30 s on 2 busy cores


@dataclass(frozen=True)
class Mutant:
    name: str
    bug: str  # the bug in words
    edits: tuple[tuple[str, str, str], ...]  # (file in the repository, exact text, replacement)
    tests: tuple[str, ...]  # pytest node ids (a parametrized test: every parametrization)


CONFIG = "roberta/training/config.py"
DEVICES = "roberta/training/devices.py"
ENGINE = "roberta/training/engine.py"
FINETUNING = "roberta/training/finetuning.py"
PRETRAINING = "roberta/training/pretraining.py"
MODEL, MASKING = "roberta/model.py", "roberta/masking.py"
FINETUNE_JOB, RECIPE = "roberta/ui/finetune_job.py", "roberta/recipe.py"
EXPERIMENTS = "roberta/experiments.py"
OPTIMIZER_TESTS, PRECISION_TESTS = "tests/test_optimizer.py", "tests/test_precision.py"
FIT_TESTS, TRAIN_TESTS = "tests/test_baselines_fit_on_train.py", "tests/test_train.py"

MUTANTS = (
    # --- the optimizer ---------------------------------------------------------------------------
    Mutant("adam-betas-0.999", "AdamW betas (0.9, 0.999), torch's default, not RoBERTa's 0.98",
           ((CONFIG, "adam_betas: tuple[float, float] = (0.9, 0.98)",
             "adam_betas: tuple[float, float] = (0.9, 0.999)"),),
           (f"{OPTIMIZER_TESTS}::test_adamw_has_robertas_betas_and_eps_not_torchs_defaults",
            f"{OPTIMIZER_TESTS}::test_updates_match_torch_adamw_driven_by_hand_with_robertas"
            "_settings")),
    Mutant("adam-eps-1e-8", "AdamW eps 1e-8, torch's default, not RoBERTa's 1e-6",
           ((CONFIG, "adam_eps: float = 1e-6", "adam_eps: float = 1e-8"),),
           (f"{OPTIMIZER_TESTS}::test_adamw_has_robertas_betas_and_eps_not_torchs_defaults",)),
    Mutant("weight-decay-on-biases-and-layernorm",
           "weight decay applied to biases and LayerNorm weights too",
           ((ENGINE, '{"params": no_decay, "weight_decay": 0.0}',
             '{"params": no_decay, "weight_decay": config.weight_decay}'),),
           (f"{OPTIMIZER_TESTS}::test_weight_decay_spares_every_bias_and_layernorm_parameter",
            f"{OPTIMIZER_TESTS}::test_updates_match_torch_adamw_driven_by_hand_with_robertas"
            "_settings")),
    Mutant("no-gradient-clipping", "gradient clipping switched off",
           ((ENGINE, 'parameters, c.grad_clip if c.grad_clip > 0 else float("inf"))',
             'parameters, float("inf"))'),),
           (f"{OPTIMIZER_TESTS}::test_gradients_are_clipped_to_the_configured_norm",)),
    Mutant("clipping-ignores-its-setting", "gradients clipped at 1.0 whatever grad_clip says",
           ((ENGINE, 'parameters, c.grad_clip if c.grad_clip > 0 else float("inf"))',
             'parameters, 1.0 if c.grad_clip > 0 else float("inf"))'),),
           (f"{OPTIMIZER_TESTS}::test_gradients_are_clipped_to_the_configured_norm",)),
    # --- the schedule ----------------------------------------------------------------------------
    Mutant("no-linear-decay", "the rate stays at its peak after warmup",
           ((ENGINE, "return max(c.min_lr_ratio, 1.0 - (1.0 - c.min_lr_ratio) * progress)",
             "return 1.0"),),
           (f"{OPTIMIZER_TESTS}::test_the_schedule_warms_up_peaks_decays_and_ends_on_the_floor",
            f"{OPTIMIZER_TESTS}::test_no_warmup_starts_at_the_peak_and_decays_to_zero")),
    Mutant("decay-ignores-the-floor", "linear decay towards 0, cut off at min_lr_ratio",
           ((ENGINE, "return max(c.min_lr_ratio, 1.0 - (1.0 - c.min_lr_ratio) * progress)",
             "return max(c.min_lr_ratio, 1.0 - progress)"),),
           (f"{OPTIMIZER_TESTS}::test_the_schedule_warms_up_peaks_decays_and_ends_on_the_floor",)),
    Mutant("warmup-skipped", "no warmup: the peak rate from the first step",
           ((ENGINE, "return (step + 1) / (c.warmup_steps + 1)", "return 1.0"),),
           (f"{OPTIMIZER_TESTS}::test_the_schedule_warms_up_peaks_decays_and_ends_on_the_floor",
            f"{OPTIMIZER_TESTS}::test_updates_match_torch_adamw_driven_by_hand_with_robertas"
            "_settings")),
    # --- the baselines ---------------------------------------------------------------------------
    Mutant("unigram-counted-on-validation", "the unigram baseline counts validation tokens",
           ((PRETRAINING,
             "train_ids = self.data.train.input_ids[self.data.train.attention_mask.bool()]",
             "train_ids = self.data.validation.input_ids["
             "self.data.validation.attention_mask.bool()]"),),
           (f"{FIT_TESTS}::test_the_unigram_baseline_counts_training_tokens_only",)),
    Mutant("finetuner-tfidf-on-test-set", "the fine-tuner's TF-IDF baseline fitted on the test set",
           ((FINETUNING, "self._tfidf = fit_tfidf(self.train_split, self.train_labels)",
             "self._tfidf = fit_tfidf(self.data.test_texts, self.data.test_labels)"),),
           (f"{FIT_TESTS}::test_the_finetuners_tfidf_is_fitted_on_its_training_split",)),
    Mutant("sentiment-tab-tfidf-on-validation",
           "the Sentiment tab's TF-IDF fitted on the validation split",
           ((FINETUNE_JOB, "return fit_tfidf(split.train_texts, split.train_labels)",
             "return fit_tfidf(split.test_texts, split.test_labels)"),),
           (f"{FIT_TESTS}::test_the_sentiment_tabs_tfidf_is_fitted_on_the_split_the_finetuner"
            "_trains_on",)),
    Mutant("recipe-tfidf-on-validation",
           "the recipe's fine-tune stage fits TF-IDF on the validation split",
           ((RECIPE, "tfidf = fit_tfidf(split.train_texts, split.train_labels)  # once",
             "tfidf = fit_tfidf(split.test_texts, split.test_labels)  # once"),),
           (f"{FIT_TESTS}::test_the_recipes_finetune_stage_fits_tfidf_on_its_training_split",)),
    Mutant("recipe-card-tfidf-on-test-set",
           "the recipe's card stage fits TF-IDF on the IMDB test set",
           ((RECIPE, "split = finetune_split(task, finetune_config(recipe, device))\n"
                     "    tfidf = fit_tfidf(split.train_texts, split.train_labels)",
             "split = finetune_split(task, finetune_config(recipe, device))\n"
             "    tfidf = fit_tfidf(task.test_texts, task.test_labels)"),),
           (f"{FIT_TESTS}::test_the_recipes_card_stage_fits_tfidf_on_the_same_training_split",)),
    # --- precision -------------------------------------------------------------------------------
    Mutant("bf16-autocast-never-entered", "bf16 asked for on a CPU runs in fp32",
           ((DEVICES, 'if precision == "fp32":\n        return contextlib.nullcontext()',
             'if precision == "fp32" or device.type == "cpu":\n'
             "        return contextlib.nullcontext()"),),
           (f"{PRECISION_TESTS}::test_a_bf16_step_computes_in_bf16_and_an_fp32_step_in_fp32",
            f"{PRECISION_TESTS}::test_bf16_loss_curve_tracks_fp32_over_200_steps")),
    Mutant("fp32-runs-under-autocast", "fp32 asked for runs under fp16 autocast",
           ((DEVICES, 'if precision == "fp32":\n        return contextlib.nullcontext()',
             'if precision == "fp64":\n        return contextlib.nullcontext()'),),
           (f"{PRECISION_TESTS}::test_a_bf16_step_computes_in_bf16_and_an_fp32_step_in_fp32",)),
    Mutant("auto-picks-emulated-bf16", "auto picks bf16 on a CPU without native bf16 (~50x slower)",
           ((DEVICES, 'return "bf16" if device.type == "cpu" and cpu_supports_bf16() else "fp32"',
             'return "bf16" if device.type == "cpu" else "fp32"'),),
           (f"{PRECISION_TESTS}::test_auto_precision_follows_the_hardware",
            f"{PRECISION_TESTS}::test_this_machine_runs_auto_in_what_its_cpu_does_fast")),
    # --- the best fine-tuning step ---------------------------------------------------------------
    Mutant("finetune-ends-on-last-weights",
           "fine-tuning ends on the last weights, not the best evaluation's",
           ((FINETUNING, "            self.model.load_state_dict(self.best[2])\n", ""),),
           (f"{TRAIN_TESTS}::test_fine_tuning_ends_on_its_best_evaluation_and_reports_that_steps"
            "_figures",
            f"{TRAIN_TESTS}::test_finetuning_reports_test_metrics_beside_the_tfidf_baseline",
            f"{TRAIN_TESTS}::test_a_stopped_fine_tuning_keeps_its_best_step_and_the_baseline_it"
            "_was_given")),
    Mutant("best-step-is-the-last-of-a-tie", "a later evaluation that only ties the best wins",
           ((FINETUNING, 'scores["accuracy"] > self.best[0]',
             'scores["accuracy"] >= self.best[0]'),),
           (f"{TRAIN_TESTS}::test_fine_tuning_ends_on_its_best_evaluation_and_reports_that_steps"
            "_figures",
            f"{TRAIN_TESTS}::test_finetuning_reports_test_metrics_beside_the_tfidf_baseline")),
    # --- the model and the masking ---------------------------------------------------------------
    Mutant("pre-ln-attention-sublayer", "the attention sublayer is pre-LN: x + Attn(LN(x))",
           ((MODEL, "context, probs = self.self(x, key_mask, head_mask, need_weights, x_q)",
             "context, probs = self.self(self.output.LayerNorm(x), key_mask, head_mask, "
             "need_weights, x_q)"),
            (MODEL, "return self.output(context, x if x_q is None else x_q), probs",
             "return (x if x_q is None else x_q) + self.output.dense(context), probs")),
           ("tests/test_model.py::test_gelu_is_exact_erf_and_layers_are_post_ln",)),
    Mutant("tanh-gelu", "GELU's tanh approximation instead of the exact erf",
           ((MODEL, "return F.gelu(self.dense(x))  # the exact",
             'return F.gelu(self.dense(x), approximate="tanh")  # the exact'),),
           ("tests/test_model.py::test_gelu_is_exact_erf_and_layers_are_post_ln",)),
    Mutant("special-positions-maskable", "<s>, </s> and other specials can be chosen for masking",
           ((MASKING, "allowed = ~torch.isin(input_ids, specials)",
             "allowed = torch.ones_like(input_ids, dtype=torch.bool)"),),
           ("tests/test_masking.py::test_invariants_hold_for_any_batch",
            "tests/test_masking.py::test_maskable_positions_agrees_with_the_position_by_position"
            "_rule")),
    # --- experiments -----------------------------------------------------------------------------
    Mutant("paired-run-drops-step-events",
           "an experiment's step events never reach the tab (both sides still train)",
           ((EXPERIMENTS, "            for event in runs[side]:\n"
                          "                yield PairedEvent(side, event)\n"
                          "                if event.finished:\n"
                          "                    break\n"
                          '                if event.kind == "step":\n'
                          "                    return\n",
             "            for event in runs[side]:\n"
             '                if event.kind == "step":\n'
             "                    return\n"
             "                yield PairedEvent(side, event)\n"
             "                if event.finished:\n"
             "                    break\n"),),
           ("tests/test_experiments.py::test_a_job_trains_both_and_counts_the_same_steps",)),
)


class StaleMutant(Exception):
    """A mutant's search text is not (exactly once) in its file any more."""


def copy_repository(destination: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=ignore)
        else:
            shutil.copy2(source, destination / name)
    return destination


def apply(mutant: Mutant, tree: Path) -> dict[Path, str]:
    """Apply the mutant's edits in `tree`; returns the original text of each file touched."""
    originals: dict[Path, str] = {}
    for relative, old, new in mutant.edits:
        path = tree / relative
        current = path.read_text()
        originals.setdefault(path, current)
        if current.count(old) != 1:
            restore(originals)
            raise StaleMutant(f"{relative}: the text to replace is found {current.count(old)} "
                              f"times, not once: {old.splitlines()[0].strip()!r}")
        path.write_text(current.replace(old, new))
    return originals


def restore(originals: dict[Path, str]) -> None:
    for path, text in originals.items():
        path.write_text(text)


def run_tests(tree: Path, tests: list[str]) -> dict[str, str]:
    """{test id: "passed" | "skipped" | "failed: <why>" | "error: <why>"} for `tests` run in
    `tree`, <why> the first line of pytest's message."""
    report = tree / "junit.xml"
    report.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ROBERTA_LAB_TEST_THREADS": "1",
           # No bytecode: a restored file with the size and mtime second of its mutant must
           # not be run from the mutant's cached .pyc.
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(tree)}
    command = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
               "-p", "no:randomly", f"--junitxml={report}", *tests]
    try:
        subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True,
                       timeout=RUN_LIMIT_S)
    except subprocess.TimeoutExpired:
        return {test: "error" for test in tests}
    if not report.exists():
        return {test: "error" for test in tests}
    outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        test_id = case.get("classname", "").replace(".", "/") + ".py::" + case.get("name", "")
        kinds = {child.tag: child.get("message", "") for child in case}
        outcome = ("failed" if "failure" in kinds else "error" if "error" in kinds
                   else "skipped" if "skipped" in kinds else "passed")
        # The first line of the failure's message: the mutant caught by the right check?
        why = (kinds.get("failure") or kinds.get("error") or "").strip().splitlines()
        outcomes[test_id] = outcome if not why or outcome == "skipped" else \
            f"{outcome}: {why[0][:160]}"
    return outcomes


def outcomes_of(test: str, outcomes: dict[str, str]) -> list[str]:
    """The outcomes of a test id, every parametrization of it included."""
    return [o for test_id, o in outcomes.items() if test_id == test or
            test_id.startswith(test + "[")]


def failed(outcome: str) -> bool:
    return outcome.startswith(("failed", "error"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutants")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    args = parser.parse_args(argv)
    mutants = [m for m in MUTANTS if not args.only or m.name in args.only]
    unknown = set(args.only or ()) - {m.name for m in MUTANTS}
    if unknown:
        parser.error(f"no mutant named {', '.join(sorted(unknown))}")
    if args.list:
        for mutant in mutants:
            print(f"{mutant.name}: {mutant.bug}")
            for test in mutant.tests:
                print(f"    {test}")
        return 0

    tree = copy_repository(Path(tempfile.mkdtemp(prefix="roberta-mutants-")))
    try:
        return run_table(mutants, tree)
    finally:
        if args.keep:
            print(f"the copy is in {tree}")
        else:
            shutil.rmtree(tree, ignore_errors=True)


def run_table(mutants: list[Mutant], tree: Path) -> int:
    every_test = sorted({test for mutant in mutants for test in mutant.tests})
    started = time.perf_counter()
    clean = run_tests(tree, every_test)
    broken = [t for t in every_test if not outcomes_of(t, clean) or
              any(o != "passed" for o in outcomes_of(t, clean))]
    print(f"unmutated: {len(every_test) - len(broken)} of {len(every_test)} tests pass "
          f"({time.perf_counter() - started:.0f} s)")
    for test in broken:
        print(f"    does not pass unmutated (its mutants cannot be judged): {test} "
              f"{outcomes_of(test, clean) or ['not collected']}")

    rows, failures = [], 0
    for mutant in mutants:
        started = time.perf_counter()
        usable = [t for t in mutant.tests if t not in broken]
        try:
            originals = apply(mutant, tree)
        except StaleMutant as err:
            rows.append((mutant, "STALE", str(err), 0.0))
            failures += 1
            continue
        try:
            outcomes = run_tests(tree, usable) if usable else {}
        finally:
            restore(originals)
        catching = [t for t in usable if any(failed(o) for o in outcomes_of(t, outcomes))]
        if not usable:
            verdict, detail = "UNJUDGED", "none of its tests passes unmutated"
        elif catching:
            verdict, detail = "caught", f"{len(catching)} of {len(mutant.tests)} tests fail"
        else:
            verdict, detail = "SURVIVED", f"all {len(usable)} tests pass"
        failures += verdict != "caught"
        rows.append((mutant, verdict, detail, time.perf_counter() - started))
        print(f"{mutant.name}: {verdict} ({detail})", flush=True)
        for test in catching:
            why = next(o for o in outcomes_of(test, outcomes) if failed(o))
            print(f"    {test.split('::')[-1]}: {why}", flush=True)

    print()
    print("| mutant | bug | result | detail | s |")
    print("|---|---|---|---|---|")
    for mutant, verdict, detail, seconds in rows:
        print(f"| {mutant.name} | {mutant.bug} | {verdict} | {detail} | {seconds:.0f} |")
    caught = sum(verdict == "caught" for _, verdict, _, _ in rows)
    print(f"\n{caught} of {len(rows)} mutants caught")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
