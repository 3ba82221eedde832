"""Reading a solution back: predicted attainment per route and class, and the plan's reasons
(which class is short and why, what was extrapolated, what the reconfiguration costs)."""

from __future__ import annotations

import math

from solver.capacity import attainment
from solver.instance import MIN_RATE, Instance
from solver.plan import ClassOutcome, Route

_TOL = 1e-7  # routes below this fraction of a class are solver noise


def class_outcomes(inst: Instance, counts: dict[int, int], rates: dict[tuple[int, int], float],
                   group_of: dict[int, int]) -> tuple[list[Route], list[ClassOutcome]]:
    # utilisation of one replica of config k: sum_c x[k,c] / (n[k] cap[k,c]) (<= 1 by the ILP)
    util: dict[int, float] = {}
    for (k, c), r in rates.items():
        if r > 0 and counts[k] > 0:
            util[k] = util.get(k, 0.0) + r / (counts[k] * inst.cap(k, c))
    routes: list[Route] = []
    outcomes: list[ClassOutcome] = []
    for c, cls in enumerate(inst.classes):
        deadline = inst.deadlines[c]
        served = good = 0.0
        for (k, cc), r in sorted(rates.items()):
            if cc != c or r <= _TOL * cls.rate or counts[k] == 0:
                continue
            if deadline is None:
                att = 1.0
            else:  # this class alone at the replica's utilisation: the capacity's own model
                u = min(1.0, util.get(k, 0.0))
                att = attainment(inst.capacity[k][c], u * inst.cap(k, c))
            served += r
            good += r * att
            routes.append(Route(cls.name, group_of[k], r, r / cls.rate, att))
        short = served < cls.rate * (1 - 1e-4) - 1e-9
        predicted = good / cls.rate if cls.rate >= MIN_RATE else 1.0
        outcomes.append(ClassOutcome(
            cls.name, cls.rate, served, deadline, cls.target_attainment, predicted, good, short,
            _why_short(inst, c, served, counts) if short else ""))
    return routes, outcomes


def _why_short(inst: Instance, c: int, served: float, counts: dict[int, int]) -> str:
    cls = inst.classes[c]
    missing = cls.rate - served
    head = f"served {served:.3g} of {cls.rate:.3g} req/s ({served / cls.rate:.0%})"
    usable = [k for k in range(len(inst.configs)) if inst.cap(k, c) > 0]
    allowed = [k for k in range(len(inst.configs)) if inst.allowed[k][c]]
    if not usable:
        best = min(allowed, key=lambda k: inst.capacity[k][c].unloaded_s)
        cfg = inst.configs[best]
        floor = (f"; its quality floor leaves {len(allowed)} of {len(inst.configs)} configurations"
                 if len(allowed) < len(inst.configs) else "")
        return (f"{head}: no configuration meets its deadline {inst.deadlines[c]:.3g} s at "
                f"{cls.target_attainment:.0%}: fastest allowed is TP={cfg.tp} "
                f"tau={cfg.threshold:g} "
                f"on {cfg.node_type} ({inst.capacity[best][c].reason}){floor}")
    best = max(usable, key=lambda k: inst.cap(k, c) / inst.configs[k].tp)
    cfg = inst.configs[best]
    replicas = math.ceil(missing / inst.cap(best, c) - 1e-9)
    used = sum(inst.configs[k].tp * n for k, n in counts.items())
    full = (f"cluster full ({used}/{inst.cluster.gpus} GPUs in replicas)"
            if used + min(k.tp for k in inst.configs) > inst.cluster.gpus
            else f"{inst.cluster.gpus - used} GPUs left that no useful replica fits")
    why = f"{head}: {full}; the rest needs about {replicas * cfg.tp} more GPUs " \
          f"({replicas} x TP={cfg.tp} tau={cfg.threshold:g} on {cfg.node_type}, " \
          f"{inst.cap(best, c):.3g} req/s each)"
    if cls.best_effort:
        return why + "; best effort: served only with capacity no SLO class can use"
    higher = [o.name for o in inst.classes if o.priority > cls.priority and not o.best_effort]
    if higher:
        why += f"; higher-priority classes served first: {', '.join(higher)}"
    return why


def plan_reasons(inst: Instance, status: str, gap: float | None, outcomes: list[ClassOutcome],
                 used: int, reconfig: float, current: dict | None,
                 counts: dict[int, int]) -> list[str]:
    opts = inst.policy.solver
    reasons: list[str] = []
    if status.startswith("no solution"):
        reasons.append(f"{status}: {opts.solver} found no solution within "
                       f"{opts.time_limit_s:g} s; nothing is placed (raise "
                       f"policy.solver.time_limit_s)")
    elif status == "feasible":
        g = "unknown" if gap is None else f"{gap:.2%}"
        reasons.append(f"{opts.solver} stopped at the time limit ({opts.time_limit_s:g} s) "
                       f"before proving optimality; gap {g}")
    for o in outcomes:
        if o.short:
            reasons.append(f"class {o.name} is short: {o.reason}")
        elif o.deadline_s is not None and o.served_rate > 0 \
                and o.predicted_attainment < o.target_attainment - 1e-6:
            reasons.append(f"class {o.name}: predicted attainment {o.predicted_attainment:.1%} "
                           f"below its target {o.target_attainment:.0%}")
    reasons.extend(inst.notes)
    extrap = sorted({(k.node_type, k.tp) for i, k in enumerate(inst.configs)
                     if counts[i] > 0 and k.extrapolated})
    if extrap:
        reasons.append("the plan uses extrapolated step costs for "
                       + ", ".join(f"TP={t} on {p}" for p, t in extrap))
    idle = inst.cluster.gpus - used
    if idle > 0 and status in ("optimal", "feasible"):
        why = " or a new replica's reload outweighs it" if current is not None else ""
        reasons.append(f"{idle} of {inst.cluster.gpus} GPUs left idle (nothing gains from "
                       f"them{why})")
    if current is not None:
        reasons.append(f"reconfiguration against the current plan: {reconfig:.0f} GPU-seconds of "
                       f"reload ({inst.policy.reload_s:g} s/GPU) and drain "
                       f"({inst.policy.drain_s:g} s/GPU)")
    return reasons
