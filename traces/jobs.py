"""From trace requests to jobs a dLLM server can run: a canvas length and a deadline for each.

Canvas. A dLLM decodes a canvas of fixed length, so it needs the length up front:
- known length (default): the canvas is the trace's output length rounded up to the block size.
  This assumes the server knows each request's output length in advance (an oracle);
- fixed canvas: every request of a class gets the class's maximum canvas and stops early when the
  block holding its end-of-sequence completes (the output length is where the EOS lands).

Deadline (as the serving papers do): arrival + SLO scale x the request's unloaded latency, the time
it takes alone on the reference configuration (supplied by the caller: it depends on the profiles).
The scale is per class; a class missing from the mapping is an error, not a silent default.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from traces.records import Trace, TraceRequest

# (prompt_len, canvas_len, decoded_len) -> seconds alone on the reference configuration
UnloadedLatency = Callable[[int, int, int], float]


@dataclass(frozen=True)
class CanvasPolicy:
    block_size: int = 32
    fixed: tuple[tuple[str, int], ...] = ()  # (class, max canvas); empty: known lengths
    fixed_default: int | None = None  # max canvas for classes not listed (fixed mode)

    def __post_init__(self) -> None:
        if self.block_size < 1:
            raise ValueError(f"canvas block size must be >= 1, got {self.block_size}")
        for name, size in self.fixed:
            if size < self.block_size:
                raise ValueError(f"canvas for class {name}: {size} is below one block")
        if self.fixed_default is not None and self.fixed_default < self.block_size:
            raise ValueError(f"default canvas {self.fixed_default} is below one block")

    @property
    def known_length(self) -> bool:
        return not self.fixed and self.fixed_default is None

    def round_up(self, tokens: int) -> int:
        return max(1, math.ceil(tokens / self.block_size)) * self.block_size

    def canvas(self, request: TraceRequest) -> int:
        if self.known_length:
            return self.round_up(request.output_len)
        size = dict(self.fixed).get(request.slo_class, self.fixed_default)
        if size is None:
            raise ValueError(f"fixed canvas: no maximum canvas for class {request.slo_class!r}")
        return self.round_up(size)

    def decoded(self, request: TraceRequest, canvas: int) -> int:
        """Canvas tokens decoded before the request stops (whole blocks up to its EOS)."""
        return min(canvas, self.round_up(request.output_len))

    def describe(self) -> str:
        if self.known_length:
            return (f"canvas = output length rounded up to block {self.block_size} (the server "
                    f"knows each output length in advance: an oracle)")
        sizes = ", ".join(f"{c} {s}" for c, s in self.fixed)
        default = f", others {self.fixed_default}" if self.fixed_default is not None else ""
        return (f"fixed canvas per class ({sizes}{default}), early stop when the block holding "
                f"EOS completes")


@dataclass(frozen=True, slots=True)
class Job:
    index: int
    request_id: str
    slo_class: str
    arrival_s: float
    prompt_len: int
    output_len: int
    canvas_len: int
    decoded_len: int  # canvas tokens decoded before it stops (== canvas_len for known lengths)
    deadline_s: float  # absolute
    unloaded_s: float

    @property
    def early_stop(self) -> bool:
        return self.decoded_len < self.canvas_len


def prepare_jobs(trace: Trace, canvas: CanvasPolicy, unloaded: UnloadedLatency,
                 slo_scale: float | Mapping[str, float]) -> tuple[Job, ...]:
    scales = slo_scale if isinstance(slo_scale, Mapping) else None
    jobs = []
    cache: dict[tuple[int, int, int], float] = {}
    for i, r in enumerate(trace.requests):
        if scales is None:
            scale = float(slo_scale)  # type: ignore[arg-type]
        elif r.slo_class in scales:
            scale = float(scales[r.slo_class])
        else:
            raise ValueError(f"request {i}: no SLO scale for class {r.slo_class!r} "
                             f"(have {sorted(scales)})")
        if not (scale > 0 and math.isfinite(scale)):
            raise ValueError(f"SLO scale for class {r.slo_class!r} must be > 0, got {scale}")
        size = canvas.canvas(r)
        decoded = canvas.decoded(r, size)
        key = (r.prompt_len, size, decoded)
        alone = cache.get(key)
        if alone is None:
            alone = cache[key] = float(unloaded(*key))
        jobs.append(Job(i, f"{trace.name}-{i}", r.slo_class, r.arrival_s, r.prompt_len,
                        r.output_len, size, decoded, r.arrival_s + scale * alone, alone))
    return tuple(jobs)
