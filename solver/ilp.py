"""The placement MILP in three readable parts: variables, objective, constraints.

Index sets: configurations k (node type p, TP degree t, threshold tau, block size B) and classes c.

Variables
    n[k]      integer >= 0   replicas of configuration k
    f[k, c]   continuous     fraction in [0, 1] of class c's rate routed to configuration k
                             (only where k meets c's quality floor and has capacity > 0 for c);
                             x[k, c] = rate_c f[k, c] below (fractions keep the coefficients
                             well scaled whatever the rates)
    up[p, t], down[p, t]     replicas of TP degree t on node type p loaded / drained against the
                             current plan (only when a current plan is given)

Objective (maximise; each tier normalised to [0, 1] and scaled by a weight well below the tier
before it, so the order served > accuracy > reconfiguration > spare holds, see ObjectiveWeights;
the whole is multiplied by OBJ_SCALE so that the lowest tiers' coefficients stay well above the LP
solvers' optimality tolerances, ~1e-7, up to ~10^4 GPUs):
    sum_c w_c sum_k x[k,c] / sum_c w_c rate_c                                       served
  - W_acc  * sum_{k,c} drop_k x[k,c] / (sum_c rate_c * max_k |drop_k|)               accuracy
  - W_rec  * sum_{p,t} t (reload_s up[p,t] + drain_s down[p,t]) / ((reload_s + drain_s) G)
  + W_spare * sum_k spare_k n[k] / G          spare capacity (Instance.spare_value: GPUs x
                                               capacity per GPU against the best)

Constraints
    capacity   sum_c x[k,c] / cap[k,c] <= n[k]        (time share of a replica between classes)
    demand     sum_k f[k,c] <= 1
    packing    for each node type p and each TP degree t it allows:
               sum_{k on p, t_k >= t} t_k n[k] <= nodes_p * t * floor(gpus_per_node_p / t)
               TP groups never span nodes. With power-of-two TP degrees every degree divides the
               larger ones, so filling nodes largest-first is optimal and these aggregate
               constraints are exact for any node size; for a power-of-two node size they reduce
               to the GPU budget sum_k t_k n[k] <= G_p (the only one emitted then).
    reconfig   up[p,t] >= sum_{k in (p,t)} n[k] - current[p,t];  down[p,t] >= current[p,t] - ...
"""

from __future__ import annotations

from dataclasses import dataclass

import pulp

from solver.instance import MIN_RATE, Instance
from solver.types import ObjectiveWeights

Pair = tuple[int, int]
OBJ_SCALE = 1e4  # the solver sees OBJ_SCALE x the normalised objective; plans report it unscaled


@dataclass
class Variables:
    n: dict[int, pulp.LpVariable]
    x: dict[Pair, pulp.LpVariable]  # routing fractions f[k, c]
    up: dict[Pair, pulp.LpVariable]
    down: dict[Pair, pulp.LpVariable]


@dataclass
class Model:
    prob: pulp.LpProblem
    vars: Variables
    terms: dict[str, pulp.LpAffineExpression]  # the normalised tiers, for the plan's report
    current: dict[Pair, int] | None  # replicas per (pool, tp) in the current plan


def pool_tp_pairs(inst: Instance) -> list[Pair]:
    return sorted({(k.pool, k.tp) for k in inst.configs})


