"""`python -m roberta pretrain|finetune|fill-mask|classify|export|recipe`.

Every subcommand is a thin shell over the library: parse flags, call the public functions,
print events. `torchrun --nproc_per_node=N -m roberta pretrain ...` runs data-parallel.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import warnings
from pathlib import Path

import torch

from .config import PRESETS, RobertaConfig
from .defaults import RECIPE_STAGES
from .init import INIT_CHOICES
from .masking import MaskingConfig
from .progress import EventPrinter
from .resume import (
    FLAG_OF,
    path_flag,
    read_run_record,
    resumed_settings,
    text_fingerprint,
    trim_metrics_log,
    write_run_record,
)
from .settings import SettingError, add_flags, declared
from .training.config import FINETUNE_DROPOUT, HOLD_WHOLE_RUN, FinetuneConfig, PretrainConfig

# The engine's settings every training subcommand takes, in --help's order.
TRAINING_FLAGS = ("max_steps", "batch_size", "learning_rate", "warmup_steps", "min_lr_ratio",
                  "weight_decay", "grad_clip", "grad_accum_steps", "precision", "device", "seed",
                  "eval_every", "checkpoint_every", "seq_length")


def _add_training_flags(p: argparse.ArgumentParser, defaults) -> None:
    """The optimisation flags, each left None unless given: the config dataclass (`defaults`,
    a PretrainConfig or FinetuneConfig) declares every flag and default, and --help says it."""
    g = p.add_argument_group("optimisation")
    add_flags(g, defaults, TRAINING_FLAGS)
    g.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")


def _given(args, config_class) -> dict:
    """The flags given for `config_class`'s fields (the rest keep the dataclass defaults)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(config_class)
            if getattr(args, f.name, None) is not None}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m roberta", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pretrain", help="masked-LM pretraining")
    p.add_argument("--out", required=True, help="output directory (Hugging Face format)")
    # Flags with a default of None here take, on --resume, the value the run started with
    # (its run record), and a fresh run's default otherwise.
    p.add_argument("--preset", choices=list(PRESETS), help="default: tiny")
    p.add_argument("--layers", type=int, help="override the preset's num_hidden_layers")
    p.add_argument("--hidden", type=int, help="override hidden_size")
    p.add_argument("--heads", type=int, help="override num_attention_heads")
    p.add_argument("--ffn", type=int, help="override intermediate_size")
    p.add_argument("--corpus", help="'bundled' (the default), 'bundled+wikipedia', a .txt "
                                    "file or a folder of .txt files")
    p.add_argument("--tokenizer", help="tokenizer directory (default: train one on the corpus)")
    p.add_argument("--vocab-size", type=int, help="vocabulary of a newly trained tokenizer "
                                                  "(default: the preset's)")
    p.add_argument("--init", help="start from this masked-LM directory instead of scratch")
    p.add_argument("--start", choices=list(INIT_CHOICES),
                   help="from scratch: the structured start that gets past the masked-LM "
                        "plateau (the default), or RoBERTa's random init (see roberta/init.py)")
    hold = declared(PretrainConfig)["hold_positions_steps"]
    p.add_argument(hold.flag, dest="hold_positions_steps", type=int, default=HOLD_WHOLE_RUN,
                   help=hold.help)
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    add_flags(p, MaskingConfig, ("mlm_probability", "mask_fraction", "random_fraction"))
    p.add_argument("--whole-word", action="store_true", default=None)
    p.add_argument("--static-masking", action="store_true", default=None,
                   help="the paper's static baseline")
    add_flags(p, PretrainConfig, ("packing", "snapshots"))
    _add_training_flags(p, PretrainConfig)

    f = sub.add_parser("finetune", help="fine-tune a sequence classifier")
    f.add_argument("--init", help="masked-LM (or classifier) directory (not with --resume)")
    f.add_argument("--out", help="output directory (default: <init>-<task>)")
    f.add_argument("--resume", action="store_true",
                   help="continue the checkpoint in --out (its model, dropout and labels) on "
                        "the same data")
    f.add_argument("--task", help="'sentiment' (bundled; the default) or 'csv'")
    f.add_argument("--csv", help="CSV file with a text and a label column (--task csv)")
    f.add_argument("--text-column"), f.add_argument("--label-column")
    add_flags(f, FinetuneConfig, ("validation_fraction",))
    f.add_argument("--dropout", type=float,
                   help=f"the classifier's dropout (default: {FINETUNE_DROPOUT}, whatever the "
                        f"masked LM was pretrained with)")
    _add_training_flags(f, FinetuneConfig)

    m = sub.add_parser("fill-mask", help="top-k guesses for each <mask>")
    m.add_argument("text")
    m.add_argument("--model", help="masked-LM directory or hub id (default: the embedded one)")
    m.add_argument("--top-k", type=int, default=5)

    c = sub.add_parser("classify", help="class probabilities for a text")
    c.add_argument("text")
    c.add_argument("--model", help="classifier directory (default: the embedded one)")

    e = sub.add_parser("export", help="copy a model directory to a clean Hugging Face "
                                      "directory (no optimizer state), optionally fp16")
    e.add_argument("model"), e.add_argument("--fp16", action="store_true")
    e.add_argument("--out", required=True)

    r = sub.add_parser("recipe", help="reproducible recipes, e.g. the embedded default models")
    r.add_argument("name", choices=["bundled"])
    r.add_argument("--out", default=None, help="assets directory (default: the repo's assets/)")
    for stage in ("pretrain", "finetune"):
        r.add_argument(f"--{stage}-steps", type=int, help="override the recipe's step count")
    r.add_argument("--finetune-lr", type=float, help="override the recipe's peak learning rate")
    r.add_argument("--everyday-steps", type=int,
                   help="override phase 2's step count (everyday English; 0 skips phase 2)")
    r.add_argument("--stage", choices=list(RECIPE_STAGES), default="all",
                   help="everyday: only phase 2, from phase 1's masked LM already in --out; "
                        "finetune: only the classifier, from the masked LM already in --out; "
                        "mlm-card: measure that masked LM again and rewrite its card; "
                        "sentiment-card: the same for the classifier in --out")
    r.add_argument("--device", default="auto")
    r.add_argument("--resume", action="store_true",
                   help="continue a recipe that stopped (crash, kill, end of session) from its "
                        "checkpoints in --out/.recipe-checkpoints, with the same settings")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    return parser


