"""python -m bench [--quick] [--presets tiny small] [--no-compile] [--out docs/benchmarks.md]"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time


def parse(argv):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true",
                   help="tiny preset only, 3 rounds, 20 fill-mask calls, no compile (~30 s)")
    p.add_argument("--presets", nargs="+", help="default: tiny small (and base on a GPU)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--rounds", type=int, help="interleaved training rounds (default 5)")
    p.add_argument("--latency-calls", type=int, help="fill-mask calls per variant (default 50)")
    p.add_argument("--latency-len", type=int, default=32)
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    p.add_argument("--compile-presets", nargs="+",
                   help="presets that get torch.compile variants (default: tiny on a CPU, where "
                        "a cold compile costs about a minute a variant; every preset on a GPU)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's default)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--out", default="docs/benchmarks.md", help="markdown to write ('-': none)")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(sys.argv[1:] if argv is None else argv)
    # Compile times are reported cold: a private, empty inductor cache unless one is given.
    cache = None
    if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        cache = tempfile.mkdtemp(prefix="bench-inductor-")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
    try:
        return _run(args, argv)
    finally:
        if cache:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
            shutil.rmtree(cache, ignore_errors=True)


def _run(args, argv) -> dict:
    import torch

    from roberta.training.devices import cpu_supports_bf16, pick_device

    from . import latency, machine, peaks, report, training

    started = time.perf_counter()
    load_start = machine.load_average()
    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    on_gpu = device.type == "cuda"
    presets = args.presets or (["tiny"] if args.quick else
                               ["tiny", "small", "base"] if on_gpu else ["tiny", "small"])
    rounds = args.rounds or (3 if args.quick else 5)
    calls = args.latency_calls or (20 if args.quick else 50)
    compile_too = not (args.no_compile or args.quick)
    compile_presets = args.compile_presets or (presets if on_gpu else presets[:1])
    bf16 = torch.cuda.is_bf16_supported() if on_gpu else cpu_supports_bf16()
    precisions = ["fp32", "bf16"] if bf16 else ["fp32"]

    def log(message):
        print(f"[{time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    log(f"device {device}, {torch.get_num_threads()} threads, presets {presets}, "
        f"precisions {precisions}, compile {compile_too}")
    peak = peaks.measure(device, args.quick)
    log(f"matmul peaks: fp32 {peak['fp32'] / 1e9:.1f}, bf16 {peak['bf16'] / 1e9:.2f} GFLOP/s")
    results_training, results_latency = {}, {}
    start_up = training.compiler_start_up_s(device) if compile_too else None
    if start_up is not None:
        log(f"torch.compile start-up (first compile in the process): {start_up:.1f} s")
    loads = []  # (part, load average at its start, at its end): a busy part reads slow
    for preset in presets:
        log(f"training, {preset}")
        before = machine.load_average()
        results_training[preset] = training.run(preset, device, args.batch_size, args.seq_len,
                                                rounds, precisions,
                                                compile_too and preset in compile_presets, log)
        loads.append((f"training, {preset}", before, machine.load_average()))
        torch._dynamo.reset()
        peak = peaks.best(peak, peaks.measure(device, args.quick, bf16_too=False))
    for preset in presets:
        log(f"fill-mask latency, {preset}")
        before = machine.load_average()
        results_latency[preset] = latency.run(preset, device, args.latency_len, calls,
                                              precisions, log)
        loads.append((f"fill-mask, {preset}", before, machine.load_average()))
    peak = peaks.best(peak, peaks.measure(device, args.quick))

    notes = []
    if not bf16:
        notes.append("This CPU has no native bf16 (no AVX512-BF16 or AMX): bf16 matmuls are "
                     f"emulated ({peak['bf16'] / 1e9:.2f} GFLOP/s against "
                     f"{peak['fp32'] / 1e9:.1f} in fp32), so neither library trains in bf16 "
                     "here and best-vs-best is fp32 against fp32 plus whatever else wins "
                     "(torch.compile, attention implementation).")
    if not compile_too:
        notes.append("torch.compile variants were not run (--quick or --no-compile).")
    else:
        compiled = [v.compile_s for found in results_training.values() for v in found
                    if v.compile_s is not None]
        notes.append(f"torch.compile: a cold compile took {min(compiled):.0f}-"
                     f"{max(compiled):.0f} s a variant here, after a one-time "
                     f"{start_up:.0f} s start-up of the compiler in the process; not counted "
                     "in the throughput.")
        if set(presets) - set(compile_presets):
            notes.append(f"torch.compile variants ran for {', '.join(compile_presets)} only, to "
                         "keep the run short; best-vs-best for the other presets is among "
                         "eager variants.")
    command = "python -m bench" + ("" if not (argv if argv is not None else sys.argv[1:])
                                   else " " + shlex.join(argv if argv is not None
                                                         else sys.argv[1:]))
    text = report.document(
        command=command, machine=machine.describe(device),
        load=(load_start, machine.load_average()), loads=loads, peaks=peak,
        training=results_training, latency=results_latency,
        settings=dict(batch_size=args.batch_size, seq_len=args.seq_len, rounds=rounds,
                      latency_calls=calls),
        notes=notes, wall_s=time.perf_counter() - started, device_type=device.type)
    if args.out != "-":
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text)
        log(f"wrote {args.out}")
    print(text)
    return {"training": results_training, "latency": results_latency, "peaks": peak,
            "markdown": text}


if __name__ == "__main__":
    main()
