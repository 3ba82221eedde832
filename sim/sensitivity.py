"""How the headline result moves when each assumed (not published) parameter is halved or doubled.

Assumptions perturbed (see solver/published.py for what each stands for):
- batch_scaling: the per-token cost of batched rows (`LladaAssumptions.batch_token_scale`), with the
  batch-1 dual-cache step held at its published time (needs the published profile);
- tp_overhead: TP extrapolation's efficiency loss and all-reduce latency x f, link bandwidth / f;
- reload_s: seconds before a new replica serves;
- speed_cv: the spread of tokens per step between requests.
The rate and SLO scales stay those of the headline, so a row shows what the same offered load
gives under the changed assumption (its deadlines move with the step cost, as unloaded latency
does).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sim.experiments import BenchSetup, PointResult, run_grid
from sim.policies import PolicySpec
from solver.profile_set import ProfileSet
from solver.published import assumptions_from, step_cost_profile
from solver.tp_extrapolation import TpOverhead

ASSUMPTIONS = ("batch_scaling", "tp_overhead", "reload_s", "speed_cv")
FACTORS = (0.5, 2.0)


@dataclass(frozen=True)
class SensitivityRow:
    assumption: str
    factor: float
    value: str  # the perturbed value(s), in words
    results: tuple[PointResult, ...]

    def attainment(self, policy: str) -> float:
        return next(r.summary.attainment for r in self.results if r.policy == policy)


def perturb(setup: BenchSetup, assumption: str, factor: float) -> tuple[BenchSetup, str]:
    profiles = setup.profiles
    if assumption == "batch_scaling":
        base = min(profiles.step_costs, key=lambda p: p.tp)
        if "assumed" not in base.provenance:
            raise ValueError("batch_scaling needs the published profile (its assumptions)")
        assume = assumptions_from(base)
        changed = replace(assume, batch_token_scale=assume.batch_token_scale * factor)
        step = step_cost_profile(changed)
        new = replace(profiles, step_costs=(step,))
        return replace(setup, profiles=new), f"batch_token_scale {changed.batch_token_scale:g}"
    if assumption == "tp_overhead":
        tp = profiles.tp_overhead
        changed_tp = replace(tp, efficiency_loss=tp.efficiency_loss * factor,
                             allreduce_latency_s=tp.allreduce_latency_s * factor,
                             link_gbytes_per_s=tp.link_gbytes_per_s / factor)
        return (replace(setup, profiles=_with_tp(profiles, changed_tp)),
                f"loss {changed_tp.efficiency_loss:g}, all-reduce "
                f"{changed_tp.allreduce_latency_s * 1e6:g} us, {changed_tp.link_gbytes_per_s:g} "
                f"GB/s")
    if assumption == "reload_s":
        value = profiles.reload_s * factor
        return replace(setup, profiles=replace(profiles, reload_s=value)), f"{value:g} s"
    if assumption == "speed_cv":
        value = setup.speed_cv * factor
        return replace(setup, speed_cv=value), f"cv {value:g}"
    raise ValueError(f"unknown assumption {assumption!r}; known: {', '.join(ASSUMPTIONS)}")


def _with_tp(profiles: ProfileSet, overhead: TpOverhead) -> ProfileSet:
    return replace(profiles, tp_overhead=overhead)


def sensitivity(setup: BenchSetup, policies: list[PolicySpec], rate_scale: float,
                slo_scale: float, assumptions: tuple[str, ...] = ASSUMPTIONS, jobs: int = 1,
                base: list[PointResult] | None = None) -> list[SensitivityRow]:
    """`base`: results already run at this point with these policies (reused, not rerun)."""
    if base is None:
        base = run_grid(setup, policies, [rate_scale], [slo_scale], jobs)
    rows = [SensitivityRow("(as assumed)", 1.0, "-", tuple(base))]
    for name in assumptions:
        for factor in FACTORS:
            try:
                changed, value = perturb(setup, name, factor)
            except ValueError as err:
                rows.append(SensitivityRow(name, factor, f"skipped: {err}", ()))
                continue
            results = run_grid(changed, policies, [rate_scale], [slo_scale], jobs)
            rows.append(SensitivityRow(name, factor, value, tuple(results)))
    return rows
