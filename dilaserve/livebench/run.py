"""One live run: a policy on the embedded cluster (started for the run, stopped after it), or a
running router (`--target`), replaying a workload; its outcomes in the simulator's `RunSummary`
so that the tables, JSON and plots are the simulated mode's.

Live figures in that summary: latency is the client's (send -> final); accuracy is exact match
of the finished requests' answers, and `reference_accuracy` is the reference decode's over the
same requests (`reference`), so the drop is paired; `replica_steps` are the workers' steps
during the replay (their Stats); `scheduler_s` is not measured live (0); `reconfigurations`
come from the controller's status (plans, replicas added and removed, threshold-range changes);
`notes` carry the client's send lag, the workers' median step time against their profile, and
the machine's load average before and after (other processes on the box slow replicas down).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dilaserve.livebench.calibrate import (
    HostCalibration,
    StepCounters,
    measure_host,
    stepping_between,
)
from dilaserve.livebench.client import LiveOutcome, replay
from dilaserve.livebench.mapping import LivePolicy
from dilaserve.livebench.workload import LiveWorkload
from sim.metrics import Outcome, Records, RunSummary, summarize
from traces.records import DEFAULT_CLASS

READY_TIMEOUT_S = 300.0
SLOW_START_S = 40.0
# Ray starts its worker processes (replicas, router, controller) at nice 15 by default, below
# anything else on the machine; a benchmark on a shared box would then measure the neighbours
NICENESS_ENV = {"RAY_worker_niceness": "0"}
STATUSES = {"met": Outcome.MET, "late": Outcome.LATE, "expired": Outcome.EXPIRED,
            "rejected": Outcome.REJECTED, "shed": Outcome.SHED, "error": Outcome.CANCELLED}


@dataclass(frozen=True)
class LiveRun:
    summary: RunSummary
    outcomes: tuple[LiveOutcome, ...]
    status: dict  # the controller's summary at the end (empty against a --target)
    host: HostCalibration | None = None  # measured just before the replay, when asked for


def load_average() -> float:
    return os.getloadavg()[0]


class ClusterSession:
    """The embedded cluster configured to one policy, started on entry and stopped on exit;
    `run` replays a workload through its router (several in a row reuse it)."""

    def __init__(self, live: LivePolicy, log: Callable[[str], None] = lambda _: None) -> None:
        self.live = live
        self.log = log
        self.handle = None

    def __enter__(self) -> ClusterSession:
        from orchestrator.runtime.cluster import start_cluster

        t0 = time.monotonic()
        live = self.live
        for key, value in NICENESS_ENV.items():
            os.environ.setdefault(key, value)
        self.handle = start_cluster(live.cluster_policy, None, None,
                                    planner_factory=live.planner_factory)
        try:
            if not self.handle.wait_ready(READY_TIMEOUT_S):
                raise RuntimeError(f"{live.name}: the replicas did not become ready within "
                                   f"{READY_TIMEOUT_S:g} s: {self.handle.summary()}")
        except BaseException:
            self.handle.stop(2.0)
            raise
        took = time.monotonic() - t0
        self.log(f"  {live.name}: cluster ready in {took:.1f} s, router on "
                 f"{self.handle.target} ({live.describe()})")
        if took > SLOW_START_S:  # say why (a replica that failed to start and was replaced...)
            for line in self.handle.summary()["log"]:
                self.log(f"    {line}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.stop(2.0)

    def run(self, workload: LiveWorkload, reference: dict[tuple[str, int], bool],
            calibration: LiveWorkload | None = None, warmup_s: float = 0.0) -> LiveRun:
        """`warmup_s`: first replay that many seconds of the workload's own arrivals, not
        scored, so that a planned policy's controller has planned for the load before the
        scored replay (the simulator's `dilaserve` starts warm the same way).
        `calibration`: then measure the host under that workload's traffic (`calibrate`)."""
        live = self.live
        if warmup_s > 0:
            warm = workload.first(warmup_s, "warmup")
            done = asyncio.run(replay(self.handle.target, warm))
            met = sum(o.status == "met" for o in done)
            self.log(f"  {live.name}: warm-up {len(warm)} requests over {warmup_s:g} s "
                     f"(not scored; {met} met); {self.handle.summary()['plan']}")
        host = None
        if calibration is not None:
            def counters() -> dict[str, StepCounters]:
                return {k: StepCounters.of(s)
                        for k, s in replica_stats(self.handle.summary()).items()}

            host = measure_host(self.handle.target, calibration, workload.rate, counters)
            self.log(f"  {live.name}: {host.describe()}")
        self.log(f"  {live.name}: replaying {len(workload.requests)} requests over "
                 f"{workload.duration_s:.0f} s ({workload.rate:.1f} req/s)")
        load_before = load_average()
        before = replica_stats(self.handle.summary())
        t1 = time.monotonic()
        outcomes = asyncio.run(replay(self.handle.target, workload.requests))
        wall = time.monotonic() - t1
        status = self.handle.summary()
        after = replica_stats(status)
        layout = live.layout if live.fixed else _plans(status)
        steps = sum(a.steps - before[k].steps for k, a in after.items() if k in before)
        summary = summarize_live(live.name, layout, workload, outcomes, reference, wall,
                                 _reconfigurations(status), load_before, load_average(),
                                 steps, _step_notes(before, after))
        return LiveRun(summary, tuple(outcomes), status, host)


def replica_stats(status: dict) -> dict:
    """Each serving replica's worker Stats, by target (the step counts and step-cost figures
    the router's summary does not carry)."""
    from worker.client.sync_client import WorkerClient

    out = {}
    for r in status.get("replicas", []):
        if r.get("target") and r.get("phase") in ("active", "draining"):
            try:
                with WorkerClient(r["target"]) as client:
                    out[r["target"]] = client.stats(timeout=5.0)
            except Exception:  # noqa: BLE001 - a replica gone meanwhile: nothing to read
                continue
    return out


def _step_notes(before: dict, after: dict) -> tuple[str, ...]:
    if not after:
        return ()
    cells = ", ".join(f"{s.median_step_ms:.1f} ms (profile off by "
                      f"{100 * s.step_cost_prior_error:.0f}%; {machine_words(s)})"
                      for s in after.values())
    stepping = stepping_between({k: StepCounters.of(s) for k, s in before.items()},
                                {k: StepCounters.of(s) for k, s in after.items()})
    return (f"median step per replica: {cells}",
            *((stepping.describe(),) if stepping.measured else ()))


def machine_words(stats) -> str:
    """A replica's machine factor as its Stats report it (`dilaserve.profiles.machine_scale`)."""
    measured, applied = stats.machine_scale_measured, stats.machine_scale or 1.0
    if not measured > 0:
        return "not calibrated"
    used = f"profile scaled x{applied:.2f}" if applied != 1.0 else "within 10%: profile as is"
    return f"measured x{measured:.2f} the profile, {used}"


def run_on_target(target: str, workload: LiveWorkload, reference: dict[tuple[str, int], bool],
                  name: str = "target") -> LiveRun:
    """A running router serves its own policy's classes: a trace without named classes goes
    to its default class (each request still carries its own deadline)."""
    load_before = load_average()
    requests = tuple(dataclasses.replace(r, slo_class="") if r.slo_class == DEFAULT_CLASS
                     else r for r in workload.requests)
    t1 = time.monotonic()
    outcomes = asyncio.run(replay(target, requests))
    wall = time.monotonic() - t1
    summary = summarize_live(name, f"the router at {target}", workload, outcomes, reference,
                             wall, {}, load_before, load_average())
    return LiveRun(summary, tuple(outcomes), {})


def summarize_live(name: str, layout: str, workload: LiveWorkload, outcomes: list[LiveOutcome],
                   reference: dict[tuple[str, int], bool], wall_s: float,
                   reconfigurations: dict[str, int], load_before: float,
                   load_after: float, replica_steps: int = 0,
                   more_notes: tuple[str, ...] = ()) -> RunSummary:
    requests = workload.requests
    records = Records(len(requests))
    arrivals = np.array([r.at_s for r in requests])
    ref = np.full(len(requests), np.nan)
    for o in outcomes:
        r = requests[o.index]
        latency = o.latency_s if o.finished else 0.0
        # latency from the send (what met or missed the deadline); the client's own send lag
        # is in the notes
        records.end(o.index, STATUSES[o.status], r.at_s + latency)
        if o.finished:
            records.accuracy[o.index] = float(o.text == r.answer)
            records.threshold[o.index] = o.threshold
            ref[o.index] = float(reference[(r.prompt, r.canvas)])
    finished = ~np.isnan(ref)
    reference_accuracy = float(ref[finished].mean()) if finished.any() else math.nan
    lags = np.array([o.send_lag_s for o in outcomes])
    errors = sorted({o.detail for o in outcomes if o.status == "error"})
    notes = (f"client send lag p50 {1e3 * np.median(lags):.1f} ms, max {1e3 * lags.max():.1f} ms"
             if len(lags) else "no requests",
             f"load average {load_before:.2f} before, {load_after:.2f} after",
             *more_notes, *(f"errors: {e}" for e in errors[:3]))
    return summarize(records, policy=name, layout=layout, arrivals=arrivals,
                     draws=np.full(len(requests), 0.5), duration_s=workload.duration_s,
                     reference_accuracy=reference_accuracy, reconfigurations=reconfigurations,
                     replica_steps=replica_steps, wall_s=wall_s, sim_s=wall_s, scheduler_s=0.0,
                     notes=notes)


def _plans(status: dict) -> str:
    """The live planner's last plan, as the simulator's layout column puts it."""
    plan = status.get("plan", "")
    groups = plan.split("): ", 1)[-1].split("; predicted", 1)[0] if plan else "-"
    return f"ILP ({status.get('plans', 0)} plans; last: {groups})"


def _reconfigurations(status: dict) -> dict[str, int]:
    replicas = status.get("replicas", [])
    if not replicas:
        return {}
    started = max(r["id"] for r in replicas) + 1  # replica ids count up from 0
    # each replica's status keeps its last 5 events: a lower bound on long runs
    changes = sum(1 for r in replicas for h in r["history"] if h.startswith("thresholds"))
    return {"plans": int(status.get("plans", 0)), "replicas_added": started,
            "replicas_removed": started - len(replicas), "threshold_changes": changes}
