"""The solver's capacity model (solver/capacity.py) against the simulator, per configuration.

For each (TP, tau) configuration and each load u (a fraction of the capacity the model predicts):
the model's predicted attainment `attainment(cap, D, u x cap.rate)` beside the attainment one
simulated replica reaches under the same assumptions the model makes: Poisson arrivals at
u x cap.rate, one class with one deadline D (the solver's: SLO scale x the unloaded latency at
the mean lengths), lengths drawn jointly from the trace, FCFS, no admission, no load control,
every request served to the end (latency is compared with D; nothing expires). The first
`warmup` share of requests is left out (the model is a steady state; the simulation starts
empty).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.metrics import Outcome
from sim.policies import Layout, PolicySpec
from sim.simulator import SimOptions, Simulation
from sim.workload import SimClass, build_workload
from solver.capacity import CapacityQuery, attainment, latency, replica_capacity
from solver.profile_set import ProfileSet
from solver.types import Cluster, LengthDist, NodeType
from traces.records import Trace, TraceRequest

NO_EXPIRY_SCALE = 1e9  # deadlines this many unloaded latencies away never expire


@dataclass(frozen=True)
class CapacityRow:
    tp: int
    threshold: float
    load: float  # offered rate / predicted capacity
    rate: float  # offered req/s
    capacity: float  # predicted req/s at the target
    batch: int  # the batch the capacity is planned at
    deadline_s: float
    predicted: float  # predicted attainment at this rate
    simulated: float
    simulated_p90_s: float
    requests: int


def _lengths(trace: Trace, profiles: ProfileSet) -> tuple[np.ndarray, np.ndarray]:
    block = profiles.reference_block
    prompts, canvases = [], []
    for r in trace.requests:
        canvas = max(1, math.ceil(min(r.output_len, 1024) / block)) * block
        prompts.append(max(1, min(r.prompt_len, profiles.max_seq_len - canvas)))
        canvases.append(canvas)
    return np.array(prompts), np.array(canvases)


def capacity_check(profiles: ProfileSet, trace: Trace, slo_scale: float,
                   tps: tuple[int, ...] = (1, 2, 4, 8), taus: tuple[float, ...] = (0.7, 0.9),
                   loads: tuple[float, ...] = (0.5, 0.8, 1.0), requests: int = 1500,
                   target: float = 0.9, seed: int = 0, warmup: float = 0.1,
                   ) -> list[CapacityRow]:
    hardware = profiles.hardware[0]
    block = profiles.reference_block
    prompts, canvases = _lengths(trace, profiles)
    prompt_ld = LengthDist(float(prompts.mean()), float(np.percentile(prompts, 90)))
    canvas_ld = LengthDist(float(canvases.mean()), float(np.percentile(canvases, 90)))
    ref = profiles.quality.reference.threshold
    base = profiles.step_profile(hardware, 1)
    alone = CapacityQuery(base.cost, base.cache_mode, prompt_ld, canvas_ld, block,
                          profiles.quality.at(ref, block).tokens_per_step, None, target, 1)
    deadline = slo_scale * latency(alone, 1, tail=False)
    rows = []
    rng = np.random.default_rng(seed)
    for tp in tps:
        step = profiles.step_profile(hardware, tp)
        for tau in taus:
            q = CapacityQuery(step.cost, step.cache_mode, prompt_ld, canvas_ld, block,
                              profiles.quality.at(tau, block).tokens_per_step, deadline, target,
                              profiles.max_rows)
            cap = replica_capacity(q)
            for load in loads:
                rate = load * cap.rate
                if rate <= 0:
                    continue
                picks = rng.integers(0, len(prompts), requests)
                times = np.cumsum(rng.exponential(1.0 / rate, requests))
                trace_u = Trace("capacity", tuple(
                    TraceRequest(float(t), int(prompts[k]), int(canvases[k]))
                    for t, k in zip(times, picks)), duration_s=float(times[-1]))
                sim_att, p90 = _simulate(profiles, trace_u, tp, tau, hardware, deadline,
                                         warmup, seed)
                rows.append(CapacityRow(tp, tau, load, rate, cap.rate, cap.batch, deadline,
                                        attainment(cap, deadline, rate), sim_att, p90,
                                        requests))
    return rows


def _simulate(profiles: ProfileSet, trace: Trace, tp: int, tau: float, hardware: str,
              deadline: float, warmup: float, seed: int) -> tuple[float, float]:
    cls = (SimClass(slo_scale=NO_EXPIRY_SCALE, max_accuracy_drop=None),)
    workload = build_workload(trace, cls, profiles, seed=seed)
    policy = PolicySpec("capacity-check", "fcfs", False, "none", "round_robin", Layout(tp, tau))
    cluster = Cluster((NodeType(1, tp, hardware),))
    sim = Simulation(workload, cluster, profiles, policy, SimOptions(seed=seed))
    sim.run()
    rec = sim.records
    arrivals = np.array([j.arrival_s for j in workload.jobs])
    skip = int(warmup * len(arrivals))
    done = rec.outcome[skip:] == Outcome.MET
    lat = (rec.end_s[skip:] - arrivals[skip:])[done]
    if not lat.size:
        return 0.0, math.nan
    return float((lat <= deadline).sum() / (len(arrivals) - skip)), float(np.percentile(lat, 90))
