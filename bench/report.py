"""The markdown written to docs/benchmarks.md."""

from __future__ import annotations

from . import flops as flops_doc
from . import memory as memory_doc

TARGETS = {"train_fp32": 1.8, "train_best": 2.0, "latency": 0.7, "mfu_fp32": 0.70,
           "mfu_bf16": 0.50}


def _best(variants, side):
    mine = [v for v in variants if v.side == side]
    return min(mine, key=lambda v: v.seconds) if mine else None


def _eager_fp32(variants, side):
    return _best([v for v in variants if not v.compiled and v.precision == "fp32"], side)


def _mib(n):
    return "n/a" if n is None else f"{n / 2**20:,.0f}"


def _bf16_mfu(v, rate, peaks) -> str:
    return f"{rate / peaks['bf16']:.0%}" if v.precision == "bf16" else "-"


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def headline(training: dict, latency: dict, peaks: dict, tokens: int) -> list[str]:
    rows = ["| measure | preset | ours | transformers | ours / transformers | target | met |",
            "|---|---|---|---|---|---|---|"]
    for preset, variants in training.items():
        for label, pick, target in (("training, fp32 vs fp32 (eager)", _eager_fp32,
                                     TARGETS["train_fp32"]),
                                    ("training, best vs best", _best, TARGETS["train_best"])):
            a, b = pick(variants, "ours"), pick(variants, "transformers")
            ratio = b.seconds / a.seconds
            rows.append(f"| {label}: tokens/s | {preset} | {tokens / a.seconds:,.0f} "
                        f"({a.setting}, {a.precision}) | {tokens / b.seconds:,.0f} "
                        f"({b.setting}, {b.precision}) | {ratio:.2f}x | >= {target}x | "
                        f"{_met(ratio >= target)} |")
        a, b = _eager_fp32(variants, "ours"), _eager_fp32(variants, "transformers")
        rows.append(f"| training step peak memory above weights + optimizer, MiB (fp32 eager) "
                    f"| {preset} | {_mib(a.peak_bytes)} | {_mib(b.peak_bytes)} | "
                    f"{a.peak_bytes / max(b.peak_bytes, 1):.2f}x | (lower is better) | |")
        for precision in sorted({v.precision for v in variants}, reverse=True):
            same = [v for v in variants if v.precision == precision]
            a, b = _best(same, "ours"), _best(same, "transformers")
            mfu_a, mfu_b = (v.flops_per_step / v.seconds / peaks[precision] for v in (a, b))
            target = TARGETS[f"mfu_{precision}"]
            rows.append(f"| MFU over the {precision} matmul peak (fastest {precision} variant "
                        f"of each) | {preset} | {mfu_a:.0%} | {mfu_b:.0%} | | >= {target:.0%} "
                        f"| {_met(mfu_a >= target)} |")
    for preset, found in latency.items():
        a, b = _best(found, "ours"), _best(found, "transformers")
        ratio = a.seconds / b.seconds
        rows.append(f"| fill-mask latency, ms (batch 1, 32 tokens, median) | {preset} | "
                    f"{a.seconds * 1e3:.2f} | {b.seconds * 1e3:.2f} ({b.setting}) | "
                    f"{ratio:.2f}x | <= {TARGETS['latency']}x | "
                    f"{_met(ratio <= TARGETS['latency'])} |")
    return rows


