"""`dilaserve bench --mode sim --sweep accuracy-budget`: every baseline and dilaserve at the same
accuracy budgets, on the Azure conversation and code traces (issue 20).

The sweep, per trace (32 GPUs, SLO scale 5, hard floor `--max-accuracy-drop`):
- a 20-minute window (minutes 20-40) at the rate scale where `static` attains ~40% there (found
  by bisection, as `--find-static` does) and at 1.25x it, at budgets 0.5, 1 and 2 points;
- the same window at the trace's own rate (x1, light load), budget 1 point;
- the full hour at the 40% rate scale, budget 1 point (the conversation trace only: once).
`static` and `static+edf` have no threshold control, so they run once per point (their budget is
never spent); the others run at every budget. Each run is written to OUT/<key>.json as it ends, and
a run whose file exists is read back instead of simulated: the sweep resumes where it stopped.
The report (`bench_sweep_report`) prints the table, the checks of the issue's goals (met / not
met), and draws attainment against accuracy drop (OUT/attainment-vs-drop.png).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, fields
from pathlib import Path

SWEEPS = ("accuracy-budget",)
TRACES = (("conv", "azure_llm_2023_conv.csv"), ("code", "azure_llm_2023_code.csv"))
WINDOW = "1200:2400"
BUDGETS = (0.005, 0.01, 0.02)
MAIN_BUDGET = 0.01
OVERLOAD = 1.25
STATIC_TARGET = 0.4
FULL_HOUR_TRACES = ("conv",)
UNBUDGETED = ("static", "static+edf")  # no threshold control: nothing to spend
BUDGETED = ("static+edf+threshold", "best-static", "dilaserve")


@dataclass(frozen=True)
class Point:
    trace: str  # conv | code
    span: str  # window | hour
    load: str  # 40% | 1.25x | light
    rate_scale: float
    budgets: tuple[float, ...]

    @property
    def key(self) -> str:
        return f"{self.trace}-{self.span}-{self.load.replace('%', 'pct')}"


def run_sweep(args: argparse.Namespace, log) -> int:
    from dilaserve.cli.bench_setup import make_setup
    from dilaserve.cli.bench_sweep_report import report
    from sim.policies import POLICIES

    if args.sweep not in SWEEPS:
        raise ValueError(f"--sweep: unknown {args.sweep!r}; known: {', '.join(SWEEPS)}")
    if args.window or args.accuracy_budget is not None:
        raise ValueError("--sweep: the sweep sets its own windows and budgets (drop --window, "
                         "--accuracy-budget)")
    slo = args_slo(args)
    out = Path(args.out or f"runs/{args.sweep}")
    out.mkdir(parents=True, exist_ok=True)
    traces_dir = Path(args.traces_dir)
    t0 = time.perf_counter()
    points: list[Point] = []
    hours: list[Point] = []
    results: dict[str, dict] = {}
    for name, file in TRACES:
        path = traces_dir / file
        if not path.is_file():
            raise ValueError(f"--traces-dir: {path} is not a file (the Azure 2023 traces)")
        rate = _cached_rate(out, name, make_setup(_args(args, path, WINDOW, None)), slo, log)
        points += [Point(name, "window", "40%", rate, BUDGETS),
                   Point(name, "window", "1.25x", round(rate * OVERLOAD, 3), BUDGETS),
                   Point(name, "window", "light", 1.0, (MAIN_BUDGET,))]
        if name in FULL_HOUR_TRACES:
            hours.append(Point(name, "hour", "40%", rate, (MAIN_BUDGET,)))
    points += hours  # last: the longest runs
    for point in points:
        path = traces_dir / dict(TRACES)[point.trace]
        window = WINDOW if point.span == "window" else None
        for budget in (None, *point.budgets):
            setup = make_setup(_args(args, path, window, budget))
            names = UNBUDGETED if budget is None else BUDGETED
            for policy in (POLICIES[n] for n in names):
                for key, spec in _runs(setup, policy, point, budget):
                    results[key] = _run_or_load(out, key, setup, spec, point.rate_scale, slo, log)
    text, checks = report(points, results, out / "attainment-vs-drop.png")
    print(text)
    (out / "report.txt").write_text(text + "\n")
    (out / "checks.json").write_text(json.dumps(checks, indent=1) + "\n")
    print(f"sweep wall time {time.perf_counter() - t0:.0f} s; results in {out}/")
    return 0


def run_key(point: Point, policy: str, budget: float | None, layout: str | None = None) -> str:
    parts = [point.key, policy]
    if budget is not None:
        parts.append(f"b{100 * budget:g}")
    if layout is not None:
        parts.append(layout.replace(" x tau ", "-"))
    return "_".join(parts)


def _runs(setup, policy, point: Point, budget: float | None):
    from sim.experiments import static_layouts

    if not policy.hindsight:
        yield run_key(point, policy.name, budget), policy
        return
    for layout in static_layouts(setup):
        yield run_key(point, policy.name, budget, layout.describe()), policy.with_layout(layout)


def _run_or_load(out: Path, key: str, setup, policy, rate: float, slo: float, log) -> dict:
    from sim.experiments import run_one

    path = out / f"{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    summary = run_one(setup, policy, rate, slo, key)
    data = summary.to_dict()
    data["within_budget"] = summary.within_budget
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")
    log(f"  {key}: {summary.attainment:.1%}, drop {summary.accuracy_drop_points:.2f} "
        f"({summary.wall_s:.0f} s)")
    return data


def summary_of(data: dict):
    """A RunSummary back from its JSON."""
    from sim.metrics import RunSummary

    names = {f.name for f in fields(RunSummary)}
    kept = {k: v for k, v in data.items() if k in names}
    kept["notes"] = tuple(kept.get("notes", ()))
    return RunSummary(**kept)


def _cached_rate(out: Path, trace: str, setup, slo: float, log) -> float:
    """The rate scale at which static attains ~40% on the window (found once, then read)."""
    from dilaserve.cli.bench_setup import find_rate_for
    from sim.policies import POLICIES

    path = out / f"rate-{trace}.json"
    if path.is_file():
        return float(json.loads(path.read_text())["rate_scale"])
    rate = find_rate_for(setup, POLICIES["static"], STATIC_TARGET, slo, log)
    path.write_text(json.dumps({"rate_scale": rate, "window": WINDOW,
                                "static_target": STATIC_TARGET}) + "\n")
    return rate


def _args(args: argparse.Namespace, trace: Path, window: str | None,
          budget: float | None) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), "trace": str(trace), "window": window,
                                 "accuracy_budget": budget, "no_progress": True})


def args_slo(args: argparse.Namespace) -> float:
    from dilaserve.cli.bench_setup import number_list

    return number_list(args.slo_scale, "--slo-scale")[0]