# --- helpers ---------------------------------------------------------------------------------

def _init_distributed() -> tuple[int, int]:
    """Under torchrun: join the process group (nccl on GPU, gloo on CPU); (rank, world)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    return dist.get_rank(), world


def _read_corpus(spec: str) -> list[str]:
    from .data import bundled_pretraining_corpus
    from .uploads import read_text_file, read_text_folder
    if spec in ("bundled", "bundled+wikipedia"):
        return bundled_pretraining_corpus(include_wikipedia=spec.endswith("wikipedia"))
    path = Path(spec)
    if path.is_dir():
        return read_text_folder(path)
    if path.is_file():
        return read_text_file(path)
    raise ValueError(f"--corpus {spec!r} is neither 'bundled' nor an existing file or folder")


# --- subcommands -----------------------------------------------------------------------------

def _pretrain_run(args, out: Path) -> tuple[dict, dict, list[str]]:
    """What defines the run besides the engine's settings (corpus, tokenizer, shape, start):
    on --resume, a flag left out is the run record's (resume.py). (the run, the flags given
    with the corpus's fingerprint, the corpus's documents)."""
    given_run = dict(corpus=args.corpus, tokenizer=path_flag(args.tokenizer),
                     vocab_size=args.vocab_size, init=path_flag(args.init), start=args.start,
                     preset=args.preset, layers=args.layers, hidden=args.hidden,
                     heads=args.heads, ffn=args.ffn)
    record = read_run_record(out) if args.resume else {}
    run = {**dict(corpus="bundled", start="structured", preset="tiny"),
           **{k: v for k, v in record.items() if k in given_run},
           **{k: v for k, v in given_run.items() if v is not None}}
    texts = _read_corpus(run["corpus"])
    given_run["corpus"], given_run["corpus_text"] = run["corpus"], text_fingerprint(texts)
    return run, given_run, texts


def _pretrain_settings(args, out: Path, given_run: dict, structured: bool) -> PretrainConfig:
    """The engine's settings: the flags given over the library's defaults, or on --resume the
    checkpoint's own (a flag given that differs is refused); validated."""
    given = _given(args, PretrainConfig)  # the rest (learning rate, warmup...): the library's
    given["hold_positions_steps"] = PretrainConfig.hold_for(
        "structured" if structured else "roberta", args.hold_positions_steps)
    masking = _given(args, MaskingConfig)
    if args.resume:  # the checkpoint's settings; a flag given that differs is refused
        if args.hold_positions_steps == -1:  # the default: the checkpoint's start decides
            given.pop("hold_positions_steps")
        saved = resumed_settings(out, given, masking, given_run)
        masking = {**saved.pop("masking", {}), **masking}
        given = {k: tuple(v) if k == "probes" else v for k, v in saved.items()
                 if k in {f.name for f in dataclasses.fields(PretrainConfig)}
                 and k != "output_dir"}
    settings = PretrainConfig(**given, output_dir=str(out), masking=MaskingConfig(**masking))
    settings.validate()
    return settings


