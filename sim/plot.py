"""Attainment curves of a sweep: one line per policy, against request rate (one panel per SLO
scale) and against SLO scale (one panel per rate scale), drawn with matplotlib's Agg backend."""

from __future__ import annotations

from pathlib import Path

from sim.experiments import PointResult


def plot_attainment(results: list[PointResult], path: str | Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = sorted({r.rate_scale for r in results})
    slos = sorted({r.slo_scale for r in results})
    policies = list(dict.fromkeys(r.policy for r in results))
    panels = []
    if len(rates) > 1:
        panels += [("rate", s) for s in slos]
    if len(slos) > 1:
        panels += [("slo", r) for r in rates]
    if not panels:
        panels = [("rate", slos[0])]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 4.0), squeeze=False)
    for ax, (kind, fixed) in zip(axes[0], panels):
        for policy in policies:
            if kind == "rate":
                pts = sorted((r.summary.request_rate, r.summary.attainment) for r in results
                             if r.policy == policy and r.slo_scale == fixed)
            else:
                pts = sorted((r.slo_scale, r.summary.attainment) for r in results
                             if r.policy == policy and r.rate_scale == fixed)
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, [100 * y for y in ys], marker="o", label=policy)
        ax.axhline(90, color="grey", linestyle=":", linewidth=1)
        ax.set_ylim(0, 102)
        ax.set_ylabel("SLO attainment (%)")
        if kind == "rate":
            ax.set_xlabel("request rate (req/s)")
            ax.set_title(f"SLO scale {fixed:g}")
        else:
            ax.set_xlabel("SLO scale")
            ax.set_title(f"rate scale x{fixed:g}")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
