"""What the simulator must know of the machine the live cluster runs on, measured just before a
live run (the embedded default's CPU replicas share the host with each other, and on a shared
box with other work):

- the RPC path (`SimOptions.rpc_s`): a request's time outside the worker (client -> router ->
  worker and the final message back). The same requests are sent one at a time, a little apart,
  first straight to a worker and then through the router: the median client latency through
  the router minus the median time the worker itself reports (arrival to final). One at a time,
  so nothing queues: what is left is the gRPC path (two hops each way, routing, proxying, the
  client, and waking each process on the way);
- the host's sharing (`SimOptions.host_slowdown`): a replica's step takes longer while other
  replicas step on the same host's cores. The engine runs a fixed batch alone, then in N
  processes at once (N = the replicas); the ratio of step times is the slowdown with N stepping.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

from dilaserve.livebench.workload import LiveRequest
from worker.client.async_client import AsyncWorkerClient
from worker.client.messages import generate_request

PROBES = 30
PROBE_GAP_S = 0.02  # about the gap between arrivals at the loads compared
PROBE_DEADLINE_MS = 5000.0  # generous: the probes must finish, not race a deadline


@dataclass(frozen=True)
class RpcCalibration:
    rpc_s: float
    router_ms: float  # median client latency through the router
    worker_ms: float  # median time inside the worker (called directly)
    probes: int

    def describe(self) -> str:
        return (f"RPC path {1e3 * self.rpc_s:.2f} ms (median of {self.probes} requests sent "
                f"one at a time, {1e3 * PROBE_GAP_S:.0f} ms apart: {self.router_ms:.2f} ms "
                f"through the router, {self.worker_ms:.2f} ms inside a worker)")


async def _sequential(target: str, requests: list[LiveRequest]) -> list[tuple[float, float]]:
    """(client latency ms, the server's e2e ms) per request, each sent `PROBE_GAP_S` after the
    previous one ended: the processes on the path idle in between, as they do at light load
    (back to back, the path stays hot and can look 1.5-2x faster on a shared box)."""
    out = []
    async with AsyncWorkerClient(target) as client:
        for r in requests:
            await asyncio.sleep(PROBE_GAP_S)
            message = generate_request(r.prompt, r.canvas, deadline_ms=PROBE_DEADLINE_MS,
                                       slo_class=r.slo_class)
            sent = time.perf_counter()
            async for response in client.stream(message, PROBE_DEADLINE_MS / 1e3 + 5):
                if response.HasField("final"):
                    out.append((1e3 * (time.perf_counter() - sent),
                                response.final.timings.e2e_ms))
    return out


def measure_rpc(router: str, worker: str, requests: tuple[LiveRequest, ...],
                probes: int = PROBES) -> RpcCalibration:
    chosen = list(requests[:probes])
    direct = asyncio.run(_sequential(worker, chosen))
    routed = asyncio.run(_sequential(router, chosen))
    router_ms = statistics.median(c for c, _ in routed)
    worker_ms = statistics.median(e for _, e in direct)
    return RpcCalibration(max(0.0, (router_ms - worker_ms) / 1e3), router_ms, worker_ms,
                          len(chosen))


HOST_PROBE_S = 1.2  # seconds of steps per probe process
HOST_PROBE_PROMPTS = ("rev:qwertyuiopas>", "xor:1011001110>")


@dataclass(frozen=True)
class HostCalibration:
    step_alone_ms: float  # a fixed batch's step, one engine process
    step_shared_ms: float  # the same with `processes` engine processes stepping at once
    processes: int
    profile_ms: float  # what the step-cost profile predicts for that step

    @property
    def slowdown(self) -> tuple[float, ...]:
        """Step-time factor with 1, 2, ... replicas stepping at once (linear in between)."""
        shared = max(1.0, self.step_shared_ms / self.step_alone_ms)
        n = self.processes
        return tuple(1.0 + (shared - 1.0) * (k - 1) / max(1, n - 1) for k in range(1, n + 1))

    def describe(self) -> str:
        return (f"host: a step takes {self.step_alone_ms:.2f} ms with one engine process, "
                f"{self.step_shared_ms:.2f} ms with {self.processes} at once (x"
                f"{self.slowdown[-1]:.2f}); the profile predicts {self.profile_ms:.2f} ms")


def _probe(args: tuple[float, float]) -> tuple[float, float]:
    """Steps of a fixed batch for `seconds` starting at wall time `start`: (mean step s,
    the profile's prediction)."""
    seconds, start = args
    import torch

    from worker.engine.engine import DenoisingEngine, EngineConfig
    from worker.engine.runner import run_to_completion
    from worker.engine.step_types import AdmitRow, DecodeSettings
    from worker.measure.profile_files import find_step_cost, profiles_dir
    from worker.models.shipped import load
    from worker.profiles.step_cost import StepCostProfile

    torch.set_num_threads(1)
    model, tok, directory = load(None)
    cost = StepCostProfile.load(find_step_cost(profiles_dir(directory), "dual")).cost
    settings = DecodeSettings(threshold=0.9, block_size=32, cache_mode="dual")
    rows = [AdmitRow(str(i), tuple(tok.encode(p)), 64, settings)
            for i, p in enumerate(HOST_PROBE_PROMPTS)]
    engine = DenoisingEngine(model, EngineConfig(max_rows=len(rows)))
    run_to_completion(engine, rows, len(rows))  # warm up
    while time.time() < start:
        time.sleep(0.001)
    times, predicted = [], []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        report = run_to_completion(engine, rows, len(rows), keep_steps=True)
        times += [s.elapsed_s for s in report.steps]
        predicted += [cost.predict(s.features) for s in report.steps]
    return statistics.median(times), statistics.median(predicted)


def measure_host(processes: int) -> HostCalibration:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        alone, predicted = pool.map(_probe, [(HOST_PROBE_S, time.time() + 2.0)])[0]
        shared = pool.map(_probe, [(HOST_PROBE_S, time.time() + 2.0)] * processes)
    return HostCalibration(1e3 * alone, 1e3 * statistics.median(s for s, _ in shared),
                           processes, 1e3 * predicted)
