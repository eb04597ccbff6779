"""Peak memory of one call, above what was allocated before it.

CUDA: torch.cuda.max_memory_allocated. CPU: tracemalloc cannot see torch's allocations and the
process RSS hides them behind the C allocator's caching, so the step runs under torch.profiler
with profile_memory=True, which records every tensor allocation and free with its size; the
running sum of those, in time order, peaks at the figure reported.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if torch.is_tensor(t))


def resting_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Weights (tied ones once) and optimizer state: what stays allocated between steps."""
    state = [v for s in optimizer.state.values() for v in s.values()]
    return tensor_bytes(model.parameters()) + tensor_bytes(state)


def peak_bytes(run: Callable[[], object], device: torch.device) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        run()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    return _cpu_peak_bytes(run)


def _cpu_peak_bytes(run: Callable[[], object]) -> int:
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    events = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation and node.extra_fields.device.type == "cpu":
            events.append((node.start_time_ns, node.extra_fields.alloc_size))
        stack.extend(node.children)
    live = peak = 0
    for _, size in sorted(events, key=lambda e: e[0]):
        live += size
        peak = max(peak, live)
    return peak
