"""`dilaserve bench --mode compare`: the simulator held to the live system. Every request list
(seed x rate scale x SLO scale) runs live on the embedded cluster and simulated with the served
model's measured profiles: the same requests, arrivals, prompt and canvas lengths and deadlines
(`LiveWorkload.sim`), and the machine as measured on the cluster just before the live run
under the traffic of another request list at the same rate (`calibrate`: the steps' speed
against their profile, the serving loop's time per request outside steps, the RPC path).
Reported per policy and rate: live attainment and P50 latency (mean and spread over seeds)
beside the simulated ones, their difference, and the live run-to-run spread.

The simulated twin of a policy is the policy itself, except `dilaserve`, which live runs the
live planner with the cluster's reconfiguration settings (`controller_config`) and no plan
evaluator: its twin uses the same controller settings and no evaluator.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dilaserve.livebench.calibrate import (
    CALIBRATION_S,
    CALIBRATION_WARM_S,
    HostCalibration,
)
from dilaserve.livebench.command import (
    Log,
    make_live_setup,
    reference_for,
    run_policies,
    simulate,
)
from dilaserve.livebench.run import load_average
from sim.metrics import RunSummary
from sim.policies import PolicySpec

CALIBRATION_SEED = 1000
GOAL_ATTAINMENT_PTS = 5.0
GOAL_P50_REL = 0.15


@dataclass(frozen=True)
class Pair:
    policy: str
    rate_scale: float
    slo_scale: float
    seed: int
    live: RunSummary
    sim: RunSummary
    host: HostCalibration  # measured before the live run; the simulation runs with it


def calibration_seed_for(seeds: list[int]) -> int:
    """A seed none of the compared request lists uses."""
    seed = CALIBRATION_SEED
    while seed in seeds:
        seed += 1
    return seed


def sim_twin(spec: PolicySpec, settings) -> PolicySpec:
    if not spec.planned:
        return spec
    from orchestrator.runtime.controller_actor import controller_config

    return dataclasses.replace(spec, controller=controller_config(settings),
                               evaluate_plans=False)


def run_compare(args: argparse.Namespace, trace_for: Callable, policies: list[PolicySpec],
                rates: list[float], slos: list[float], seeds: list[int], log: Log) -> int:
    t0 = time.perf_counter()
    setups = {seed: make_live_setup(argparse.Namespace(**{**vars(args), "seed": seed}),
                                    trace_for(seed)) for seed in seeds}
    first = setups[seeds[0]]
    print(f"compare: {', '.join(p.name for p in policies)} live on the embedded cluster "
          f"({first.cluster.gpus} CPU replica slots, {first.cluster.nodes[0].gpu_type}) and "
          f"simulated with profiles {first.profiles.name}; seeds {seeds}; load average "
          f"{load_average():.2f}")
    keys = [(rate, slo, seed) for seed in seeds for slo in slos for rate in rates]
    workloads = {k: setups[k[2]].workload(k[0], k[1], k[2]) for k in keys}
    calibration_seed = calibration_seed_for(seeds)
    calibration = make_live_setup(argparse.Namespace(**{**vars(args), "seed": calibration_seed}),
                                  trace_for(calibration_seed))
    calibrations = {k: calibration.workload(k[0], k[1]) for k in keys}
    print(f"  before each live run the host is measured under {CALIBRATION_S:g} s (after "
          f"{CALIBRATION_WARM_S:g} s unmeasured) of the same trace and rate with seed "
          f"{calibration_seed} (other requests, the same load)")
    for note in (*first.notes, *workloads[keys[0]].sim.description):
        print(f"  {note}")
    reference = reference_for(first, list(workloads.values()))
    runs = run_policies(lambda key: setups[key[2]], policies, keys, workloads, reference,
                        args.port, log, calibrations=calibrations, warmup_s=args.warmup)
    pairs = []
    for spec, key, run, _ in runs:
        twin = sim_twin(spec, first.base.cluster)
        simulated = simulate(setups[key[2]], workloads[key], twin, key[2], run.host)
        pairs.append(Pair(run.summary.policy, key[0], key[1], key[2], run.summary, simulated,
                          run.host))
        log(f"  {run.summary.policy} x{key[0]:g}/{key[1]:g} seed {key[2]}: live "
            f"{run.summary.attainment:.1%} P50 {1e3 * run.summary.latency_p50_s:.1f} ms; sim "
            f"{simulated.attainment:.1%} P50 {1e3 * simulated.latency_p50_s:.1f} ms")
    rows = compare_rows(pairs)
    print()
    print(compare_table(rows))
    print(verdict(rows))
    for p in pairs:
        print(f"  {p.policy} x{p.rate_scale:g}/{p.slo_scale:g} seed {p.seed}: "
              f"{p.host.describe()}; live run: {'; '.join(p.live.notes)}")
    if args.plot:
        print(f"plot: {plot_compare(rows, args.plot, first)}")
    if args.json:
        out = {"mode": "compare", "seeds": seeds, "rows": rows,
               "pairs": [{"policy": p.policy, "rate_scale": p.rate_scale,
                          "slo_scale": p.slo_scale, "seed": p.seed,
                          "host": p.host.to_dict(),
                          "live": p.live.to_dict(), "sim": p.sim.to_dict()}
                         for p in pairs]}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1, default=str) + "\n")
        print(f"json: {args.json}")
    print(f"bench wall time {time.perf_counter() - t0:.0f} s; load average "
          f"{load_average():.2f}")
    return 0


def compare_rows(pairs: list[Pair]) -> list[dict]:
    """One row per (policy, rate scale, SLO scale): live and simulated over the seeds."""
    rows = []
    for key in dict.fromkeys((p.policy, p.rate_scale, p.slo_scale) for p in pairs):
        group = [p for p in pairs if (p.policy, p.rate_scale, p.slo_scale) == key]
        live_att = np.array([p.live.attainment for p in group])
        sim_att = np.array([p.sim.attainment for p in group])
        live_p50 = np.array([p.live.latency_p50_s for p in group]) * 1e3
        sim_p50 = np.array([p.sim.latency_p50_s for p in group]) * 1e3
        rows.append({
            "policy": key[0], "rate_scale": key[1], "slo_scale": key[2],
            "request_rate": float(np.mean([p.live.request_rate for p in group])),
            "seeds": [p.seed for p in group],
            "live_attainment": live_att.tolist(), "sim_attainment": sim_att.tolist(),
            "live_p50_ms": live_p50.tolist(), "sim_p50_ms": sim_p50.tolist(),
            "attainment_diff_pts": float(100 * (sim_att.mean() - live_att.mean())),
            "live_spread_pts": float(100 * (live_att.max() - live_att.min())),
            "p50_diff_rel": float(np.nanmean(sim_p50) / np.nanmean(live_p50) - 1),
            "live_p50_spread_rel": float((np.nanmax(live_p50) - np.nanmin(live_p50))
                                         / np.nanmean(live_p50)),
        })
    return rows


def compare_table(rows: list[dict]) -> str:
    lines = [f"{'policy':<21} {'rate':>5} {'req/s':>6}  {'live attain (min-max)':<24} "
             f"{'sim':>6} {'diff':>6} {'spread':>6}  {'live P50 ms (min-max)':<22} "
             f"{'sim':>6} {'diff':>6}"]
    for r in rows:
        la, lp = np.array(r["live_attainment"]), np.array(r["live_p50_ms"])
        lines.append(
            f"{r['policy']:<21} {r['rate_scale']:>5g} {r['request_rate']:>6.1f}  "
            f"{f'{la.mean():.1%} ({la.min():.1%}-{la.max():.1%})':<24} "
            f"{np.mean(r['sim_attainment']):>6.1%} {r['attainment_diff_pts']:>+6.1f} "
            f"{r['live_spread_pts']:>6.1f}  "
            f"{f'{np.nanmean(lp):.1f} ({np.nanmin(lp):.1f}-{np.nanmax(lp):.1f})':<22} "
            f"{np.nanmean(r['sim_p50_ms']):>6.1f} {100 * r['p50_diff_rel']:>+5.0f}%")
    return "\n".join(lines)


def verdict(rows: list[dict]) -> str:
    att = [abs(r["attainment_diff_pts"]) for r in rows]
    p50 = [abs(r["p50_diff_rel"]) for r in rows if np.isfinite(r["p50_diff_rel"])]
    spread = [r["live_spread_pts"] for r in rows]
    within = sum(a <= GOAL_ATTAINMENT_PTS for a in att)
    p50_within = sum(p <= GOAL_P50_REL for p in p50)
    return (f"diff = simulated - live (attainment in points; P50 relative to live); spread = live "
            f"max - min over the seeds.\nattainment: mean |diff| {np.mean(att):.1f} pts, "
            f"{within}/{len(att)} rows within {GOAL_ATTAINMENT_PTS:g} (goal); live spread mean "
            f"{np.mean(spread):.1f} pts. P50: mean |diff| {100 * np.mean(p50):.0f}%, "
            f"{p50_within}/{len(p50)} rows within {100 * GOAL_P50_REL:.0f}% (goal)")


def plot_compare(rows: list[dict], path: str | Path, setup) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_att, ax_p50) = plt.subplots(1, 2, figsize=(9.0, 3.6))
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, policy in enumerate(policies):
        mine = sorted((r for r in rows if r["policy"] == policy),
                      key=lambda r: r["request_rate"])
        x = [r["request_rate"] for r in mine]
        color = colors[i % len(colors)]
        for ax, live_key, sim_key, scale in ((ax_att, "live_attainment", "sim_attainment", 100),
                                             (ax_p50, "live_p50_ms", "sim_p50_ms", 1)):
            live = [scale * np.array(r[live_key]) for r in mine]
            mean = [np.nanmean(v) for v in live]
            err = [[m - np.nanmin(v) for m, v in zip(mean, live)],
                   [np.nanmax(v) - m for m, v in zip(mean, live)]]
            ax.errorbar(x, mean, yerr=err, color=color, marker="o", capsize=3,
                        label=f"{policy} live")
            ax.plot(x, [scale * np.nanmean(r[sim_key]) for r in mine], color=color,
                    linestyle="--", marker="x", label=f"{policy} sim")
    ax_att.set_ylabel("SLO attainment (%)")
    ax_att.set_ylim(0, 102)
    ax_p50.set_ylabel("P50 latency (ms)")
    ax_p50.set_ylim(bottom=0)
    for ax in (ax_att, ax_p50):
        ax.set_xlabel("request rate (req/s)")
        ax.grid(alpha=0.3)
    ax_att.legend(fontsize=7)
    seeds = sorted({s for r in rows for s in r["seeds"]})
    fig.suptitle(f"live (mean, min-max over seeds {seeds}) vs simulated: "
                 f"{setup.cluster.gpus} CPU replicas of {setup.profiles.name}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
