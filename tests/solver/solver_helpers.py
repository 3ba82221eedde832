"""Hand-built synthetic profiles and inputs for the solver tests."""

from __future__ import annotations

from dilaserve.profiles.quality import QualityPoint, QualityProfile
from dilaserve.profiles.step_cost import StepCostModel, StepCostProfile
from solver.types import (
    Cluster,
    LengthDist,
    NodeType,
    Profiles,
    SolverOptions,
    SolverPolicy,
    WorkloadClass,
)

COEF = (2e-3, 1e-5, 4e-5, 1e-8)
# threshold -> (tokens per step, accuracy): fewer steps and a few points less accuracy as tau falls
POINTS = {0.5: (6.0, 0.70), 0.6: (5.0, 0.74), 0.7: (4.0, 0.77), 0.8: (3.2, 0.78),
          0.9: (2.5, 0.79), 0.99: (1.2, 0.792)}


def step_profile(tp: int = 1, hardware: str = "H100", coef=COEF,
                 cache_mode: str = "dual") -> StepCostProfile:
    """A "measured" profile; TP > 1 runs the TP=1 coefficients x 1.2 / tp."""
    scale = 1.0 if tp == 1 else 1.2 / tp
    return StepCostProfile("toy", hardware, "bf16", tp, cache_mode,
                           StepCostModel(tuple(c * scale for c in coef)), 0.02)


def quality_profile(points=None, blocks=(32,)) -> QualityProfile:
    points = POINTS if points is None else points
    pts = tuple(QualityPoint("threshold", tau, b, acc, {"toy": acc}, tps * 0.9, tps, 128 / tps)
                for b in blocks for tau, (tps, acc) in sorted(points.items()))
    ref = next(p for p in pts if p.threshold == 0.9 and p.block_size == blocks[0])
    return QualityProfile("toy", ref, pts)


def profiles(tps=(1,), hardware: str = "H100", **kw) -> Profiles:
    return Profiles(tuple(step_profile(t, hardware) for t in tps), quality_profile(**kw))


def slo(name: str = "chat", rate: float = 5.0, prompt=(128, 256), output=(128, 128), **kw):
    if "deadline_s" not in kw and "slo_scale" not in kw and not kw.get("best_effort"):
        kw["deadline_s"] = 0.5
    return WorkloadClass(name, rate, LengthDist(*prompt), LengthDist(*output), **kw)


def cluster(count: int = 1, gpus: int = 8, gpu_type: str = "H100") -> Cluster:
    return Cluster((NodeType(count, gpus, gpu_type),))


def policy(solver: str = "cbc", **kw) -> SolverPolicy:
    return SolverPolicy(solver=SolverOptions(solver, time_limit_s=20.0, gap_rel=0.0), **kw)
