"""Trace transformations: rate scaling, time windows, length clipping, SLO class assignment.

Every function returns a new Trace with a note saying what it did, and is deterministic under its
seed. Rate scaling has two modes:
- "count" (default): keeps the trace's span and the shape of its rate over time. Each request is
  kept floor(x) times plus once more with probability frac(x); each extra copy arrives at a
  uniformly random point between its original and the next arrival, so copies do not pile up at
  one instant (x < 1 thins the trace).
- "time": compresses time (arrival / x): the exact sequence, x times faster, over a span x times
  shorter.
"""

from __future__ import annotations

import math

import numpy as np

from traces.records import Trace, TraceRequest

SCALE_MODES = ("count", "time")


def scale_rate(trace: Trace, factor: float, *, mode: str = "count", seed: int = 0) -> Trace:
    if not (factor > 0 and math.isfinite(factor)):
        raise ValueError(f"rate scale must be > 0, got {factor}")
    if mode not in SCALE_MODES:
        raise ValueError(f"rate scale mode must be one of {SCALE_MODES}, got {mode!r}")
    if factor == 1.0:
        return trace
    reqs = trace.requests
    if mode == "time":
        scaled = [TraceRequest(r.arrival_s / factor, r.prompt_len, r.output_len, r.slo_class)
                  for r in reqs]
        return trace.with_requests(scaled, f"rate x{factor:g} (time compressed)",
                                   trace.duration_s / factor)
    rng = np.random.default_rng(seed)
    whole = int(factor)
    frac = factor - whole
    extra = rng.random(len(reqs)) < frac
    offsets = rng.random((len(reqs), whole + 1))
    out: list[TraceRequest] = []
    for i, r in enumerate(reqs):
        nxt = reqs[i + 1].arrival_s if i + 1 < len(reqs) else trace.duration_s
        gap = max(0.0, nxt - r.arrival_s)
        copies = whole + int(extra[i])
        for k in range(copies):
            t = r.arrival_s if k == 0 else r.arrival_s + offsets[i, k] * gap
            out.append(TraceRequest(t, r.prompt_len, r.output_len, r.slo_class))
    out.sort(key=lambda r: r.arrival_s)
    return trace.with_requests(out, f"rate x{factor:g} (request count, span kept, seed {seed})")


def window(trace: Trace, start_s: float, end_s: float | None = None) -> Trace:
    """Requests arriving in [start_s, end_s), shifted to start at 0."""
    end = trace.duration_s if end_s is None else end_s
    if start_s < 0 or end <= start_s:
        raise ValueError(f"time window [{start_s}, {end}) is empty or negative")
    kept = [TraceRequest(r.arrival_s - start_s, r.prompt_len, r.output_len, r.slo_class)
            for r in trace.requests if start_s <= r.arrival_s < end]
    span = min(end, max(trace.duration_s, start_s)) - start_s
    return trace.with_requests(kept, f"window [{start_s:g}, {end:g}) s", span)


def clip_lengths(trace: Trace, *, max_prompt: int, max_output: int, max_seq_len: int,
                 block_size: int = 1) -> Trace:
    """Fit every request to a model: output in [1, max_output], prompt in [1, max_prompt], and
    prompt + output (rounded up to whole blocks) <= max_seq_len, by cutting the prompt's front
    (the way a server truncates an over-long context)."""
    if min(max_prompt, max_output, max_seq_len, block_size) < 1:
        raise ValueError("clip limits must be >= 1")
    if max_output > max_seq_len - 1:
        raise ValueError(f"max_output {max_output} leaves no room for a prompt in "
                         f"max_seq_len {max_seq_len}")
    out, prompts_cut, outputs_cut = [], 0, 0
    for r in trace.requests:
        output = min(max(1, r.output_len), max_output)
        canvas = math.ceil(output / block_size) * block_size
        if canvas > max_seq_len - 1:
            canvas = (max_seq_len - 1) // block_size * block_size
            output = min(output, canvas)
        prompt = min(max(1, r.prompt_len), max_prompt, max_seq_len - canvas)
        prompts_cut += prompt < r.prompt_len
        outputs_cut += output < r.output_len
        out.append(TraceRequest(r.arrival_s, prompt, output, r.slo_class))
    note = (f"clipped to prompt <= {max_prompt}, output <= {max_output}, prompt + canvas <= "
            f"{max_seq_len}: {prompts_cut} prompts and {outputs_cut} outputs cut")
    return trace.with_requests(out, note)


def assign_classes(trace: Trace, shares: dict[str, float], *, seed: int = 0) -> Trace:
    """Give each request an SLO class drawn with these shares (normalised)."""
    if not shares or any(not (s >= 0 and math.isfinite(s)) for s in shares.values()):
        raise ValueError(f"class shares must be finite and >= 0, got {shares}")
    total = sum(shares.values())
    if total <= 0:
        raise ValueError("class shares sum to 0")
    names = sorted(shares)
    probs = np.array([shares[n] / total for n in names])
    picks = np.random.default_rng(seed).choice(len(names), size=len(trace.requests), p=probs)
    out = [TraceRequest(r.arrival_s, r.prompt_len, r.output_len, names[k])
           for r, k in zip(trace.requests, picks)]
    desc = ", ".join(f"{n} {shares[n] / total:.0%}" for n in names)
    return trace.with_requests(out, f"classes assigned at random ({desc}, seed {seed})")
