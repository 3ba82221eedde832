"""A workload trace: requests with an arrival time, a prompt length and an output length.

Times are seconds from the trace's start (the first request arrives at or after 0). Lengths are
token counts as the trace gives them; clipping to a model's limits is `traces.transform`'s job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

DEFAULT_CLASS = "default"


@dataclass(frozen=True, slots=True)
class TraceRequest:
    arrival_s: float
    prompt_len: int
    output_len: int
    slo_class: str = DEFAULT_CLASS


@dataclass(frozen=True)
class Trace:
    """Requests sorted by arrival. `source` says where they came from (a path or a generator and
    its parameters); `notes` collects what transformations did to them (clipping, scaling)."""

    name: str
    requests: tuple[TraceRequest, ...]
    source: str = ""
    duration_s: float = 0.0  # the span the arrivals were drawn from (>= the last arrival)
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        reqs = tuple(self.requests)
        object.__setattr__(self, "requests", reqs)
        for i, (a, b) in enumerate(zip(reqs, reqs[1:])):
            if b.arrival_s < a.arrival_s:
                raise ValueError(f"trace {self.name}: request {i + 1} arrives before request {i}")
        last = reqs[-1].arrival_s if reqs else 0.0
        if not math.isfinite(self.duration_s) or self.duration_s < last:
            object.__setattr__(self, "duration_s", last)

    def __len__(self) -> int:
        return len(self.requests)

    @property
    def rate(self) -> float:
        """Mean arrival rate over the trace's span, requests per second."""
        return len(self.requests) / self.duration_s if self.duration_s > 0 else 0.0

    def classes(self) -> list[str]:
        return sorted({r.slo_class for r in self.requests})

    def with_requests(self, requests: tuple[TraceRequest, ...] | list[TraceRequest],
                      note: str, duration_s: float | None = None) -> Trace:
        return Trace(self.name, tuple(requests), self.source,
                     self.duration_s if duration_s is None else duration_s,
                     (*self.notes, note))

    def summary(self) -> str:
        if not self.requests:
            return f"{self.name}: empty"
        prompts = sorted(r.prompt_len for r in self.requests)
        outputs = sorted(r.output_len for r in self.requests)

        def pct(values: list[int], q: float) -> int:
            return values[min(len(values) - 1, int(q * len(values)))]

        return (f"{self.name}: {len(self.requests)} requests over {self.duration_s:.0f} s "
                f"({self.rate:.2f} req/s); prompt mean {sum(prompts) / len(prompts):.0f} "
                f"p90 {pct(prompts, 0.9)}; output mean {sum(outputs) / len(outputs):.0f} "
                f"p90 {pct(outputs, 0.9)}")
