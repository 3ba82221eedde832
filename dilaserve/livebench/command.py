"""`dilaserve bench --mode live`: the policies on the embedded cluster (one cluster per policy,
configured to it), or one running router (`--target`), with the simulated mode's tables, JSON and
plots."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from dilaserve.livebench.calibrate import HostCalibration
from dilaserve.livebench.mapping import ClassDeadlines, LivePolicy, live_policy
from dilaserve.livebench.reference import reference_correct
from dilaserve.livebench.run import ClusterSession, LiveRun, load_average, run_on_target
from dilaserve.livebench.setup import (
    LiveSetup,
    embedded_cluster,
    measured_tp_only,
    served_profiles,
)
from dilaserve.livebench.workload import LiveWorkload
from sim.experiments import PointResult, best_of_sweep, static_layouts
from sim.policies import POLICIES, PolicySpec
from sim.report import result_json
from sim.simulator import SimOptions, Simulation
from sim.workload import SimClass

Log = Callable[[str], None]


def parse_target(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--target: expected HOST:PORT of a running router (dilaserve serve), "
                         f"got {text!r}")
    return text


def make_live_setup(args: argparse.Namespace, trace) -> LiveSetup:
    from dilaserve.policy.cluster_loader import load_cluster_policy

    base = load_cluster_policy(args.policy)
    profiles = served_profiles(base)
    if args.profiles not in (None, "shipped", profiles.name) and \
            Path(args.profiles).resolve() != Path(base.cluster.profiles or "").resolve():
        raise ValueError(f"--profiles: live runs use the served model's profiles "
                         f"({profiles.name}); leave the flag out")
    classes = tuple(SimClass(name, 1.0, args.max_accuracy_drop, None, args.target_attainment)
                    for name in trace.classes())
    base, note = measured_tp_only(base, profiles)
    return LiveSetup(base, profiles, embedded_cluster(base, profiles), classes, trace,
                     args.seed, args.scale_mode, (note,) if note else ())


def class_deadlines(workload: LiveWorkload) -> dict[str, ClassDeadlines]:
    """Per class, its requests' deadlines (ms): the mean (what the planner plans for) and the
    longest (the class's served deadline, which cuts none of them)."""
    by_class: dict[str, list[float]] = {}
    for r in workload.requests:
        by_class.setdefault(r.slo_class, []).append(r.deadline_ms)
    return {name: ClassDeadlines.of(v) for name, v in by_class.items()}


def mapped(spec: PolicySpec, setup: LiveSetup, workload: LiveWorkload, port: int) -> LivePolicy:
    deadlines = class_deadlines(workload)
    for c in setup.classes:
        deadlines.setdefault(c.name, ClassDeadlines.fixed(1000.0))
    return live_policy(spec, setup.base, setup.classes, deadlines, setup.profiles, port)


def simulated_sweep(setup: LiveSetup, workload: LiveWorkload, spec: PolicySpec):
    """best-static's sweep, simulated on this very workload: (best layout, the sweep)."""
    layouts = [lay for lay in static_layouts(setup.bench_setup())
               if lay.tp <= setup.base.cluster.max_tp]
    runs = [Simulation(workload.sim, setup.cluster, setup.profiles, spec.with_layout(layout),
                       SimOptions(seed=setup.seed)).run() for layout in layouts]
    best = best_of_sweep(runs)
    layout = next(lay for lay in layouts if lay.describe() == best.layout)
    return layout, tuple((s.layout, s.attainment, s.mean_accuracy) for s in runs)


def simulate(setup: LiveSetup, workload: LiveWorkload, spec: PolicySpec, seed: int,
             host: HostCalibration | None = None):
    """`host`: with the machine as measured under traffic (compare mode); none: the
    simulator's defaults (the profiles alone)."""
    options = host.options(seed) if host is not None else SimOptions(seed=seed)
    return Simulation(workload.sim, setup.cluster, setup.profiles, spec, options).run()


def run_policies(setup_for: Callable[[tuple], LiveSetup], policies: list[PolicySpec],
                 keys: list[tuple], workloads: dict, reference: dict, port: int,
                 log: Log, calibrations: dict | None = None, warmup_s: float = 0.0,
                 ) -> list[tuple[PolicySpec, tuple, LiveRun, tuple]]:
    """Each policy on its own cluster, at every key (a workload: rate scale, SLO scale and, in
    compare mode, seed): a fixed layout serves every key on one cluster; a planned policy (and
    best-static, whose layout may differ per workload) gets a fresh cluster per key, so no run
    inherits another's plans. Returns (policy, key, run, best-static's simulated sweep).
    `calibrations`: key -> a workload whose traffic the host is measured under before that
    key's replay (`calibrate`); `warmup_s`: a planned policy first serves that much of the
    workload unscored."""
    calibrations = calibrations or {}
    out = []
    for spec in policies:
        if spec.layout is not None:
            live = mapped(spec, setup_for(keys[0]), workloads[keys[0]], port)
            with ClusterSession(live, log) as session:
                for key in keys:
                    run = session.run(workloads[key], reference, calibrations.get(key))
                    out.append((spec, key, run, ()))
                    _log_run(run, log)
            continue
        for key in keys:
            setup, workload, sweep, run_spec = setup_for(key), workloads[key], (), spec
            if spec.hindsight:
                layout, sweep = simulated_sweep(setup, workload, spec)
                log(f"  best-static: the simulator's sweep on this workload picks "
                    f"{layout.describe()}; running it live")
                run_spec = spec.with_layout(layout)
            live = mapped(run_spec, setup, workload, port)
            if spec.hindsight:
                live = dataclasses.replace(live, name=spec.name,
                                           layout=f"{live.layout} (simulator's pick)")
            with ClusterSession(live, log) as session:
                run = session.run(workload, reference, calibrations.get(key),
                                  warmup_s if spec.planned else 0.0)
            out.append((run_spec if spec.hindsight else spec, key, run, sweep))
            _log_run(run, log)
    return out


def _result(point: tuple[float, float], run: LiveRun, sweep: tuple = ()) -> PointResult:
    return PointResult(point[0], point[1], run.summary, sweep)


def _log_run(run: LiveRun, log: Log) -> None:
    s = run.summary
    log(f"  {s.policy}: attainment {s.attainment:.1%}, P50 {1e3 * s.latency_p50_s:.1f} ms, "
        f"accuracy {100 * s.mean_accuracy:.2f}% ({'; '.join(s.notes)})")


def find_capacity(setup: LiveSetup, slo: float, port: int, log: Log,
                  target: float = 0.9, max_live_runs: int = 5) -> tuple[float, list]:
    """The highest rate scale at which `static` attains >= target live, on one cluster: from
    the simulator's guess (bisection), live runs step x0.6 down or x1.25 up until the target is
    bracketed, then bisect the bracket (geometric mean); the answer interpolates linearly
    between the two closest live rates around the target."""
    spec = POLICIES["static"]
    lo, hi, guess = 0.05, 64.0, 1.0
    for _ in range(10):
        guess = (lo * hi) ** 0.5
        att = simulate(setup, setup.workload(guess, slo), spec, setup.seed).attainment
        lo, hi = (guess, hi) if att >= target else (lo, guess)
    log(f"capacity search: the simulator puts static's {target:.0%} point near rate "
        f"x{guess:.3g}")
    tried: list[tuple[float, float, float]] = []  # (rate scale, req/s, attainment)
    reference: dict = {}
    rate = round(guess, 3)
    live = mapped(spec, setup, setup.workload(rate, slo), port)
    with ClusterSession(live, log) as session:
        for _ in range(max_live_runs):
            workload = setup.workload(rate, slo)
            reference.update(reference_for(setup, [workload]))
            s = session.run(workload, reference).summary
            tried.append((rate, s.request_rate, s.attainment))
            log(f"capacity search: live static at x{rate:g} ({s.request_rate:.1f} req/s): "
                f"{s.attainment:.1%} ({'; '.join(s.notes)})")
            above = [t[0] for t in tried if t[2] >= target]
            below = [t[0] for t in tried if t[2] < target and t[0] > max(above, default=0)]
            if above and below:
                rate = round((max(above) * min(below)) ** 0.5, 3)
                if min(below) / max(above) < 1.15:
                    break
            else:
                rate = round(rate * (1.25 if s.attainment >= target else 0.6), 3)
    return capacity_from(tried, target), tried


def capacity_from(tried: list[tuple[float, float, float]], target: float) -> float:
    """Linear interpolation between the highest rate at or above the target and the lowest
    rate above it that falls below; the lowest rate tried when none reaches it."""
    above = [t for t in tried if t[2] >= target]
    if not above:
        return min(t[0] for t in tried)
    a = max(above, key=lambda t: t[0])
    higher = [t for t in tried if t[2] < target and t[0] > a[0]]
    if not higher:
        return a[0]
    b = min(higher, key=lambda t: t[0])
    return round(a[0] + (b[0] - a[0]) * (a[2] - target) / (a[2] - b[2]), 3)


def reference_for(setup: LiveSetup, workloads: list[LiveWorkload]) -> dict:
    quality = setup.profiles.quality.reference
    requests = [r for w in workloads for r in w.requests]
    return reference_correct(requests, quality.threshold, quality.block_size,
                             setup.base.policy.worker.cache_mode, setup.base.cluster.model)


def run_live(args: argparse.Namespace, trace, policies: list[PolicySpec], rates: list[float],
             slos: list[float], log: Log) -> int:
    from sim.experiments import offered_load, sustained_rate, upper_bound
    from sim.report import legend, point_table

    t0 = time.perf_counter()
    setup = make_live_setup(args, trace)
    target = parse_target(args.target) if args.target else None
    print(f"trace: {trace.summary()}")
    for note in trace.notes:
        print(f"  {note}")
    where = f"the router at {target}" if target else (
        f"the embedded cluster: {setup.cluster.gpus} CPU replica slots "
        f"({setup.cluster.nodes[0].gpu_type}), policy {args.policy}")
    print(f"live on {where}; profiles {setup.profiles.name} (deadlines, and the simulator's "
          f"best-static pick); load average {load_average():.2f}")
    for note in setup.notes if not target else ():
        print(f"  {note}")
    if args.warmup > 0 and not target:
        print(f"  planned policies first serve {args.warmup:g} s of each workload unscored "
              f"(warm-up: the controller plans for the load, as the simulator's warm start)")
    out: dict = {"mode": "live", "setup": _setup_json(setup, args, target), "points": []}
    if args.find_capacity is not None and not target:
        capacity, tried = find_capacity(setup, slos[0], args.port, log)
        rates = [round(capacity * args.find_capacity, 3)]
        out["capacity"] = {"rate_scale": capacity, "tried": tried, "factor": args.find_capacity}
        print(f"capacity (static >= 90% live): rate x{capacity:g}; running at "
              f"{args.find_capacity:g}x: rate x{rates[0]:g}")
    points = [(r, s) for s in slos for r in rates]
    workloads = {p: setup.workload(*p) for p in points}
    t_ref = time.perf_counter()
    reference = reference_for(setup, list(workloads.values()))
    log(f"reference decode of {len(reference)} distinct (prompt, canvas) at tau "
        f"{setup.profiles.quality.reference.threshold:g}: {time.perf_counter() - t_ref:.1f} s")
    if target:
        results = []
        for point in points:
            run = run_on_target(target, workloads[point], reference)
            results.append(_result(point, run))
            _log_run(run, log)
    else:
        runs = run_policies(lambda _: setup, policies, points, workloads, reference, args.port,
                            log, warmup_s=args.warmup)
        results = [_result(key, run, sweep) for _, key, run, sweep in runs]
    for slo in slos:
        for rate in rates:
            point = [r for r in results if r.rate_scale == rate and r.slo_scale == slo]
            workload = workloads[(rate, slo)]
            bound = upper_bound(workload.sim, setup.profiles, setup.cluster)
            load = offered_load(workload.sim, setup.profiles, setup.cluster)
            print(f"\n== rate x{rate:g} ({workload.rate:.2f} req/s, {len(workload.requests)} "
                  f"requests, fluid load {load:.0%}), SLO scale {slo:g} (live) ==")
            for note in workload.notes:
                print(f"  {note}")
            print(point_table(point, bound, unit="ms"))
            for r in point:
                if r.sweep:
                    cells = ", ".join(f"{lay} {att:.1%}" for lay, att, _ in r.sweep)
                    print(f"  best-static ran the simulator's pick; its sweep on this workload "
                          f"(simulated attainment): {cells}")
                print(f"  {r.policy}: {'; '.join(r.summary.notes)}")
            out["points"].append({"rate_scale": rate, "slo_scale": slo,
                                  "request_rate": workload.rate,
                                  "requests": len(workload.requests), "fluid_load": load,
                                  "upper_bound": bound,
                                  "results": [result_json(r, sweep_simulated=True) for r in point]})
    print(f"\n{legend()}")
    print("live: latency is the client's (send -> final); acc = exact-match accuracy of the "
          "finished requests, drop = points below the same requests decoded alone at the "
          "reference threshold")
    if len(rates) > 1:
        out["sustained_rate_at_90"] = {}
        for slo in slos:
            names = list(dict.fromkeys(r.policy for r in results))
            rates_at = {n: sustained_rate(results, n, slo) for n in names}
            out["sustained_rate_at_90"][str(slo)] = rates_at
            cells = ", ".join(f"{k} {'-' if v is None else f'{v:.2f}'}"
                              for k, v in rates_at.items())
            print(f"highest rate at >= 90% attainment (req/s), SLO scale {slo:g}: {cells}")
    if args.plot:
        from sim.plot import plot_attainment

        title = f"live: {trace.name}, {where.split(':')[0]}, seed {setup.seed}"
        print(f"plot: {plot_attainment(results, args.plot, title)}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1, default=str) + "\n")
        print(f"json: {args.json}")
    print(f"bench wall time {time.perf_counter() - t0:.0f} s; load average "
          f"{load_average():.2f}")
    return 0


def _setup_json(setup: LiveSetup, args: argparse.Namespace, target: str | None) -> dict:
    return {"trace": setup.trace.summary(), "trace_notes": list(setup.trace.notes),
            "target": target, "policy_file": str(args.policy),
            "cluster": [dataclasses.asdict(n) for n in setup.cluster.nodes],
            "profiles": setup.profiles.name, "classes": [dataclasses.asdict(c)
                                                         for c in setup.classes],
            "seed": setup.seed, "scale_mode": setup.scale_mode}


def stderr_log(quiet: bool) -> Log:
    def log(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr, flush=True)
    return log