def make_variables(prob: pulp.LpProblem, inst: Instance,
                   current: dict[Pair, int] | None) -> Variables:
    n = {}
    for i, k in enumerate(inst.configs):
        node = inst.cluster.nodes[k.pool]
        n[i] = prob.add_variable(f"n_{i}", lowBound=0, upBound=node.gpus // k.tp, cat="Integer")
    x = {}
    for i in range(len(inst.configs)):
        for c, cls in enumerate(inst.classes):
            if cls.rate >= MIN_RATE and inst.cap(i, c) > 0:
                x[i, c] = prob.add_variable(f"f_{i}_{c}", lowBound=0, upBound=1)
    up, down = {}, {}
    if current is not None:
        for p, t in pool_tp_pairs(inst):
            up[p, t] = prob.add_variable(f"up_{p}_{t}", lowBound=0)
            down[p, t] = prob.add_variable(f"down_{p}_{t}", lowBound=0)
    return Variables(n, x, up, down)


def objective_terms(inst: Instance, v: Variables) -> dict[str, pulp.LpAffineExpression]:
    classes = inst.classes
    offered = sum(w * c.rate for w, c in zip(inst.weights, classes, strict=True)
                  if c.rate >= MIN_RATE) or 1.0
    served = pulp.lpSum(inst.weights[c] * classes[c].rate / offered * var
                        for (_, c), var in v.x.items())
    drop_scale = max((abs(k.accuracy_drop) for k in inst.configs), default=0.0)
    total_rate = sum(c.rate for c in classes if c.rate >= MIN_RATE)
    if drop_scale > 0 and total_rate > 0:
        accuracy = pulp.lpSum(inst.configs[k].accuracy_drop * classes[c].rate
                              / (drop_scale * total_rate) * var for (k, c), var in v.x.items())
    else:
        accuracy = pulp.LpAffineExpression()
    gpus = inst.cluster.gpus
    pol = inst.policy
    per_gpu = pol.reload_s + pol.drain_s
    if v.up and per_gpu > 0:
        reconfig = pulp.lpSum(t * (pol.reload_s * v.up[p, t] + pol.drain_s * v.down[p, t])
                              / (per_gpu * gpus) for p, t in v.up)
    else:
        reconfig = pulp.LpAffineExpression()
    spare = pulp.lpSum(inst.spare_value(k) / gpus * var for k, var in v.n.items())
    return {"served": served, "accuracy": accuracy, "reconfig": reconfig, "spare": spare}


def set_objective(prob: pulp.LpProblem, inst: Instance,
                  terms: dict[str, pulp.LpAffineExpression],
                  weights: ObjectiveWeights | None = None) -> None:
    w = weights or inst.policy.weights
    prob += OBJ_SCALE * (terms["served"] - w.accuracy * terms["accuracy"]
                         - w.reconfig * terms["reconfig"] + w.spare * terms["spare"])


def add_constraints(prob: pulp.LpProblem, inst: Instance, v: Variables,
                    current: dict[Pair, int] | None) -> None:
    by_config: dict[int, list[tuple[int, pulp.LpVariable]]] = {}
    for (k, c), var in v.x.items():
        by_config.setdefault(k, []).append((c, var))
    for k, routed in sorted(by_config.items()):
        prob += (pulp.lpSum(var * (inst.classes[c].rate / inst.cap(k, c)) for c, var in routed)
                 <= v.n[k], f"capacity_{k}")
    for c in range(len(inst.classes)):
        routed = [var for (_, cc), var in v.x.items() if cc == c]
        if routed:
            prob += pulp.lpSum(routed) <= 1, f"demand_{c}"
    for p, node in enumerate(inst.cluster.nodes):
        degrees = sorted({k.tp for k in inst.configs if k.pool == p})
        for j, t in enumerate(degrees):
            usable = node.count * t * (node.gpus_per_node // t)
            if j > 0 and usable == node.gpus:
                continue  # implied by the budget row of the smallest degree
            prob += (pulp.lpSum(k.tp * v.n[i] for i, k in enumerate(inst.configs)
                                if k.pool == p and k.tp >= t) <= usable, f"packing_{p}_{t}")
    if current is not None:
        for p, t in v.up:
            replicas = pulp.lpSum(v.n[i] for i, k in enumerate(inst.configs)
                                  if k.pool == p and k.tp == t)
            cur = current.get((p, t), 0)
            prob += v.up[p, t] >= replicas - cur, f"reload_{p}_{t}"
            prob += v.down[p, t] >= cur - replicas, f"drain_{p}_{t}"


def build_model(inst: Instance, current: dict[Pair, int] | None = None,
                weights: ObjectiveWeights | None = None,
                slots: dict[Pair, int] | None = None) -> Model:
    """`weights`: other tier weights than the policy's; `slots`: replicas per (pool, TP degree)
    fixed in advance (the layout), the thresholds and routes left to choose."""
    prob = pulp.LpProblem("dilaserve_placement", pulp.LpMaximize)
    v = make_variables(prob, inst, current)
    terms = objective_terms(inst, v)
    set_objective(prob, inst, terms, weights)
    add_constraints(prob, inst, v, current)
    if slots is not None:
        for p, t in pool_tp_pairs(inst):
            prob += (pulp.lpSum(v.n[i] for i, k in enumerate(inst.configs)
                                if (k.pool, k.tp) == (p, t)) == slots.get((p, t), 0),
                     f"layout_{p}_{t}")
    return Model(prob, v, terms, current)
