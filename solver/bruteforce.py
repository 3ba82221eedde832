"""Exhaustive reference for small instances, used by the tests to check the MILP.

Enumerates every vector of integer replica counts whose TP groups can be packed into the nodes
(checked by actually packing them, largest first, node by node: an independent check of the ILP's
aggregate packing rows), and for each solves the routing LP directly with highspy (not through
PuLP or `solver.ilp`), then adds the count-only tiers (reconfiguration, spare GPUs). Returns the
best objective, its served tier and the counts. Exponential: keep instances tiny.
"""

from __future__ import annotations

from dataclasses import dataclass

import highspy

from solver.instance import MIN_RATE, Instance


@dataclass(frozen=True)
class BruteResult:
    objective: float
    served_norm: float
    counts: tuple[int, ...]  # per configuration
    evaluated: int  # count vectors tried


def packs(inst: Instance, counts: tuple[int, ...]) -> bool:
    """Can these replicas be placed, each TP group inside one node? First-fit decreasing, which is
    optimal when every item size divides the larger ones (powers of two)."""
    for p, node in enumerate(inst.cluster.nodes):
        items = sorted((k.tp for k, n in zip(inst.configs, counts, strict=True) if k.pool == p
                        for _ in range(n)), reverse=True)
        free = [node.gpus_per_node] * node.count
        for size in items:
            for j, f in enumerate(free):
                if f >= size:
                    free[j] -= size
                    break
            else:
                return False
    return True


def _count_vectors(inst: Instance, max_vectors: int):
    ub = [inst.cluster.nodes[k.pool].gpus // k.tp for k in inst.configs]
    budget = {p: n.gpus for p, n in enumerate(inst.cluster.nodes)}
    out: list[tuple[int, ...]] = []

    def rec(i: int, acc: list[int], used: dict[int, int]) -> None:
        if len(out) > max_vectors:
            raise ValueError(f"brute force: more than {max_vectors} count vectors; shrink the "
                             f"instance")
        if i == len(ub):
            out.append(tuple(acc))
            return
        k = inst.configs[i]
        for n in range(ub[i] + 1):
            if used[k.pool] + n * k.tp > budget[k.pool]:
                break
            used[k.pool] += n * k.tp
            rec(i + 1, acc + [n], used)
            used[k.pool] -= n * k.tp

    rec(0, [], dict.fromkeys(budget, 0))
    return [c for c in out if packs(inst, c)]


def _routing_lp(inst: Instance, counts: tuple[int, ...]) -> tuple[float, float]:
    """max served - W_acc * accuracy over the routing x for fixed counts; (value, served tier)."""
    classes = inst.classes
    offered = sum(w * c.rate for w, c in zip(inst.weights, classes, strict=True)
                  if c.rate >= MIN_RATE) or 1.0
    drop_scale = max((abs(k.accuracy_drop) for k in inst.configs), default=0.0)
    total = sum(c.rate for c in classes if c.rate >= MIN_RATE)
    w_acc = inst.policy.weights.accuracy
    pairs = [(k, c) for k in range(len(inst.configs)) for c in range(len(classes))
             if classes[c].rate >= MIN_RATE and inst.cap(k, c) > 0 and counts[k] > 0]
    if not pairs:
        return 0.0, 0.0
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    served_coef = []
    for k, c in pairs:  # variables: the fraction of class c's rate routed to config k
        rate = classes[c].rate
        served = inst.weights[c] * rate / offered
        acc = (inst.configs[k].accuracy_drop * rate / (drop_scale * total)
               if drop_scale > 0 and total > 0 else 0.0)
        h.addVar(0.0, 1.0)
        h.changeColCost(h.getNumCol() - 1, -(served - w_acc * acc))  # HiGHS minimises
        served_coef.append(served)
    for k in {k for k, _ in pairs}:
        idx = [i for i, (kk, _) in enumerate(pairs) if kk == k]
        h.addRow(-highspy.kHighsInf, float(counts[k]), len(idx), idx,
                 [classes[pairs[i][1]].rate / inst.cap(k, pairs[i][1]) for i in idx])
    for c in {c for _, c in pairs}:
        idx = [i for i, (_, cc) in enumerate(pairs) if cc == c]
        h.addRow(-highspy.kHighsInf, 1.0, len(idx), idx, [1.0] * len(idx))
    h.run()
    x = list(h.getSolution().col_value)
    return -h.getInfo().objective_function_value, sum(a * b for a, b in zip(served_coef, x,
                                                                               strict=True))


def count_tiers(inst: Instance, counts: tuple[int, ...],
                current: dict[tuple[int, int], int] | None) -> float:
    """-W_rec * reconfiguration + W_spare * spare capacity, both normalised as in solver.ilp."""
    pol, gpus = inst.policy, inst.cluster.gpus
    spare = sum(inst.spare_value(k) * n for k, n in enumerate(counts)) / gpus
    value = pol.weights.spare * spare
    per_gpu = pol.reload_s + pol.drain_s
    if current is not None and per_gpu > 0:
        cost = 0.0
        for p, t in {(k.pool, k.tp) for k in inst.configs}:
            now = sum(n for k, n in zip(inst.configs, counts, strict=True)
                      if (k.pool, k.tp) == (p, t))
            before = current.get((p, t), 0)
            cost += t * (pol.reload_s * max(0, now - before) + pol.drain_s * max(0, before - now))
        value -= pol.weights.reconfig * cost / (per_gpu * gpus)
    return value


def brute_force(inst: Instance, current: dict[tuple[int, int], int] | None = None,
                max_vectors: int = 20000) -> BruteResult:
    best: BruteResult | None = None
    vectors = _count_vectors(inst, max_vectors)
    for counts in vectors:
        lp, served = _routing_lp(inst, counts)
        value = lp + count_tiers(inst, counts, current)
        if best is None or value > best.objective + 1e-12:
            best = BruteResult(value, served, counts, len(vectors))
    assert best is not None  # the all-zero vector always packs
    return best
