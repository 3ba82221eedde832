"""The accuracy-budget sweep's report: one row per policy, point and budget with the budget it
spent, the issue's goals checked (met / not met), and attainment against accuracy drop drawn.

Goals (issue 20, at budget 1 point unless said):
- `dilaserve >= best-static + 5`: dilaserve's attainment at least 5 points above best-static's at
  both rates (the 40% one and 1.25x it) on both traces;
- `dilaserve within 1 of static+edf+threshold`: never more than 1 point below it at any swept
  load (checked at every budget swept there);
- `light load: admission never below static`: at the trace's own rate, every policy with
  admission attains at least what static does;
- `budgets kept`: every run with a budget spent no more than it (best-static's pick is among the
  layouts that kept it).
"""

from __future__ import annotations

from pathlib import Path

from dilaserve.cli.bench_sweep import MAIN_BUDGET, Point, run_key, summary_of

ORDER = ("static", "static+edf", "static+edf+threshold", "best-static", "dilaserve")


def rows_at(point: Point, budget: float, results: dict[str, dict]) -> dict[str, dict]:
    """policy -> its run's numbers at this point and budget (best-static: its pick)."""
    from sim.experiments import best_of_sweep

    rows = {name: results[run_key(point, name, None)] for name in ORDER[:2]}
    rows["static+edf+threshold"] = results[run_key(point, "static+edf+threshold", budget)]
    prefix = run_key(point, "best-static", budget) + "_"
    sweep = [data for key, data in results.items() if key.startswith(prefix)]
    best = best_of_sweep([summary_of(d) for d in sweep])
    pick = next(d for d in sweep if d["layout"] == best.layout)
    rows["best-static"] = {**pick, "sweep": [(d["layout"], d["attainment"],
                                              d["accuracy_drop_points"]) for d in sweep]}
    rows["dilaserve"] = results[run_key(point, "dilaserve", budget)]
    return rows


def report(points: list[Point], results: dict[str, dict], plot: Path) -> tuple[str, dict]:
    lines = [f"{'trace':<5} {'span':<6} {'load':<6} {'rate':>6} {'budget':>6}  {'policy':<21} "
             f"{'attain':>6} {'drop':>5} {'kept':>4} {'late':>5} {'expir':>6} {'reject':>6} "
             f"{'shed':>5}"
             f"  layout"]
    table: list[tuple[Point, float, dict[str, dict]]] = []
    for point in points:
        for budget in point.budgets:
            rows = rows_at(point, budget, results)
            table.append((point, budget, rows))
            for name in ORDER:
                r = rows[name]
                kept = "yes" if r.get("within_budget", True) else "NO"
                lines.append(
                    f"{point.trace:<5} {point.span:<6} {point.load:<6} x{point.rate_scale:<5g} "
                    f"{100 * budget:>6.1f}  {name:<21} {r['attainment']:>6.1%} "
                    f"{r['accuracy_drop_points']:>5.2f} {kept:>4} {r['late']:>5} "
                    f"{r['expired']:>6} {r['rejected']:>6} {r['shed']:>5}  {r['layout']}")
            lines.append("")
    checks = _checks(table)
    lines.append("goals (issue 20):")
    for name, check in checks.items():
        lines.append(f"- {name}: {'met' if check['met'] else 'NOT MET'}")
        lines += [f"    {d}" for d in check["details"]]
    _plot(table, plot)
    lines.append(f"plot: {plot}")
    return "\n".join(lines), checks


def _att(rows: dict[str, dict], name: str) -> float:
    return 100.0 * rows[name]["attainment"]


def _checks(table) -> dict[str, dict]:
    best, within, light, kept = [], [], [], []
    for point, budget, rows in table:
        where = f"{point.trace} {point.span} {point.load} (x{point.rate_scale:g}), budget " \
                f"{100 * budget:g}"
        d = _att(rows, "dilaserve")
        if point.load in ("40%", "1.25x") and budget == MAIN_BUDGET:
            gap = d - _att(rows, "best-static")
            best.append((gap >= 5.0, f"{where}: dilaserve {d:.1f} vs best-static "
                                     f"{_att(rows, 'best-static'):.1f} ({gap:+.1f})"))
        gap = d - _att(rows, "static+edf+threshold")
        within.append((gap >= -1.0, f"{where}: dilaserve {d:.1f} vs static+edf+threshold "
                                    f"{_att(rows, 'static+edf+threshold'):.1f} ({gap:+.1f})"))
        if point.load == "light":
            s = _att(rows, "static")
            for name in ORDER[1:]:
                light.append((_att(rows, name) >= s,
                              f"{where}: {name} {_att(rows, name):.1f} vs static {s:.1f}"))
        for name in ORDER[2:]:
            if not rows[name].get("within_budget", True):
                kept.append((False, f"{where}: {name} spent "
                                    f"{rows[name]['accuracy_drop_points']:.2f}"))
    kept = kept or [(True, "every budgeted run (best-static: its pick) within its budget")]
    goals = {"dilaserve >= best-static + 5 (budget 1, both rates, both traces)": best,
             "dilaserve never more than 1 point below static+edf+threshold": within,
             "light load: no policy with admission below static": light,
             "budgets kept": kept}
    return {name: {"met": all(ok for ok, _ in items), "details": [d for _, d in items]}
            for name, items in goals.items()}


def _plot(table, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys((p.trace, p.span, p.load, p.rate_scale) for p, _, _ in table))
    cols = min(3, len(panels))
    nrows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(5.0 * cols, 4.0 * nrows), squeeze=False)
    markers = dict(zip(ORDER, "os^Dv"))
    colors = {0.005: "tab:green", 0.01: "tab:blue", 0.02: "tab:red"}
    for ax, panel in zip(axes.flat, panels):
        for point, budget, rows in table:
            if (point.trace, point.span, point.load, point.rate_scale) != panel:
                continue
            for name in ORDER:
                r = rows[name]
                ax.scatter(r["accuracy_drop_points"], 100 * r["attainment"],
                           marker=markers[name], color=colors.get(budget, "black"),
                           label=f"{name}, budget {100 * budget:g}", s=36, alpha=0.8)
            ax.axvline(100 * budget, color=colors.get(budget, "black"), linestyle=":",
                       linewidth=0.8)
        trace, span, load, rate = panel
        ax.set_title(f"{trace} {span}, {load} (x{rate:g})", fontsize=9)
        ax.set_xlabel("accuracy drop (points, mean of finished)")
        ax.set_ylabel("SLO attainment (%)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    fig.legend(unique.values(), unique.keys(), fontsize=7, loc="lower right", ncol=3)
    fig.suptitle("attainment against accuracy drop, budgets 0.5 / 1 / 2 points (dotted: the "
                 "budget)", fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