def cmd_pretrain(args) -> int:
    from .init import StructuredInit, initialise_
    from .model import RobertaForMaskedLM
    from .tokenizer import RobertaTokenizer
    from .training.engine import recover_checkpoint
    from .training.pretraining import Pretrainer, prepare_pretraining_data

    rank, world = _init_distributed()
    out = Path(args.out)
    if rank == 0:
        recover_checkpoint(out)  # a crash mid-save left the newest checkpoint beside `out`
    if world > 1:
        torch.distributed.barrier()
    if args.resume and not (out / "trainer_state.json").is_file():
        raise ValueError(f"--resume: no checkpoint in {out}")
    if not args.resume and (out / "model.safetensors").exists():
        raise ValueError(f"{out} already holds a model; pass --resume to continue it or choose "
                         f"another --out (nothing is overwritten)")
    run, given_run, texts = _pretrain_run(args, out)
    overrides = {k: v for k, v in dict(num_hidden_layers=run.get("layers"),
                                       hidden_size=run.get("hidden"),
                                       num_attention_heads=run.get("heads"),
                                       intermediate_size=run.get("ffn")).items()
                 if v is not None}
    config = RobertaConfig.preset(run["preset"], **overrides)  # validated before any work
    _check_fits_in_memory(config)
    structured = run["start"] == "structured" and not args.init  # a scratch model's start
    settings = _pretrain_settings(args, out, given_run, structured)  # before a tokenizer
    if structured and not args.resume:
        StructuredInit().validate(config.hidden_size, config.num_attention_heads,
                                  config.num_hidden_layers)
    if not args.resume and rank == 0:
        write_run_record(out, {**given_run, **{k: run[k] for k in ("start", "preset")}})

    if args.resume:
        tokenizer = RobertaTokenizer.from_pretrained(out)
    elif args.tokenizer or args.init:
        tokenizer = RobertaTokenizer.from_pretrained(args.tokenizer or args.init)
    else:  # rank 0 trains it; the others wait and load the very same files
        tok_dir = out / "tokenizer"
        if rank == 0:
            print(f"training a byte-level BPE tokenizer on {len(texts)} documents ...")
            RobertaTokenizer.train(texts, vocab_size=args.vocab_size or config.vocab_size,
                                   model_max_length=settings.seq_length).save_pretrained(tok_dir)
        if world > 1:
            torch.distributed.barrier()
        tokenizer = RobertaTokenizer.from_pretrained(tok_dir)

    data = prepare_pretraining_data(texts, tokenizer, settings.seq_length,
                                    settings.validation_fraction, settings.seed,
                                    settings.packing)
    # --seed fixes the new weights and then the dropout stream (masks and batch order have their
    # own generators), so two runs with the same flags give the same curve.
    torch.manual_seed(settings.seed)
    if args.resume:
        trainer = Pretrainer.resume(out, data, settings)
    else:
        if args.init:
            model = RobertaForMaskedLM.from_pretrained(args.init)
        else:
            model = RobertaForMaskedLM(RobertaConfig.preset(
                run["preset"], settings.seq_length, **overrides,
                vocab_size=tokenizer.vocab_size))
            initialise_(model, run["start"])
        trainer = Pretrainer(model, tokenizer, data, settings)
    if rank == 0:
        n_params = sum(p.numel() for p in trainer.model.parameters())
        print(f"{n_params / 1e6:.2f}M parameters, {len(data.train)} training sequences of "
              f"{settings.seq_length} tokens ({data.train.num_tokens / 1e6:.2f}M tokens), "
              f"{world} process(es)")
    log_path = out.parent / f"{out.name}.metrics.jsonl"
    if args.resume and rank == 0:
        trim_metrics_log(log_path, trainer.step)
    printer = EventPrinter(settings.max_steps, log_path, enabled=rank == 0)
    for last in trainer.run():
        printer(last)
    if rank == 0 and last.kind == "done":
        print(f"validation masked-token accuracy {printer.last_eval['val_accuracy']:.2%} vs "
              f"unigram-frequency baseline {last.metrics['unigram_accuracy']:.2%}; model saved "
              f"to {out}")
        if not args.tokenizer and not args.init and not args.resume:
            import shutil
            shutil.rmtree(out / "tokenizer", ignore_errors=True)  # the model dir holds it now
    return 0 if last.kind == "done" else 1


