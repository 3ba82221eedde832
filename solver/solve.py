"""`solve()`: build the instance and the MILP, run CBC or HiGHS, and read the plan back.

Pure: no files of ours, no printing (CBC itself runs as a subprocess on temporary files, which PuLP
creates and removes). Over-subscribed inputs give a plan that serves what it can and names the short
classes; bad inputs raise ValueError naming the field.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
import warnings
from dataclasses import replace

import pulp

from solver.explain import class_outcomes, plan_reasons
from solver.explain_layouts import layout_reasons
from solver.ilp import OBJ_SCALE, Model, Pair, build_model
from solver.instance import Instance, build_instance
from solver.plan import Plan, ReplicaGroup, Route
from solver.types import Cluster, Profiles, SolverOptions, SolverPolicy, Workload


def solve(cluster: Cluster, workload: Workload, profiles: Profiles,
          policy: SolverPolicy | None = None, current: Plan | None = None) -> Plan:
    """Split `cluster` into replica groups and route each SLO class of `workload` among them.

    `current`, the running plan, makes changing replica counts per (node type, TP degree) cost
    reload / drain GPU-seconds (policy.reload_s, policy.drain_s)."""
    start = time.perf_counter()
    policy = SolverPolicy() if policy is None else policy
    if current is not None and not isinstance(current, Plan):
        raise ValueError(f"current must be a Plan or None, got {type(current).__name__}")
    inst = build_instance(cluster, workload, profiles, policy)
    cur, gone = current_counts(inst, current)
    slots = layout_first(inst, cur) if policy.layout_first else None
    model = build_model(inst, cur, slots=slots)
    status, gap = run_solver(model.prob, policy.solver)
    return extract(inst, model, status, gap, gone, start)


def layout_first(inst: Instance, current: dict[Pair, int] | None) -> dict[Pair, int] | None:
    """Replicas per (pool, TP degree) chosen without the accuracy tier: the layout with the most
    capacity at any threshold the classes allow (then the fewest reloads, then the most capacity
    per GPU). A TP layout costs reloads to change while thresholds change for free, so it is
    chosen for what load control can reach, not for the thresholds the current load needs; the
    second solve picks thresholds and routes within it. None when that solve finds nothing."""
    weights = replace(inst.policy.weights, accuracy=0.0)
    model = build_model(inst, current, weights=weights)
    status, _ = run_solver(model.prob, inst.policy.solver)
    if status not in ("optimal", "feasible"):
        return None
    slots: dict[Pair, int] = {}
    for i, k in enumerate(inst.configs):
        count = round(model.vars.n[i].value() or 0)
        slots[k.pool, k.tp] = slots.get((k.pool, k.tp), 0) + count
    return slots


def current_counts(inst: Instance, current: Plan | None) -> tuple[dict[Pair, int] | None, float]:
    """Replicas per (pool, TP) in the current plan, and the drain GPU-seconds of replicas the new
    model cannot keep (node type or TP degree no longer offered)."""
    if current is None:
        return None, 0.0
    names = {n.name: p for p, n in enumerate(inst.cluster.nodes)}
    offered = {(k.pool, k.tp) for k in inst.configs}
    counts: dict[Pair, int] = {}
    gone = 0.0
    for (node_type, tp), count in current.replicas().items():
        key = (names.get(node_type, -1), tp)
        if key in offered:
            counts[key] = counts.get(key, 0) + count
        else:
            gone += inst.policy.drain_s * tp * count
    return counts, gone


def make_solver(opts: SolverOptions, log_path: str | None = None) -> pulp.LpSolver:
    if opts.solver == "highs":
        return pulp.HiGHS(msg=False, timeLimit=opts.time_limit_s, gapRel=opts.gap_rel,
                          gapAbs=opts.gap_abs * OBJ_SCALE, threads=opts.threads)
    with warnings.catch_warnings():  # PuLP 3.3 flags its bundled CBC as deprecated for 4.0
        warnings.simplefilter("ignore")
        return pulp.PULP_CBC_CMD(msg=False, timeLimit=opts.time_limit_s, gapRel=opts.gap_rel,
                                 gapAbs=opts.gap_abs * OBJ_SCALE, threads=opts.threads,
                                 logPath=log_path,
                                 options=[f"increment {opts.gap_abs * OBJ_SCALE:g}"])


def run_solver(prob: pulp.LpProblem, opts: SolverOptions) -> tuple[str, float | None]:
    """Solve in place; (status, relative gap). Status comes from `prob.sol_status` (LpStatus says
    Optimal on a time-limit stop too): optimal, feasible (a solution, optimality not proven) or no
    solution."""
    log_path = None
    if opts.solver == "cbc":
        fd, log_path = tempfile.mkstemp(prefix="dilaserve-cbc-", suffix=".log")
        os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prob.solve(make_solver(opts, log_path))
        log = ""
        if log_path:
            with open(log_path, errors="replace") as f:
                log = f.read()
    except pulp.PulpSolverError as err:
        return f"no solution ({opts.solver} failed: {err})", None
    finally:
        if log_path:
            os.unlink(log_path)
    sol = prob.sol_status
    if sol == pulp.LpSolutionOptimal:
        status = "optimal"
    elif sol == pulp.LpSolutionIntegerFeasible:
        status = "feasible"
    else:
        return "no solution", None
    obj = pulp.value(prob.objective) or 0.0
    gap = _highs_gap(prob) if opts.solver == "highs" else _cbc_gap(log, obj, status)
    return status, None if gap is None else max(0.0, gap)


def _highs_gap(prob: pulp.LpProblem) -> float | None:
    try:
        gap = float(prob.solverModel.getInfo().mip_gap)
    except AttributeError:
        return None
    return gap if math.isfinite(gap) else None


def _cbc_gap(log: str, obj: float, status: str) -> float | None:
    """CBC prints its bound only on a stop ("Upper/Lower bound:"; its "Gap:" line is rounded to
    two decimals), and an early exit on the gap tolerance as "Exiting as integer gap of ..."."""
    m = re.findall(r"^(?:Upper|Lower) bound:\s+(\S+)", log, re.M)
    if m:
        try:
            return abs(float(m[-1]) - obj) / max(abs(obj), 1e-12)
        except ValueError:
            return None
    m = re.findall(r"Exiting as integer gap of (\S+)", log)
    if m:
        return float(m[-1]) / max(abs(obj), 1e-12)
    if status == "optimal":
        return 0.0
    return None


def spare_routes(inst: Instance, counts: dict[int, int], group_of: dict[int, int],
                 routes: list[Route]) -> list[Route]:
    """Groups the plan puts no load on (the spare tier's headroom) serve every class they may,
    as routes of no planned load: the router then spreads each class over them too, rather than
    running its planned replicas at the target attainment while these idle."""
    used = {r.group for r in routes}
    out = []
    for k, g in sorted(group_of.items(), key=lambda kv: kv[1]):
        if g in used or counts[k] == 0:
            continue
        for c, cls in enumerate(inst.classes):
            if inst.cap(k, c) > 0:
                out.append(Route(cls.name, g, 0.0, 0.0, math.nan))
    return out


def extract(inst: Instance, model: Model, status: str, gap: float | None, gone_gpu_s: float,
            start: float) -> Plan:
    v = model.vars
    solved = status in ("optimal", "feasible")
    counts = {k: (round(var.value() or 0) if solved else 0) for k, var in v.n.items()}
    rates = {(k, c): (inst.classes[c].rate * min(1.0, max(0.0, var.value() or 0.0))
                      if solved else 0.0) for (k, c), var in v.x.items()}
    group_of: dict[int, int] = {}
    groups = []
    for k, cfg in enumerate(inst.configs):
        if counts[k] > 0:
            group_of[k] = len(groups)
            node = inst.cluster.nodes[cfg.pool]
            groups.append(ReplicaGroup(
                node.name, node.gpu_type, cfg.tp, cfg.threshold,
                max(cfg.threshold, inst.reference_threshold), cfg.block_size, counts[k],
                cfg.extrapolated))
    routes, outcomes = class_outcomes(inst, counts, rates, group_of)
    routes += spare_routes(inst, counts, group_of, routes)
    pol = inst.policy
    reconfig = gone_gpu_s
    if model.current is not None:
        for p, t in v.up:
            now = sum(counts[k] for k, c in enumerate(inst.configs) if (c.pool, c.tp) == (p, t))
            before = model.current.get((p, t), 0)
            reconfig += t * (pol.reload_s * max(0, now - before)
                             + pol.drain_s * max(0, before - now))
    served = sum(rates.values())
    drop = sum(inst.configs[k].accuracy_drop * r for (k, _), r in rates.items())
    terms = {name: (pulp.value(e) or 0.0) if solved else 0.0 for name, e in model.terms.items()}
    used = sum(inst.configs[k].tp * n for k, n in counts.items())
    reasons = plan_reasons(inst, status, gap, outcomes, used, reconfig, model.current, counts)
    if solved:
        reasons += layout_reasons(inst, counts, rates, model.current)
    solver = pol.solver.solver
    return Plan(
        groups=tuple(groups), routes=tuple(routes), classes=tuple(outcomes),
        status="no solution" if not solved else status, solver=solver, gap=gap,
        objective=(pulp.value(model.prob.objective) or 0.0) / OBJ_SCALE if solved else 0.0,
        served_norm=terms["served"], accuracy_drop=drop / served if served > 0 else 0.0,
        reconfig_gpu_s=reconfig, gpus_used=used, gpus_total=inst.cluster.gpus,
        wall_s=time.perf_counter() - start, reasons=tuple(reasons))
