"""Run a list of requests to completion with FCFS continuous batching (no deadlines).

Used by profiling, the engine benchmark, quality evaluation and tests; the deadline-aware serving
path uses the worker's scheduler instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from dilaserve.core.steps import AdmitRow, FinishReason, Phase, StepPlan, StepResult
from worker.engine.engine import DenoisingEngine


@dataclass
class Completion:
    request_id: str
    output_ids: tuple[int, ...]
    finish_reason: FinishReason
    forwards: int = 0
    refreshes: int = 0
    committed: int = 0


@dataclass
class RunReport:
    completions: dict[str, Completion]
    steps: list[StepResult] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def step_time_s(self) -> float:
        return sum(s.elapsed_s for s in self.steps)


def run_to_completion(
    engine: DenoisingEngine, requests: list[AdmitRow], batch_size: int, keep_steps: bool = False
) -> RunReport:
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    waiting = list(reversed(requests))
    running: list[str] = []
    stats: dict[str, Completion] = {}
    report = RunReport({})
    started = time.perf_counter()
    while waiting or running:
        admit = []
        while (
            waiting
            and len(running) + len(admit) < batch_size
            and engine.has_room(sum(a.seq_len for a in admit) + waiting[-1].seq_len, len(admit) + 1)
        ):
            admit.append(waiting.pop())
        if not running and not admit:
            raise ValueError(f"request {waiting[-1].request_id} does not fit the engine's limits")
        running += [a.request_id for a in admit]
        for a in admit:
            stats[a.request_id] = Completion(a.request_id, (), FinishReason.LENGTH)
        result = engine.step(StepPlan(admit=tuple(admit), run=tuple(running)))
        if keep_steps:
            report.steps.append(result)
        for out in result.outcomes:
            c = stats[out.request_id]
            c.forwards += 1
            c.refreshes += out.phase is Phase.REFRESH
            c.committed += out.committed
            if out.done:
                c.output_ids, c.finish_reason = out.output_ids, out.finish_reason
                report.completions[out.request_id] = c
                running.remove(out.request_id)
    report.wall_s = time.perf_counter() - started
    return report