def _check_fits_in_memory(config: RobertaConfig) -> None:
    """Refuse, before a tokenizer is trained, a model whose weights, gradients and two Adam
    moments (16 bytes a parameter in fp32) would not fit in this machine's memory."""
    from .model import RobertaForMaskedLM

    needed = RobertaForMaskedLM.parameter_count(config) * 16
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: let torch decide
        return
    if needed > memory:
        raise ValueError(f"this model has {needed // 16:,} parameters: training it needs about "
                         f"{needed / 2**30:,.0f} GiB for weights, gradients and Adam's state, "
                         f"and this machine has {memory / 2**30:,.0f} GiB. Choose a smaller "
                         f"--hidden, --layers or --ffn.")


def cmd_finetune(args) -> int:
    from .data import sentiment_task
    from .model import RobertaForMaskedLM
    from .tokenizer import RobertaTokenizer
    from .training.engine import recover_checkpoint
    from .training.finetuning import Finetuner, classifier_from
    from .uploads import read_classification_csv

    if args.resume and args.init:
        raise ValueError("--init and --resume do not go together: a resumed run continues the "
                         "model in its checkpoint")
    if not args.resume and not args.init:
        raise ValueError("finetune needs --init (the masked LM to start from), or --resume "
                         "with the --out of a run that wrote checkpoints")
    if args.resume and not args.out:
        raise ValueError("--resume needs --out: the directory of the checkpoint to continue")
    out = Path(args.out or f"{args.init.rstrip('/')}-{args.task or 'sentiment'}")
    recover_checkpoint(out)  # a crash mid-save left the newest checkpoint beside `out`
    if args.resume and not (out / "trainer_state.json").is_file():
        raise ValueError(f"--resume: no checkpoint in {out}")
    if not args.resume and (out / "model.safetensors").exists():
        raise ValueError(f"{out} already holds a model; pass --resume to continue it or choose "
                         f"another --out (nothing is overwritten)")
    # The run's own flags: on --resume, one left out is the run record's, one given must match.
    given_run = dict(task=args.task, csv=path_flag(args.csv), text_column=args.text_column,
                     label_column=args.label_column, dropout=args.dropout)
    record = read_run_record(out) if args.resume else {}
    run = {**dict(task="sentiment", dropout=FINETUNE_DROPOUT),
           **{k: v for k, v in record.items() if k in given_run and v is not None},
           **{k: v for k, v in given_run.items() if v is not None}}
    if run["task"] == "sentiment":
        data = sentiment_task()
    elif run["task"] == "csv":
        if not run.get("csv"):
            raise ValueError("--task csv needs --csv PATH")
        data = read_classification_csv(run["csv"], run.get("text_column"),
                                       run.get("label_column"))
        given_run["csv"], given_run["csv_text"] = run["csv"], text_fingerprint(
            Path(run["csv"]).read_bytes())
    else:
        raise ValueError(f"--task must be 'sentiment' or 'csv', got {run['task']!r}")
    given = _given(args, FinetuneConfig)
    if args.resume:  # the checkpoint's settings; a flag given that differs is refused
        fields = {f.name for f in dataclasses.fields(FinetuneConfig)} - {"output_dir"}
        given = {k: v for k, v in resumed_settings(out, given, None, given_run).items()
                 if k in fields}
    else:
        write_run_record(out, {**given_run, **{k: run[k] for k in ("task", "dropout")}})
    settings = FinetuneConfig(**given, output_dir=str(out))
    if args.resume:  # weights, optimizer, schedule, RNG, step and best step so far
        trainer = Finetuner.resume(out, data, settings)
    else:
        tokenizer = RobertaTokenizer.from_pretrained(args.init)
        with warnings.catch_warnings():  # its LM head may be new: only the encoder is used
            warnings.simplefilter("ignore")
            encoder = RobertaForMaskedLM.from_pretrained(args.init)
        torch.manual_seed(settings.seed)  # the new head's weights, then dropout: --seed
        classifier = classifier_from(encoder, data.label_names, run["dropout"])  # reproduces
        trainer = Finetuner(classifier, tokenizer, data, settings)
    log_path = out.parent / f"{out.name}.metrics.jsonl"
    if args.resume:
        trim_metrics_log(log_path, trainer.step)
    printer = EventPrinter(settings.max_steps, log_path)
    for last in trainer.run():
        printer(last)
    if last.kind == "done":
        m = last.metrics
        if "test_accuracy" in m:
            print(f"test accuracy {m['test_accuracy']:.2%} (macro-F1 {m['test_macro_f1']:.3f}) "
                  f"vs TF-IDF + logistic regression {m['baseline_accuracy']:.2%} "
                  f"(macro-F1 {m['baseline_macro_f1']:.3f}); model saved to {out}")
    return 0 if last.kind == "done" else 1


