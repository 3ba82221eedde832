"""What the simulator must know of the machine the live cluster runs on, measured on the running
cluster under request traffic at the compared rate, just before the compared run.

The embedded default's CPU replicas share the host's two cores with everything a request wakes
on its way (the client, the router, each worker's gRPC thread), so on this machine the
simulator needs three figures besides the step-cost profile, and each depends on how much
traffic there is: requests sent one at a time, or engines stepping alone, show none of it.
A calibration workload (the compared one's trace, another seed: other requests) is replayed
through the router at the compared run's rate (the same load), `CALIBRATION_WARM_S` seconds
unmeasured, then `CALIBRATION_S` seconds, and from the workers' Stats before and after those and
the requests' own timings:

- `step_scale` (`SimOptions.step_scale`): the replicas' measured step seconds over what their
  step-cost profile predicted for the same steps;
- `loop_s_per_request` (`SimOptions.loop_s_per_request`): the serving loops' time in turns that
  stepped, less the steps themselves (taking requests in, planning, streaming, finishing), per
  request the workers took in;
- `rpc_s` (`SimOptions.rpc_s`): a request's time outside the replica that served it (client ->
  router -> replica and the final message back): the median of the client's latency less the
  replica's own arrival-to-final time; the times themselves are `SimOptions.rpc_samples_s`
  (under load the path has a tail: its 90th percentile is 2-3x its median).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from dilaserve.livebench.client import LiveOutcome, replay
from dilaserve.livebench.workload import LiveRequest, LiveWorkload
from sim.simulator import SimOptions

CALIBRATION_S = 5.0  # seconds of the calibration workload replayed
CALIBRATION_WARM_S = 2.0  # replayed first, not measured


@dataclass(frozen=True)
class StepCounters:
    """One replica's Stats counters that the calibration reads."""
    step_seconds: float
    step_prior_seconds: float
    busy_seconds: float
    accepted: int

    @classmethod
    def of(cls, stats) -> StepCounters:
        return cls(stats.step_seconds, stats.step_prior_seconds, stats.busy_seconds,
                   stats.accepted)


@dataclass(frozen=True)
class HostCalibration:
    rpc_s: float
    step_scale: float
    loop_s_per_request: float
    requests: int  # calibration requests that finished (the RPC path's sample)
    steps_s: float  # step seconds measured over the calibration, all replicas
    rate: float  # the calibration workload's request rate
    rpc_samples_s: tuple[float, ...] = ()  # each finished request's time outside the replica

    def options(self, seed: int) -> SimOptions:
        return SimOptions(seed=seed, rpc_s=self.rpc_s, rpc_samples_s=self.rpc_samples_s,
                          step_scale=self.step_scale,
                          loop_s_per_request=self.loop_s_per_request)

    def rpc_percentiles_ms(self) -> dict[str, float]:
        samples = self.rpc_samples_s or (self.rpc_s,)
        return {f"p{q}": 1e3 * float(np.percentile(samples, q)) for q in (10, 50, 90, 99)}

    def to_dict(self) -> dict:
        return {"rpc_s": self.rpc_s, "rpc_ms": self.rpc_percentiles_ms(),
                "step_scale": self.step_scale, "loop_s_per_request": self.loop_s_per_request,
                "requests": self.requests, "steps_s": self.steps_s, "rate": self.rate}

    def describe(self) -> str:
        return (f"host under {self.rate:.1f} req/s of calibration traffic: "
                f"{stepping_words(self.step_scale, self.loop_s_per_request)} "
                f"({self.steps_s:.1f} s of steps), RPC path {1e3 * self.rpc_s:.2f} ms median, "
                f"{self.rpc_percentiles_ms()['p90']:.2f} ms p90 ({self.requests} requests)")


def stepping_words(step_scale: float, loop_s_per_request: float) -> str:
    return (f"steps x{step_scale:.2f} the profile, serving loop "
            f"{1e3 * loop_s_per_request:.2f} ms per request outside steps")


