"""Why the plan's layouts: the predicted capacity of every layout a class may use, and for each
replica group that serves it, why that one (plan notes; `dilaserve plan` prints them)."""

from __future__ import annotations

from solver.instance import Instance

_SAME = 1e-6  # relative: capacities per GPU closer than this are equal


def layout_reasons(inst: Instance, counts: dict[int, int],
                   rates: dict[tuple[int, int], float], current: dict | None) -> list[str]:
    out = []
    if inst.policy.layout_first:
        out.append("layout first: the replicas per TP degree were chosen for the most capacity "
                   "at any threshold the classes allow (then the fewest reloads, then the most "
                   "capacity per GPU), the thresholds within that layout for accuracy")
    for c, cls in enumerate(inst.classes):
        usable = [k for k in range(len(inst.configs)) if inst.cap(k, c) > 0]
        if not usable or cls.rate <= 0:
            continue
        out.append(_capacities(inst, c, usable))
        best = max(usable, key=lambda k: _per_gpu(inst, k, c))
        planned = {k for (k, cc), r in rates.items() if cc == c and r > 0 and counts[k] > 0}
        for k in sorted(planned):
            out.append(f"class {cls.name} on {_name(inst, k)} x {counts[k]}: "
                       f"{_why(inst, c, k, best, usable, current)}")
        loaded = {k for (k, _), r in rates.items() if r > 0}
        for k in sorted(k for k in usable if counts[k] > 0 and k not in loaded):
            out.append(f"class {cls.name} on {_name(inst, k)} x {counts[k]}: spare (no "
                       f"planned load), {_per_gpu(inst, k, c):.3g} req/s per GPU; the router "
                       f"spreads the class over it with the rest (the spare tier fills GPUs "
                       f"with the most capacity per GPU)")
    return out


def _per_gpu(inst: Instance, k: int, c: int) -> float:
    return inst.cap(k, c) / inst.configs[k].tp


def _name(inst: Instance, k: int) -> str:
    cfg = inst.configs[k]
    pool = f" on {cfg.node_type}" if len(inst.cluster.nodes) > 1 else ""
    return f"TP={cfg.tp} tau={cfg.threshold:g}{pool}"


def _capacities(inst: Instance, c: int, usable: list[int]) -> str:
    """The best threshold of each (pool, TP degree), by capacity per GPU."""
    best: dict[tuple[int, int], int] = {}
    for k in usable:
        key = (inst.configs[k].pool, inst.configs[k].tp)
        if key not in best or _per_gpu(inst, k, c) > _per_gpu(inst, best[key], c):
            best[key] = k
    ranked = sorted(best.values(), key=lambda k: -_per_gpu(inst, k, c))
    cells = []
    for k in ranked:
        cap = inst.capacity[k][c]
        cells.append(f"{_name(inst, k)} {cap.rate:.3g} ({_per_gpu(inst, k, c):.3g}/GPU, "
                     f"{cap.batch:.0f} rows, {cap.step_s:.2g} s steps)")
    cls = inst.classes[c]
    return (f"class {cls.name}: predicted capacity per replica at {cls.target_attainment:.0%} "
            f"attainment (req/s), best threshold per TP degree, most per GPU first: "
            + "; ".join(cells))


def _why(inst: Instance, c: int, k: int, best: int, usable: list[int],
         current: dict | None) -> str:
    cfg, top = inst.configs[k], inst.configs[best]
    cap, mine, most = inst.capacity[k][c], _per_gpu(inst, k, c), _per_gpu(inst, best, c)
    head = f"{cap.rate:.3g} req/s per replica, {mine:.3g} per GPU"
    if mine >= most * (1 - _SAME):
        return f"{head}, the most per GPU of the {len(usable)} layouts the class may use"
    if cfg.tp == top.tp and cfg.pool == top.pool:
        gain = 100 * (top.accuracy_drop - cfg.accuracy_drop)
        return (f"{head}; tau={top.threshold:g} would take {most:.3g} per GPU, but the load "
                f"fits at tau={cfg.threshold:g}, {gain:.2g} accuracy points better "
                f"(the accuracy tier)")
    kept = current is not None and current.get((cfg.pool, cfg.tp), 0) > 0
    why = ("kept from the running plan: moving it to another TP degree reloads its GPUs "
           "(the reconfiguration tier)" if kept else
           "it packs GPUs the better layouts leave over, or serves at a better accuracy")
    return f"{head}, {100 * (1 - mine / most):.0f}% less than {_name(inst, best)}: {why}"