def _load(kind: str, name: str | None):
    from .defaults import load_default
    from .model import RobertaForMaskedLM, RobertaForSequenceClassification
    from .tokenizer import RobertaTokenizer
    if name is None:
        return load_default(kind)
    cls = RobertaForMaskedLM if kind == "mlm" else RobertaForSequenceClassification
    with warnings.catch_warnings():  # a new head is refused below, or is the masked LM's own
        warnings.simplefilter("ignore")
        model = cls.from_pretrained(name)
    if kind == "classifier" and model.newly_initialized_keys:
        # A freshly initialised head would give random answers, said confidently.
        raise ValueError(f"{name} holds no trained classification head; fine-tune it first "
                         f"(python -m roberta finetune --init {name})")
    return model, RobertaTokenizer.from_pretrained(name)


def cmd_fill_mask(args) -> int:
    from .inference import fill_mask
    model, tokenizer = _load("mlm", args.model)
    result = fill_mask(model, tokenizer, args.text, top_k=args.top_k)
    if result.truncated:
        print(f"note: {result.window.notice()}")
    for n, prediction in enumerate(result.predictions, 1):
        print(f"<mask> #{n}:")
        for c in prediction.candidates:
            print(f"  {c.probability:7.2%}  {c.token!r}")
    return 0


def cmd_classify(args) -> int:
    from .inference import classify
    model, tokenizer = _load("classifier", args.model)
    for label, p in sorted(classify(model, tokenizer, [args.text])[0].items(),
                           key=lambda kv: -kv[1]):
        print(f"{p:7.2%}  {label}")
    return 0


def cmd_export(args) -> int:
    from .model import RobertaForMaskedLM, RobertaForSequenceClassification
    from .tokenizer import RobertaTokenizer
    source = Path(args.model)
    config = RobertaConfig.load(source / "config.json")
    archs = config.extra.get("architectures") or ["RobertaForMaskedLM"]
    cls = RobertaForSequenceClassification if "RobertaForSequenceClassification" in archs \
        else RobertaForMaskedLM
    model = cls.from_pretrained(source)
    out = Path(args.out)
    if (out / "model.safetensors").exists():
        raise ValueError(f"{out} already holds a model; choose another --out")
    model.save_pretrained(out, dtype=torch.float16 if args.fp16 else None)
    RobertaTokenizer.from_pretrained(source).save_pretrained(out)
    print(f"exported {cls.__name__} to {out}")
    return 0


def cmd_recipe(args) -> int:
    from .recipe import run_bundled_recipe
    from .recipe_settings import BundledRecipe
    recipe = BundledRecipe(seed=args.seed)
    for name in ("pretrain_steps", "finetune_steps", "finetune_lr", "everyday_steps"):
        if getattr(args, name) is not None:
            setattr(recipe, name, getattr(args, name))
    run_bundled_recipe(out=args.out, device=args.device, recipe=recipe, stage=args.stage,
                       resume=args.resume)
    return 0


COMMANDS = {"pretrain": cmd_pretrain, "finetune": cmd_finetune, "fill-mask": cmd_fill_mask,
            "classify": cmd_classify, "export": cmd_export, "recipe": cmd_recipe}


# A setting as the command line words it: by the flag its declaration names.


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    try:
        return COMMANDS[args.command](args)
    except (ValueError, FileNotFoundError, OSError) as err:
        message = err.worded(FLAG_OF) if isinstance(err, SettingError) and \
            args.command != "recipe" else str(err)  # the recipe names its own flags
        print(f"error: {message}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as err:  # e.g. a model too big to allocate
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"error: {first_line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