def training_table(training: dict, peaks: dict, tokens: int) -> list[str]:
    rows = ["| preset | library | setting | precision | tokens/s | ms/step (median) | "
            "spread (min-max) | compile s | GFLOP/step | GFLOP/s | MFU fp32 | MFU bf16 | "
            "peak MiB above resting | resting MiB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for preset, variants in training.items():
        for v in variants:
            rate = v.flops_per_step / v.seconds
            compile_s = f"{v.compile_s:.1f}" if v.compile_s is not None else ""
            rows.append(
                f"| {preset} | {v.side} | {v.setting} | {v.precision} | "
                f"{tokens / v.seconds:,.0f} | {v.seconds * 1e3:,.0f} | "
                f"{min(v.samples) * 1e3:,.0f}-{max(v.samples) * 1e3:,.0f} | {compile_s} | "
                f"{v.flops_per_step / 1e9:.1f} | {rate / 1e9:.1f} | {rate / peaks['fp32']:.0%} | "
                f"{_bf16_mfu(v, rate, peaks)} | {_mib(v.peak_bytes)} | {_mib(v.resting_bytes)} |")
    return rows


def latency_table(latency: dict, peaks: dict) -> list[str]:
    rows = ["| preset | library | setting | precision | ms (median) | spread (min-max) | "
            "GFLOP/call | GFLOP/s | MFU fp32 |", "|---|---|---|---|---|---|---|---|---|"]
    for preset, found in latency.items():
        for v in found:
            rate = v.flops / v.seconds
            rows.append(f"| {preset} | {v.side} | {v.setting} | {v.precision} | "
                        f"{v.seconds * 1e3:.2f} | {min(v.samples) * 1e3:.2f}-"
                        f"{max(v.samples) * 1e3:.2f} | {v.flops / 1e9:.3f} | {rate / 1e9:.1f} | "
                        f"{rate / peaks['fp32']:.0%} |")
    return rows


def document(*, command: str, machine: dict, load: tuple[str, str], loads: list, peaks: dict,
             training: dict, latency: dict, settings: dict, notes: list[str],
             wall_s: float, device_type: str) -> str:
    tokens = settings["batch_size"] * settings["seq_len"]
    lines = ["# Benchmarks: ours against transformers.RobertaForMaskedLM", "",
             "Written by `python -m bench` (bench/); rerun it to refresh this page. "
             "Every figure comes from the one run described here.", "",
             "```", command, "```", "",
             "## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in machine.items()]
    lines += [f"| load average (1/5/15 min) at start | {load[0]} |",
              f"| load average at end | {load[1]} |",
              f"| whole run | {wall_s / 60:.1f} min |",
              f"| fp32 matmul peak ({peaks['fp32_size']}^3, best of the run: measured at "
              "the start, after each training preset and at the end) | "
              f"{peaks['fp32'] / 1e9:.1f} GFLOP/s |",
              f"| bf16 matmul peak ({peaks['bf16_size']}^3) | {peaks['bf16'] / 1e9:.2f} GFLOP/s |",
              "",
              "The machine is shared: other processes' load, above all on every core at once, "
              "stalls the threads of each parallel op (OpenMP), which slows small models most. "
              "The load average (runnable threads, 1/5/15 min; this run's own threads count) "
              "at the start and end of each part says how busy it was: a part whose 1-minute "
              "load is well above the thread count shared the cores and reads slower than the "
              "code is.", "",
              "| part | load at start | load at end |", "|---|---|---|",
              *[f"| {part} | {a} | {b} |" for part, a, b in loads],
              "", "## Summary", "",
              f"Training: batch {settings['batch_size']} x {settings['seq_len']} tokens, 15% of "
              f"positions labelled, {settings['rounds']} interleaved rounds, median step. "
              f"Fill-mask: {settings['latency_calls']} interleaved calls, median. "
              "A ratio above 1 means ours is faster for throughput; below 1 means ours is "
              "faster for latency and memory.", ""]
    lines += headline(training, latency, peaks, tokens)
    lines += ["", *[f"- {n}" for n in notes]]
    lines += ["", "## Training, every variant", ""]
    lines += training_table(training, peaks, tokens)
    lines += ["", "## Fill-mask latency, every variant", ""]
    lines += latency_table(latency, peaks)
    lines += ["", "## Method", "",
              "- One process, one run. Ours and transformers get the same config, the same "
              "weights (transformers' initialisation, copied with `load_state_dict`), the same "
              "batches and the same thread count. The variants run interleaved (one step each, "
              "round after round) so the drift of a shared machine's load falls on all of them; "
              "figures are medians, and the spread column shows how noisy the machine was.",
              "- The training step is forward, backward, `clip_grad_norm_(1.0)` and AdamW "
              "(fused, transformers' Trainer default; decay and no-decay groups as "
              "`roberta.training.engine.Trainer`). Sequences are full (packed), so neither "
              "library gets an attention mask, as in the trainer.",
              "- Compile: `torch.compile` of each encoder layer (regional compilation; one "
              "compile serves every layer; our last layer, whose row count changes with every "
              "batch, stays eager), an empty inductor cache. The compile time is the first "
              "step's time less the median compiled step's, after the compiler's one-time "
              "start-up in the process (timed apart on a trivial function), and is not in the "
              "throughput.",
              "- bf16 autocast is a variant only where the hardware does bf16 natively (CUDA, "
              "or a CPU with AVX512-BF16/AMX); elsewhere best-vs-best is fp32 against fp32 plus "
              "whatever else wins.",
              "- MFU = model FLOPs per second / the matmul peak of the same run, fp32 peak for "
              "fp32 rows and bf16 peak for bf16 rows; a weight matrix of P entries costs 2P "
              "FLOPs per token forward and 4P backward. " + flops_doc.FORMULA,
              "- Memory: " + " ".join(memory_doc.__doc__.split("\n\n")[1].split()) +
              " 'Resting' is the weights plus the AdamW state, held between steps.",
              ""]
    if device_type != "cuda":
        lines += ["## GPU", "",
                  "GPU figures have not been measured: this run had no CUDA device. On a GPU the "
                  "same command adds the base preset, bf16 rows and the GPU's name.", ""]
    return "\n".join(lines)
