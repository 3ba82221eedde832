"""Load for the router's overhead benchmark (`dilaserve bench-router`); a request's latency is
send to final message, as the client sees it.

- closed loop: `concurrency` clients each send a request as soon as their previous one ended,
  until `requests` have been sent (throughput at saturation);
- open loop: requests sent at Poisson times at a fixed rate, whatever happened to earlier ones
  (latency at a load both ways can carry).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import grpc

from worker.client.async_client import AsyncWorkerClient
from worker.client.bench_metrics import percentile
from worker.client.loadgen import arrival_times
from worker.client.messages import generate_request


@dataclass(frozen=True)
class LoadResult:
    requests: int
    wall_s: float
    latencies_s: tuple[float, ...]  # finished requests, in order of ending
    errors: dict[str, int] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU time per process over the run

    @property
    def throughput(self) -> float:
        return len(self.latencies_s) / self.wall_s if self.wall_s > 0 else math.nan


def pooled(results: list[LoadResult]) -> dict:
    """Throughput over the summed wall time; latency percentiles over every request."""
    latencies = sorted(x for r in results for x in r.latencies_s)
    wall = sum(r.wall_s for r in results)
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r.errors)
    cpu: Counter[str] = Counter()
    for r in results:
        cpu.update(r.cpu_s)
    finished = len(latencies)
    return {
        "requests": sum(r.requests for r in results),
        "finished": finished,
        "cpu_ms_per_request": {name: t * 1e3 / finished for name, t in cpu.items()} if finished
        else {},
        "wall_s": wall,
        "throughput": len(latencies) / wall if wall > 0 else math.nan,
        "p50_ms": percentile(latencies, 0.5) * 1e3,
        "p99_ms": percentile(latencies, 0.99) * 1e3,
        "errors": dict(errors),
    }


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (Linux /proc; this process when pid is None)."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measured(run, processes: dict[str, int | None]) -> LoadResult:
    """Run a load (a coroutine giving a LoadResult) and add each process's CPU time over it."""
    before = {name: cpu_seconds(pid) for name, pid in processes.items()}
    result = await run
    cpu = {name: cpu_seconds(pid) - before[name] for name, pid in processes.items()}
    return LoadResult(result.requests, result.wall_s, result.latencies_s, result.errors, cpu)


class _Caller:
    def __init__(self, client: AsyncWorkerClient, prompt: str, max_new_tokens: int,
                 deadline_ms: float) -> None:
        self.client = client
        self.request = (prompt, max_new_tokens, deadline_ms)
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()

    async def call(self) -> None:
        prompt, max_new_tokens, deadline_ms = self.request
        request = generate_request(prompt, max_new_tokens, deadline_ms=deadline_ms)
        sent = time.perf_counter()
        try:
            async for message in self.client.stream(request):
                if message.HasField("final"):
                    self.latencies.append(time.perf_counter() - sent)
        except grpc.RpcError as err:
            self.errors[err.code().name] += 1


async def closed_loop(target: str, requests: int, concurrency: int, prompt: str,
                      max_new_tokens: int, deadline_ms: float) -> LoadResult:
    async with AsyncWorkerClient(target) as client:
        await client.wait_ready()
        caller = _Caller(client, prompt, max_new_tokens, deadline_ms)
        todo = iter(range(requests))  # shared: each client takes the next one

        async def one_client() -> None:
            for _ in todo:
                await caller.call()

        start = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        wall = time.perf_counter() - start
        return LoadResult(requests, wall, tuple(caller.latencies), dict(caller.errors))


async def open_loop(target: str, requests: int, rate: float, seed: int, prompt: str,
                    max_new_tokens: int, deadline_ms: float) -> LoadResult:
    times = arrival_times(rate, requests, "poisson", random.Random(seed))
    async with AsyncWorkerClient(target) as client:
        await client.wait_ready()
        caller = _Caller(client, prompt, max_new_tokens, deadline_ms)
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []
        for at in times:
            delay = start + at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(caller.call()))
        await asyncio.gather(*tasks)
        wall = loop.time() - start
        return LoadResult(requests, wall, tuple(caller.latencies), dict(caller.errors))
