"""Peak memory of the heaviest single requests at the default caps, each in a fresh process.

    python -m bench.request_memory

For each request: the process sets the scene (builds the upload or imports the model: that
memory is the baseline), resets the kernel's peak-RSS mark (/proc/self/clear_refs), makes the
one request as the tab's function, and reports the peak RSS above the baseline. The target in
the README's settings table: at most 1 GB per request (the caps are what bound it).

- import at the caps: the largest real checkpoint an upload can hold (fp16 weights filling the
  upload cap), and a config at the parameter cap whose weights file holds only the embeddings
  (the model is described at the cap; the weights cannot fill it).
- attention at the cap: models shaped for the most attention work the cap allows (many layers
  and heads, 514 positions) on a long text.
- training steps (train-*): the model is built inside the request, as the Train tab does, then
  two optimizer steps of masked-LM pretraining (AdamW's moments exist from the first); the peak
  is compared with `roberta.training.memory.training_memory_bytes`, the estimate the app
  refuses runs by.
  finetune-*: the same for a classifier copied from a masked LM the session already holds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LONG_TEXT = " ".join(["The cat sat on the mat and the dog was quick."] * 60) + " A <mask> day."
SCENARIOS = {
    # name: (what, config overrides)
    "import-full-upload": ("import: fp16 weights near the 20 MB upload cap (8.8M parameters)",
                           dict(hidden_size=384, num_hidden_layers=3, num_attention_heads=6,
                                intermediate_size=1536, max_position_embeddings=514)),
    "import-config-at-cap": ("import: a config at the 40M parameter cap, embeddings-only weights",
                             dict(hidden_size=768, num_hidden_layers=4, num_attention_heads=12,
                                  intermediate_size=3584, max_position_embeddings=514)),
    "attention-12x12": ("attention: 12 layers × 12 heads, 384 wide, 514 positions, long text",
                        dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=12,
                             intermediate_size=1536, max_position_embeddings=514)),
    "attention-48x32": ("attention: 48 layers × 32 heads, 64 wide, 514 positions, long text",
                        dict(hidden_size=64, num_hidden_layers=48, num_attention_heads=32,
                             intermediate_size=128, max_position_embeddings=514)),
}
# name: (what, config, batch size, sequence length); the vocabulary is the config's.
TRAINING = {
    "train-micro-default": ("train: micro (Train tab default), 8 × 128, vocab 8,192",
                            dict(preset="micro", vocab_size=8192), 8, 128),
    "train-tiny-16x256": ("train: tiny, 16 × 256, vocab 8,192",
                          dict(preset="tiny", vocab_size=8192), 16, 256),
    "train-tiny-16x256-fp32": ("train: tiny, 16 × 256, vocab 8,192, fp32 (every activation "
                               "4 bytes)", dict(preset="tiny", vocab_size=8192, precision="fp32"),
                               16, 256),
    "train-micro-token-cap": ("train: micro at the batch-token cap, 128 × 128, vocab 8,192",
                              dict(preset="micro", vocab_size=8192), 128, 128),
    "train-small-param-cap": ("train: small, vocab 16,384 (34M parameters), 4 × 128",
                              dict(preset="small", vocab_size=16384), 4, 128),
    "train-both-caps": ("train: 38M parameters (2 layers × 768, vocab 30,000) at the batch-token "
                        "cap, 64 × 256",
                        dict(preset="custom", vocab_size=30000, hidden_size=768,
                             num_hidden_layers=2, num_attention_heads=12,
                             intermediate_size=3072), 64, 256),
}

# Fine-tuning: a classifier copied from a masked LM the session holds (its memory is baseline).
FINETUNING = {
    "finetune-tiny-32x256": ("fine-tune: tiny, 32 × 256 (texts longer than 256 tokens)",
                             dict(preset="tiny", vocab_size=8192), 32, 256),
}


def finetuning_steps(name: str) -> dict:
    """Copy the classifier from a built masked LM and take two fine-tuning steps."""
    import gc

    import torch

    torch.set_num_threads(1)
    from roberta.config import RobertaConfig
    from roberta.data import ClassificationData
    from roberta.defaults import default_model_dir
    from roberta.model import RobertaForMaskedLM, RobertaForSequenceClassification
    from roberta.tokenizer import RobertaTokenizer
    from roberta.training.config import FinetuneConfig
    from roberta.training.finetuning import Finetuner, classifier_from
    from roberta.training.memory import training_memory_bytes

    what, shape, batch, length = FINETUNING[name]
    shape = dict(shape)
    config = RobertaConfig.preset(shape.pop("preset"), seq_length=length, **shape)
    tokenizer = RobertaTokenizer.from_pretrained(default_model_dir("mlm"))
    base = RobertaForMaskedLM(config)
    texts = [f"Review {i}: " + LONG_TEXT for i in range(4 * batch)]
    data = ClassificationData(texts, [i % 2 for i in range(len(texts))],
                              label_names=("negative", "positive"))
    settings = FinetuneConfig(max_steps=2, batch_size=batch, seq_length=length,
                              eval_every=100, device="cpu", validation_fraction=0.2)
    import torch._dynamo  # noqa: F401  (AdamW imports it on first use: not the request's cost)
    gc.collect()
    baseline = rss_kb("VmRSS")
    reset_peak()
    model = classifier_from(base, data.label_names)
    trainer = Finetuner(model, tokenizer, data, settings)
    for _ in range(2):
        trainer.before_step()
        trainer._optimizer_step()
        trainer.step += 1
    peak = rss_kb("VmHWM")
    estimate = training_memory_bytes(config, batch, length, task="classify")
    return {"name": name, "what": what, "baseline_mb": baseline / 1024,
            "peak_above_baseline_mb": (peak - baseline) / 1024,
            "estimate_mb": estimate / 2**20, "precision": trainer.precision,
            "parameters_m": RobertaForSequenceClassification.parameter_count(config) / 1e6,
            "outcome": "ok", "upload_mb": 0.0}


def training_steps(name: str) -> dict:
    """Build the model and take two pretraining steps inside the measured window."""
    import gc

    import torch

    torch.set_num_threads(1)
    from roberta.config import RobertaConfig
    from roberta.defaults import default_model_dir
    from roberta.model import RobertaForMaskedLM
    from roberta.packing import PackedSequences
    from roberta.tokenizer import RobertaTokenizer
    from roberta.training.config import PretrainConfig
    from roberta.training.memory import training_memory_bytes
    from roberta.training.pretraining import Pretrainer, PretrainingData

    what, shape, batch, length = TRAINING[name]
    shape = dict(shape)
    precision = shape.pop("precision", "auto")  # auto: bf16 where the CPU has it, as the app
    config = RobertaConfig.preset(shape.pop("preset"), seq_length=length, **shape)
    tokenizer = RobertaTokenizer.from_pretrained(default_model_dir("mlm"))
    generator = torch.Generator().manual_seed(0)

    def packed(rows: int) -> PackedSequences:
        ids = torch.randint(5, tokenizer.vocab_size, (rows, length), generator=generator)
        ids[:, 0], ids[:, -1] = tokenizer.bos_token_id, tokenizer.eos_token_id
        return PackedSequences(ids, torch.ones_like(ids))

    data = PretrainingData(packed(4 * batch), packed(8))
    settings = PretrainConfig(max_steps=2, batch_size=batch, seq_length=length, eval_every=100,
                              eval_sequences=8, device="cpu", precision=precision)
    import torch._dynamo  # noqa: F401  (AdamW imports it on first use: not the request's cost)
    gc.collect()
    baseline = rss_kb("VmRSS")
    reset_peak()
    model = RobertaForMaskedLM(config)
    trainer = Pretrainer(model, tokenizer, data, settings)
    for _ in range(2):
        trainer.before_step()
        trainer._optimizer_step()
        trainer.step += 1
    peak = rss_kb("VmHWM")
    estimate = training_memory_bytes(config, batch, length)
    return {"name": name, "what": what, "baseline_mb": baseline / 1024,
            "peak_above_baseline_mb": (peak - baseline) / 1024,
            "estimate_mb": estimate / 2**20, "precision": trainer.precision,
            "parameters_m": RobertaForMaskedLM.parameter_count(config) / 1e6,
            "outcome": "ok", "upload_mb": 0.0}


def rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS


def checkpoint_zip(folder: Path, overrides: dict, embeddings_only: bool) -> Path:
    import torch
    from safetensors.torch import save_file

    from roberta.config import RobertaConfig
    from roberta.defaults import default_model_dir
    from roberta.model import RobertaForMaskedLM
    from roberta.tokenizer import RobertaTokenizer

    tokenizer = RobertaTokenizer.from_pretrained(default_model_dir("mlm"))
    config = RobertaConfig(vocab_size=tokenizer.vocab_size, **overrides)
    model = RobertaForMaskedLM(config)
    target = folder / "checkpoint"
    model.save_pretrained(target, dtype=torch.float16)
    tokenizer.save_pretrained(target)
    if embeddings_only:
        state = {k: v.half().contiguous() for k, v in model.state_dict().items()
                 if "embeddings" in k}
        save_file(state, target / "model.safetensors")
    del model
    upload = folder / "upload.zip"
    with zipfile.ZipFile(upload, "w") as archive:
        for file in target.iterdir():
            archive.write(file, file.name)
    return upload


def one(name: str) -> dict:
    import gc

    import torch

    torch.set_num_threads(1)
    from roberta.ui import attention_tab, registry
    from roberta.ui.model_import import import_checkpoint

    if name in TRAINING:
        return training_steps(name)
    if name in FINETUNING:
        return finetuning_steps(name)
    what, overrides = SCENARIOS[name]
    session: dict = {}
    outcome, upload_mb = "ok", 0.0
    if name.startswith("import"):
        folder = Path(tempfile.mkdtemp(prefix="roberta-memory-"))
        upload = checkpoint_zip(folder, overrides, embeddings_only=name == "import-config-at-cap")
        upload_mb = upload.stat().st_size / 1e6
    else:  # a model trained here (up to the parameter cap), not an upload (20 MB at most)
        from roberta.config import RobertaConfig
        from roberta.defaults import default_model_dir
        from roberta.model import RobertaForMaskedLM
        from roberta.tokenizer import RobertaTokenizer

        tokenizer = RobertaTokenizer.from_pretrained(default_model_dir("mlm"))
        model = RobertaForMaskedLM(RobertaConfig(vocab_size=tokenizer.vocab_size, **overrides))
        registry.add(session, registry.LoadedModel("Imported: upload", "mlm", model.eval(),
                                                   tokenizer, "a model at the caps"))
        attention_tab.show_attention("warm up <mask>.", "Imported: upload", 1, 1, [], session)
    gc.collect()
    baseline = rss_kb("VmRSS")
    reset_peak()
    try:
        if name.startswith("import"):
            import_checkpoint({}, str(upload), None)
        else:
            attention_tab.show_attention(LONG_TEXT, "Imported: upload", 1, 1, [], session)
    except Exception as err:  # a refusal is a result too: its peak still counts
        outcome = f"refused: {str(err)[:160]}"
    peak = rss_kb("VmHWM")
    registry.release(session)
    return {"name": name, "what": what, "baseline_mb": baseline / 1024,
            "peak_above_baseline_mb": (peak - baseline) / 1024, "outcome": outcome,
            "upload_mb": upload_mb}


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(prog="python -m bench.request_memory", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    names = sorted({**SCENARIOS, **TRAINING, **FINETUNING})
    p.add_argument("--one", choices=names, help=argparse.SUPPRESS)
    p.add_argument("--only", nargs="+", choices=names)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one)))
        return []
    results = []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for name in args.only or [*SCENARIOS, *TRAINING, *FINETUNING]:
        done = subprocess.run([sys.executable, "-m", "bench.request_memory", "--one", name],
                              cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        results.append(result)
        if "estimate_mb" in result:
            print(f"{result['what']} ({result['parameters_m']:.1f}M parameters, "
                  f"{result['precision']}): peak {result['peak_above_baseline_mb']:.0f} MB above "
                  f"a {result['baseline_mb']:.0f} MB baseline; estimate "
                  f"{result['estimate_mb']:.0f} MB", flush=True)
            continue
        print(f"{result['what']}: peak {result['peak_above_baseline_mb']:.0f} MB above a "
              f"{result['baseline_mb']:.0f} MB baseline (upload {result['upload_mb']:.1f} MB; "
              f"{result['outcome']})", flush=True)
    return results


if __name__ == "__main__":
    main()
