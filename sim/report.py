"""Text tables of bench results (the CLI prints these; `--json` writes the same numbers)."""

from __future__ import annotations

import math

from sim.capacity_check import CapacityCell, ranking
from sim.experiments import PointResult
from sim.sensitivity import SensitivityRow


def _f(value: float, fmt: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else format(value, fmt)


def _thresholds(hist: dict[str, float]) -> str:
    top = sorted(hist.items(), key=lambda kv: -kv[1])[:3]
    return " ".join(f"{k}:{v:.0%}" for k, v in sorted(top, reverse=True)) or "-"


def _reconfig(counts: dict[str, int]) -> str:
    if not counts:
        return "-"
    return (f"{counts.get('plans', 0)}p +{counts.get('replicas_added', 0)} "
            f"-{counts.get('replicas_removed', 0)} ~{counts.get('threshold_changes', 0)}")


def point_table(results: list[PointResult], bound: float | None = None,
                unit: str = "s") -> str:
    """`unit`: latencies in "s" or "ms" (the shipped model's requests take milliseconds)."""
    scale = 1e3 if unit == "ms" else 1.0
    head = (f"{'policy':<21} {'attain':>6} {'goodput':>8} {'met':>6} {'late':>5} {'expir':>6} "
            f"{'reject':>6} {'shed':>5} {'p50 ' + unit:>6} {'p90 ' + unit:>6} "
            f"{'p99 ' + unit:>6} {'acc %':>6} "
            f"{'drop':>5} {'budget':>6}  {'thresholds':<22} {'reconfig':<14} layout")
    lines = [head]
    for r in results:
        s = r.summary
        p50, p90, p99 = (scale * x for x in (s.latency_p50_s, s.latency_p90_s,
                                              s.latency_p99_s))
        lines.append(
            f"{s.policy:<21} {s.attainment:>6.1%} {s.goodput:>8.2f} {s.met:>6} {s.late:>5} "
            f"{s.expired:>6} {s.rejected:>6} {s.shed:>5} {_f(p50, '6.1f'):>6} "
            f"{_f(p90, '6.1f'):>6} {_f(p99, '6.1f'):>6} "
            f"{_f(100 * s.mean_accuracy, '6.2f'):>6} {_f(s.accuracy_drop_points, '5.2f'):>5} "
            f"{_budget(s):>6}  "
            f"{_thresholds(s.thresholds):<22} {_reconfig(s.reconfigurations):<14} {s.layout}")
    if bound is not None:
        lines.append(f"{'upper bound':<21} {bound:>6.1%}   (GPU-seconds at the cheapest batching "
                     f"the cost model allows; see sim.experiments.upper_bound)")
    return "\n".join(lines)


def _budget(s) -> str:
    """The class budget in points, marked ! when a class spent more (- : no budget)."""
    if s.accuracy_budget is None:
        return "-"
    return f"{100 * s.accuracy_budget:.2f}{'' if s.within_budget else '!'}"


def legend() -> str:
    return ("attain = met / all requests (late, expired, rejected and shed are misses); goodput "
            "= met req/s; latency over finished requests; acc = mean expected accuracy of "
            "finished requests (quality profile), drop = points below the reference threshold "
            "(the accuracy budget spent); budget = the class's mean drop allowed, points (! = "
            "overspent); "
            "thresholds = token-weighted threshold per request, share of finished; reconfig = "
            "plans +added -removed ~threshold changes")


def sweep_lines(results: list[PointResult]) -> list[str]:
    lines = []
    for r in results:
        if r.sweep:
            cells = ", ".join(f"{layout} {att:.1%}" for layout, att, _ in r.sweep)
            lines.append(f"  {r.policy} sweep at x{r.rate_scale:g}/{r.slo_scale:g}: {cells}")
    return lines


def sensitivity_table(rows: list[SensitivityRow], policies: list[str]) -> str:
    cols = " ".join(f"{p:>14}" for p in policies)
    lines = [f"{'assumption':<14} {'factor':>6}  {'value':<42} {cols}  {'d-static':>8} "
             f"{'d-best':>7}"]
    for row in rows:
        if not row.results:
            lines.append(f"{row.assumption:<14} {row.factor:>6g}  {row.value}")
            continue
        att = {p: row.attainment(p) for p in policies if any(r.policy == p for r in row.results)}
        cells = " ".join(f"{att.get(p, math.nan):>14.1%}" for p in policies)
        d_static = _delta(att, "dilaserve", "static")
        d_best = _delta(att, "dilaserve", "best-static")
        lines.append(f"{row.assumption:<14} {row.factor:>6g}  {row.value:<42} {cells}  "
                     f"{d_static:>8} {d_best:>7}")
    return "\n".join(lines)


def _delta(att: dict[str, float], a: str, b: str) -> str:
    if a in att and b in att:
        return f"{100 * (att[a] - att[b]):+.1f}"
    return "-"


def capacity_table(cells: list[CapacityCell]) -> str:
    lines = [f"{'TP':>3} {'tau':>4} {'replicas':>8} {'predicted':>9} {'simulated':>9} "
             f"{'error':>7} {'rows':>5}  probes (req/s per replica: simulated attainment)"]
    for c in cells:
        probes = ", ".join(f"{r:.3g}: {a:.1%}" for r, a in c.probes)
        lines.append(f"{c.tp:>3} {c.threshold:>4g} {c.replicas:>8} {c.predicted:>9.3f} "
                     f"{c.simulated:>9.3f} {c.error:>+7.1%} {c.predicted_batch:>5.1f}  {probes}")
    return "\n".join(lines)


def ranking_line(cells: list[CapacityCell]) -> str:
    """TP degrees by capacity per GPU (best threshold per degree), predicted and simulated."""
    def order(field: str) -> str:
        return " > ".join(f"TP{tp}" for tp in ranking(cells, field))
    return f"per GPU, best threshold: predicted {order('predicted')}; simulated " \
           f"{order('simulated')}"


def result_json(result: PointResult, sweep_simulated: bool = False) -> dict:
    """One point's numbers for `--json` (live mode marks its best-static sweep as simulated)."""
    mark = {"simulated": True} if sweep_simulated else {}
    return {"policy": result.policy, "rate_scale": result.rate_scale,
            "slo_scale": result.slo_scale, **result.summary.to_dict(),
            "sweep": [{"layout": lay, "attainment": a, "accuracy": acc, **mark}
                      for lay, a, acc in result.sweep]}
