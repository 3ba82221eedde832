"""What every live run of one bench invocation shares: the cluster policy the runs start from,
the profiles of the model it serves, the cluster as the simulator sees it, the SLO classes and
the base trace; and the workload at each (rate scale, SLO scale) point."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from dilaserve.livebench.workload import LiveWorkload, build_live_workload
from dilaserve.policy.cluster import ClusterPolicy
from sim.experiments import BenchSetup
from sim.simulator import SimOptions
from sim.workload import SimClass
from solver.profile_set import ProfileSet, load_profile_set
from solver.types import Cluster
from traces.records import Trace
from traces.transform import scale_rate

MAX_LIVE_SPAN_S = 600.0  # live runs replay in real time


@dataclass(frozen=True)
class LiveSetup:
    base: ClusterPolicy  # the policy file the runs start from
    profiles: ProfileSet  # the served model's (what deadlines and the simulator use)
    cluster: Cluster  # the embedded cluster as the simulator and the solver see it
    classes: tuple[SimClass, ...]  # slo_scale 1: each point scales it
    trace: Trace  # before rate scaling
    seed: int
    scale_mode: str
    notes: tuple[str, ...] = ()

    def bench_setup(self) -> BenchSetup:
        """The simulated mode's setup over the same cluster and profiles (best-static's sweep)."""
        return BenchSetup(self.trace, self.classes, self.cluster, self.profiles, None, self.seed,
                          self.scale_mode, options=SimOptions(seed=self.seed))

    def workload(self, rate_scale: float, slo_scale: float,
                 seed: int | None = None) -> LiveWorkload:
        seed = self.seed if seed is None else seed
        trace = scale_rate(self.trace, rate_scale, mode=self.scale_mode, seed=seed)
        if trace.duration_s > MAX_LIVE_SPAN_S:
            raise ValueError(f"--window: live runs replay in real time; this workload spans "
                             f"{trace.duration_s:.0f} s (at most {MAX_LIVE_SPAN_S:g}): choose "
                             f"a window or a shorter --duration")
        classes = tuple(dataclasses.replace(c, slo_scale=c.slo_scale * slo_scale)
                        for c in self.classes)
        return build_live_workload(trace, classes, self.profiles,
                                   self.base.policy.worker.max_new_tokens, seed)


def served_profiles(base: ClusterPolicy) -> ProfileSet:
    """The profiles of the model the cluster serves, found as the controller finds them."""
    from dilaserve.core.locations import SHIPPED_MODEL_DIR

    settings = base.cluster
    if settings.profiles:
        return load_profile_set(settings.profiles)
    return load_profile_set(Path(settings.model or SHIPPED_MODEL_DIR) / "profiles")


def embedded_cluster(base: ClusterPolicy, profiles: ProfileSet) -> Cluster:
    """The embedded default's shape (no GPUs: `cpu_slots` CPU replicas on one node), as the
    controller builds it, in the solver's terms."""
    from orchestrator.runtime.shape import cluster_shape

    return cluster_shape(base.cluster, [], profiles.hardware).solver_cluster()


def measured_tp_only(base: ClusterPolicy, profiles: ProfileSet) -> tuple[ClusterPolicy, str]:
    """On CPU replicas, plan only the TP degrees the profiles measured: the solver's TP > 1
    extrapolation models fast GPU links, and on the shared CPU cores TP=2 measured about 2x
    slower than TP=1, not faster (docs/parallel.md)."""
    if base.cluster.nodes:
        return base, ""
    measured = max(p.tp for p in profiles.step_costs)
    if base.cluster.max_tp <= measured:
        return base, ""
    cluster = dataclasses.replace(base.cluster, max_tp=measured)
    return dataclasses.replace(base, cluster=cluster), (
        f"max_tp {base.cluster.max_tp} -> {measured}: the CPU replicas' profiles measure TP up "
        f"to {measured} (TP=2 on these cores measured ~2x slower than TP=1, "
        f"docs/parallel.md); planner and best-static's sweep keep to it")