@dataclass(frozen=True)
class Stepping:
    """The serving replicas' stepping between two readings of their counters, summed."""
    steps_s: float  # measured step time
    prior_s: float  # the profile's prediction of the same steps
    busy_s: float  # the serving loops' time in turns that stepped
    taken: int  # requests the replicas took in

    @property
    def measured(self) -> bool:
        return self.prior_s > 0 and self.taken > 0

    @property
    def step_scale(self) -> float:
        return self.steps_s / self.prior_s

    @property
    def loop_s_per_request(self) -> float:
        return max(0.0, self.busy_s - self.steps_s) / self.taken

    def describe(self) -> str:
        return stepping_words(self.step_scale, self.loop_s_per_request)


def stepping_between(before: Mapping[str, StepCounters], after: Mapping[str, StepCounters]
                     ) -> Stepping:
    """Over the replicas read both times (one that came or went in between is left out)."""
    both = [k for k in after if k in before]
    return Stepping(sum(after[k].step_seconds - before[k].step_seconds for k in both),
                    sum(after[k].step_prior_seconds - before[k].step_prior_seconds for k in both),
                    sum(after[k].busy_seconds - before[k].busy_seconds for k in both),
                    sum(after[k].accepted - before[k].accepted for k in both))


def host_calibration(before: Mapping[str, StepCounters], after: Mapping[str, StepCounters],
                     outcomes: list[LiveOutcome], rate: float) -> HostCalibration:
    """The three figures from the replicas' counters around the calibration replay and its
    requests' outcomes (pure: the tests feed it numbers)."""
    if not any(k in before for k in after):
        raise ValueError("calibration: no replica served both before and after the replay")
    stepping = stepping_between(before, after)
    if not stepping.measured:
        raise ValueError(f"calibration: the replicas ran no profiled steps "
                         f"({stepping.prior_s:.3f} s predicted, {stepping.taken} requests "
                         f"taken in); is the profile loaded?")
    outside = [max(0.0, o.latency_s - o.replica_ms / 1e3) for o in outcomes
               if o.finished and math.isfinite(o.replica_ms)]
    if not outside:
        raise ValueError("calibration: no calibration request finished")
    return HostCalibration(statistics.median(outside), stepping.step_scale,
                           stepping.loop_s_per_request, len(outside), stepping.steps_s, rate,
                           tuple(outside))


def calibration_requests(workload: LiveWorkload, rate: float, seconds: float,
                         prefix: str = "calibration") -> tuple[LiveRequest, ...]:
    """The first `rate x seconds` requests of `workload` (`seconds` at most its span), renamed,
    their arrivals stretched to come at exactly `rate` (a few seconds of another seed's
    arrivals run some percent above or below the compared run's rate, and the figures grow with
    the rate)."""
    seconds = min(seconds, workload.duration_s)
    requests = workload.requests
    count = min(len(requests), round(rate * seconds))
    if count < 1:
        raise ValueError(f"calibration: no requests to replay ({len(requests)} in the "
                         f"workload, {rate:.2f} req/s for {seconds:g} s)")
    end = requests[count].at_s if len(requests) > count else workload.duration_s
    stretch = count / rate / end if end > 0 else 1.0
    return tuple(dataclasses.replace(r, index=i, request_id=f"{prefix}-{r.request_id}",
                                     at_s=r.at_s * stretch)
                 for i, r in enumerate(requests[:count]))


def measure_host(router: str, workload: LiveWorkload, rate: float, read_counters,
                 seconds: float = CALIBRATION_S, warm_s: float = CALIBRATION_WARM_S
                 ) -> HostCalibration:
    """Replay `workload`'s requests at `rate` through the router, `warm_s` seconds unmeasured
    (a cluster's first seconds under traffic step slower than it then does), then `seconds`
    measured; `read_counters()` -> the serving replicas' {target: StepCounters}."""
    if warm_s > 0:
        asyncio.run(replay(router, calibration_requests(workload, rate, warm_s,
                                                        "calibration-warmup")))
    requests = calibration_requests(workload, rate, seconds)
    before = read_counters()
    outcomes = asyncio.run(replay(router, requests))
    return host_calibration(before, read_counters(), outcomes, rate)
