"""Ours against transformers.RobertaForMaskedLM, in one process: `python -m bench`.

Same config, same weights (copied with load_state_dict), same batches, same thread count; the
variants run interleaved, round after round, so drift in a shared machine's load falls on all of
them alike, and each figure is a median. See docs/benchmarks.md for the last run.

Modules: machine (what it ran on), pair (the two models and the batches), flops (what a step
costs), timing (interleaved medians), peaks (matmul peaks), training (throughput, compile,
memory), latency (fill-mask), report (the markdown), __main__ (the command line).
"""
