"""Time and transient memory of one call, on CUDA (events, allocator peaks) or CPU (wall clock,
the profiler's allocation events). Used by `dilaserve bench-kernels`; imports no triton."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile


def median_ms(
    fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 2
) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
        else:
            started = time.perf_counter()
            fn()
            times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


def peak_transient_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes allocated during fn() beyond what was allocated before it (outputs included)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = fn()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - before
        del out
        return peak
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
    del out
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        if event.device_type() == DeviceType.CPU:
            live += event.nbytes()
            peak = max(peak, live)
    return peak


def per_token_slope(measure: Callable[[int], int], short: int, long: int) -> tuple[float, float]:
    """(bytes per token, fixed bytes) of a memory figure measured at two lengths."""
    low, high = measure(short), measure(long)
    slope = (high - low) / (long - short)
    return slope, low - slope * short
