"""The printed result of `dilaserve bench-worker`: tables and the issue's goals, met or not."""

from __future__ import annotations

import math

BASELINE = "fcfs+none"
CANDIDATE = "edf+threshold"
GOAL_POINT = "1.5"  # x capacity: where the attainment goals are judged


def format_report(r: dict) -> str:
    lines = [f"reproduce: {r['command']}"]
    u = r["unloaded"]
    lines.append(
        f"{r['prompts']} held-out prompts; unloaded latency median {u['median_ms']:.1f} ms, "
        f"p90 {u['p90_ms']:.1f} ms; deadlines = {r['slo_scale']:g} x each request's unloaded "
        f"latency; reference accuracy {u['reference_accuracy']:.1%}; admission control "
        f"{r['admission']} in every configuration"
    )
    capacity = r["capacity"]
    lines.append(
        f"capacity (fcfs+none keeps >= 90% attainment, Poisson): {capacity:.1f} req/s "
        f"(tried: {', '.join(f'{rate:.1f}->{a:.0%}' for rate, a in r['capacity_tried'])})"
    )
    lines += ["", _attainment_table(r), "", _quality_table(r), "", _cost_table(r)]
    goals = evaluate_goals(r)
    if goals:
        lines += ["", "goals:"]
        lines += [f"  [{'met' if ok else 'NOT met'}] {text}" for text, ok in goals]
    return "\n".join(lines)


def _arrivals(r: dict, process: str) -> str:
    return f"gamma(cv {r['gamma_cv']:g})" if process == "gamma" else process


def _attainment_table(r: dict) -> str:
    mults = [str(m) for m in r["multipliers"]]
    head = f"{'config':14s} {'arrivals':14s}" + "".join(f"{m + 'x':>7s}" for m in mults)
    head += f" {'goodput':>9s} {'P50 ms':>8s} {'P99 ms':>8s} {'acc':>6s} {'tau':>5s}"
    out = [f"attainment at multiples of capacity; latency, accuracy, tau at {_at(r)}x", head]
    for name, c in r["configs"].items():
        for process, by_mult in c["trials"].items():
            cells = "".join(
                f"{by_mult[m]['attainment']:7.1%}" if m in by_mult else f"{'-':>7s}" for m in mults
            )
            point = by_mult.get(_at(r)) or next(iter(by_mult.values()))
            goodput = f"{c['goodput']:9.1f}" if process == "poisson" else f"{'':9s}"
            out.append(
                f"{name:14s} {_arrivals(r, process):14s}{cells} {goodput} "
                f"{point['p50_ms']:8.1f} {point['p99_ms']:8.1f} {point['accuracy']:6.1%} "
                f"{point['mean_threshold']:5.2f}"
            )
    out.append("goodput: the highest Poisson rate (req/s) sustained at >= 90% attainment")
    return "\n".join(out)


def _at(r: dict) -> str:
    mults = [str(m) for m in r["multipliers"]]
    return GOAL_POINT if GOAL_POINT in mults else mults[-1]


def _quality_table(r: dict) -> str:
    first = next(iter(r["configs"].values()))["pooled"]
    task_names = sorted(first.get("per_task", {}))
    out = [
        "accuracy over every finished request (all trials), against the reference setting "
        "on the same prompts",
        f"{'config':14s} {'finished':>8s} {'acc':>6s} {'ref':>6s} {'drop':>6s} {'tau':>5s} "
        + " ".join(f"{t:>6s}" for t in task_names),
    ]
    for name, c in r["configs"].items():
        p = c["pooled"]
        drop = (p["reference"] - p["accuracy"]) * 100
        tau = p.get("mean_threshold", math.nan)
        out.append(
            f"{name:14s} {p.get('finished', 0):8d} {p['accuracy']:6.1%} {p['reference']:6.1%} "
            f"{drop:5.1f}p {tau:5.2f} "
            + " ".join(f"{p['per_task'].get(t, math.nan):6.1%}" for t in task_names)
        )
    return "\n".join(out)


def _cost_table(r: dict) -> str:
    out = ["step-cost model (online; held-out: each step predicted before it is fitted)"]
    medians = []
    for name, c in r["configs"].items():
        s = c["stats"]
        medians.append(s["median_step_ms"])
        out.append(
            f"  {name:14s} median abs error {s['step_cost_error']:6.1%} over the last "
            f"{s['step_cost_samples']} of {s['steps']} steps (offline profile alone "
            f"{s.get('step_cost_prior_error', math.nan):.1%}); "
            f"median step {s['median_step_ms']:.2f} ms"
        )
    step_ms = min(medians) if medians else math.nan
    out.append(f"scheduler time per step (plan + observe), vs the median step {step_ms:.2f} ms")
    for d in r["scheduler"]:
        share = d["median_us"] / (step_ms * 1e3) if step_ms > 0 else math.nan
        out.append(
            f"  depth {d['depth']:4d}: median {d['median_us']:7.1f} us, p99 {d['p99_us']:7.1f} us"
            f" ({share:.1%} of the median step)"
        )
    return "\n".join(out)


def evaluate_goals(r: dict) -> list[tuple[str, bool]]:
    configs = r["configs"]
    goals: list[tuple[str, bool]] = []
    if BASELINE in configs and CANDIDATE in configs:
        for process in configs[CANDIDATE]["trials"]:
            base = configs[BASELINE]["trials"].get(process, {}).get(GOAL_POINT)
            cand = configs[CANDIDATE]["trials"][process].get(GOAL_POINT)
            if base and cand:
                gain = (cand["attainment"] - base["attainment"]) * 100
                goals.append(
                    (
                        f"{_arrivals(r, process)} at 1.5x capacity: edf+threshold "
                        f"{cand['attainment']:.1%} vs fcfs+none {base['attainment']:.1%} "
                        f"({gain:+.1f} points; goal >= +30)",
                        gain >= 30,
                    )
                )
            other = configs.get("edf+none", {}).get("trials", {}).get(process, {}).get(GOAL_POINT)
            if cand and other:
                gain = (cand["attainment"] - other["attainment"]) * 100
                goals.append(
                    (
                        f"{_arrivals(r, process)} at 1.5x capacity: edf+threshold vs edf+none "
                        f"{other['attainment']:.1%} ({gain:+.1f} points; goal: a gain)",
                        gain > 0,
                    )
                )
        ratio = configs[CANDIDATE]["goodput"] / r["capacity"] if r["capacity"] else math.nan
        goals.append((f"sustained rate {ratio:.2f}x capacity (goal >= 1.5x)", ratio >= 1.5))
        p = configs[CANDIDATE]["pooled"]
        drop = (p["reference"] - p["accuracy"]) * 100
        goals.append((f"accuracy drop {drop:.1f} points vs the reference (goal <= 1)", drop <= 1))
    step_ms = min(c["stats"]["median_step_ms"] for c in configs.values())
    for d in r["scheduler"]:
        share = d["median_us"] / (step_ms * 1e3)
        goals.append(
            (
                f"scheduler at depth {d['depth']}: {share:.1%} of the median step (goal <= 3%)",
                share <= 0.03,
            )
        )
    errors = {n: c["stats"]["step_cost_error"] for n, c in configs.items()}
    worst = max(errors.values())
    goals.append((f"step-cost median error, worst config {worst:.1%} (goal <= 10%)", worst <= 0.10))
    return goals
