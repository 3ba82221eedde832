"""Open-loop load generation against a Generate service: arrival processes and trace replay.

Arrivals are Poisson (exponential gaps) or Gamma with a chosen coefficient of variation (bursty for
CV > 1: gaps ~ Gamma(shape 1/CV^2, mean 1/rate)). A trace is replayed open-loop: every request is
sent at its arrival time whatever happened to the earlier ones, each with its own SLO deadline.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import grpc

from worker.client.async_client import AsyncWorkerClient
from worker.client.messages import generate_request


@dataclass(frozen=True)
class Job:
    """One request of a trace: when it is sent (s from the start) and what it asks."""

    at_s: float
    task: str
    prompt: str
    answer: str
    deadline_ms: float | None  # None: the SLO class's deadline
    max_new_tokens: int | None = None  # None: the replay's (a task's canvas, when tasks differ)


@dataclass(frozen=True)
class ReplayOutcome:
    task: str
    prompt: str
    status: str  # "met", "late" (finished after its deadline), "rejected", "expired", or a code
    e2e_ms: float  # the worker's arrival-to-final time (finished requests only, else 0)
    correct: bool
    threshold_mean: float
    forwards: int
    text: str = ""  # the answer (finished requests only)
    restarts: int = 0  # times the router restarted it on another replica

    @property
    def finished(self) -> bool:
        return self.status in ("met", "late")


def arrival_times(rate: float, count: int, process: str, rng: random.Random, cv: float = 1.0):
    """`count` arrival offsets (s) at `rate` per second; process is "poisson" or "gamma"."""
    if rate <= 0 or count < 0:
        raise ValueError(f"arrivals: rate must be > 0 and count >= 0, got {rate}, {count}")
    if process == "poisson":
        gaps = [rng.expovariate(rate) for _ in range(count)]
    elif process == "gamma":
        if cv <= 0:
            raise ValueError(f"arrivals: gamma needs a CV > 0, got {cv}")
        shape = 1.0 / (cv * cv)
        gaps = [rng.gammavariate(shape, 1.0 / (rate * shape)) for _ in range(count)]
    else:
        raise ValueError(f"arrivals: unknown process {process!r} (poisson or gamma)")
    times, now = [], 0.0
    for gap in gaps:
        now += gap
        times.append(now)
    return times


async def replay(
    target: str, jobs: list[Job], max_new_tokens: int | None, slo_class: str = ""
) -> list[ReplayOutcome]:
    """Send every job at its time; returns one outcome per job, in job order. A job's own
    max_new_tokens stands over `max_new_tokens` (None: every job brings its own)."""
    if max_new_tokens is None and any(job.max_new_tokens is None for job in jobs):
        raise ValueError("replay: a job without max_new_tokens and no default")
    async with AsyncWorkerClient(target) as client:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []
        for job in jobs:
            delay = start + job.at_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_one(client, job, max_new_tokens, slo_class)))
        return list(await asyncio.gather(*tasks))


async def _one(client: AsyncWorkerClient, job: Job, max_new_tokens: int | None,
               slo_class: str) -> ReplayOutcome:
    request = generate_request(
        job.prompt, job.max_new_tokens or max_new_tokens, deadline_ms=job.deadline_ms,
        slo_class=slo_class,
    )
    restarts = 0
    try:
        async for message in client.stream(request):
            if message.HasField("restarted"):
                restarts += 1
            elif message.HasField("final"):
                final = message.final
                return ReplayOutcome(
                    job.task,
                    job.prompt,
                    "met" if final.deadline_met else "late",
                    final.timings.e2e_ms,
                    final.text == job.answer,
                    final.threshold_mean,
                    final.forwards,
                    final.text,
                    restarts,
                )
    except grpc.RpcError as err:
        status = {
            grpc.StatusCode.RESOURCE_EXHAUSTED: "rejected",
            grpc.StatusCode.DEADLINE_EXCEEDED: "expired",
        }.get(err.code(), err.code().name)
        return ReplayOutcome(job.task, job.prompt, status, 0.0, False, 0.0, 0)
    return ReplayOutcome(job.task, job.prompt, "no-final", 0.0, False, 0.0, 0)
