"""A simulation's workload: the trace turned into jobs (canvas, deadline), the SLO classes, and the
per-request truths only the simulated engine sees (where the output ends, how fast it decodes),
plus one uniform draw per request for its correctness (shared by every policy: common random
numbers, so policies differ only by what they do)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dilaserve.core.steps import DecodeSettings
from dilaserve.profiles.quality import QualityProfile
from sim.engine import RequestTruth
from solver.profile_set import ProfileSet
from solver.types import LengthDist, WorkloadClass
from traces.jobs import CanvasPolicy, Job, prepare_jobs
from traces.records import DEFAULT_CLASS, Trace
from traces.transform import clip_lengths
from worker.scheduler.requests import RequestSpec

DEFAULT_SPEED_CV = 0.15  # spread of tokens per step between requests (assumed)


@dataclass(frozen=True)
class SimClass:
    """An SLO class as the bench defines it; the controller fills in rates and lengths."""

    name: str = DEFAULT_CLASS
    slo_scale: float = 5.0
    max_accuracy_drop: float | None = 0.03
    min_threshold: float | None = None
    target_attainment: float = 0.9
    priority: int = 0
    accuracy_budget: float | None = None  # the mean drop (0..1) its finished requests may take

    def to_workload_class(self) -> WorkloadClass:
        return WorkloadClass(self.name, 0.0, LengthDist(1.0), LengthDist(1.0),
                             slo_scale=self.slo_scale, min_threshold=self.min_threshold,
                             max_accuracy_drop=self.max_accuracy_drop,
                             target_attainment=self.target_attainment, priority=self.priority)

    def floor(self, quality: QualityProfile, block: int) -> float:
        """The lowest threshold this class allows, on the profiled grid (no floor given: any)."""
        points = quality.threshold_points(block)
        lo = points[0].threshold if points else quality.reference.threshold
        if self.max_accuracy_drop is not None:
            lo = quality.lowest_threshold(self.max_accuracy_drop, block)
        if self.min_threshold is not None:
            lo = max(lo, self.min_threshold)
        return min(lo, quality.reference.threshold)


@dataclass(frozen=True)
class SimWorkload:
    jobs: tuple[Job, ...]
    truths: dict[str, RequestTruth]
    correct_draws: tuple[float, ...]  # per job: correct when draw < expected accuracy
    classes: tuple[SimClass, ...]
    duration_s: float
    description: tuple[str, ...]

    @property
    def rate(self) -> float:
        return len(self.jobs) / self.duration_s if self.duration_s > 0 else 0.0

    def slo_class(self, name: str) -> SimClass:
        for c in self.classes:
            if c.name == name:
                return c
        raise KeyError(name)


def build_workload(trace: Trace, classes: tuple[SimClass, ...], profiles: ProfileSet,
                   canvas: CanvasPolicy | None = None, seed: int = 0,
                   speed_cv: float = DEFAULT_SPEED_CV, max_output: int | None = None,
                   ) -> SimWorkload:
    block = profiles.reference_block
    canvas = canvas or CanvasPolicy(block_size=block)
    if canvas.block_size != block:
        raise ValueError(f"canvas block size {canvas.block_size} differs from the profile's "
                         f"reference block {block}")
    names = {c.name for c in classes}
    missing = sorted(set(trace.classes()) - names)
    if missing:
        raise ValueError(f"trace classes {missing} have no SLO class definition "
                         f"(defined: {sorted(names)})")
    longest = max((size for _, size in canvas.fixed), default=0)
    longest = max(longest, canvas.fixed_default or 0)
    max_out = max_output or min(1024, profiles.max_seq_len // 2)
    clipped = clip_lengths(trace, max_prompt=profiles.max_seq_len - max(longest, block),
                           max_output=max_out, max_seq_len=profiles.max_seq_len,
                           block_size=block)
    scales = {c.name: c.slo_scale for c in classes}
    jobs = prepare_jobs(clipped, canvas, profiles.unloaded_latency, scales)
    return workload_from_jobs(jobs, classes, clipped.duration_s,
                              (*clipped.notes, canvas.describe()), seed, speed_cv)


def workload_from_jobs(jobs: tuple[Job, ...], classes: tuple[SimClass, ...], duration_s: float,
                       description: tuple[str, ...], seed: int = 0,
                       speed_cv: float = DEFAULT_SPEED_CV) -> SimWorkload:
    """Jobs made elsewhere (the live bench's, say) with the per-request draws the simulated
    engine and the correctness draws need, seeded as `build_workload` seeds them."""
    rng = np.random.default_rng([seed, 7])
    if speed_cv > 0:
        sigma2 = math.log(1 + speed_cv**2)
        speeds = rng.lognormal(-sigma2 / 2, math.sqrt(sigma2), len(jobs))
    else:
        speeds = np.ones(len(jobs))
    truths = {j.request_id: RequestTruth(j.decoded_len, float(s)) for j, s in zip(jobs, speeds)}
    draws = tuple(float(u) for u in rng.random(len(jobs)))
    description = (*description, f"per-request speed factor: lognormal, cv {speed_cv:g} "
                                 f"(assumed)")
    return SimWorkload(jobs, truths, draws, classes, duration_s, description)


class SpecFactory:
    """RequestSpecs for one replica configuration; prompts and settings are shared objects (a
    prompt is only ever measured, never read, by the scheduler and the simulated engine).

    Given `reference` (a planned policy's replicas), a class with an accuracy budget (and load
    control on) gets the whole range from its floor to the reference threshold on every replica,
    whatever the plan's range: the budget, not the plan, then decides how far each request goes
    down (the scheduler starts it at the threshold the predicted load calls for, within what the
    budget has room for)."""

    _prompts: dict[int, tuple[int, ...]] = {}

    def __init__(self, threshold_start: float, threshold_floor: float | None, block_size: int,
                 cache_mode: str, reference: float | None = None) -> None:
        self.settings = DecodeSettings(threshold=threshold_start, block_size=block_size,
                                       cache_mode=cache_mode)
        self.floor = threshold_floor
        start = threshold_start if reference is None else max(threshold_start, reference)
        self.budget_settings = (self.settings if start == threshold_start else
                                DecodeSettings(threshold=start, block_size=block_size,
                                               cache_mode=cache_mode))

    def spec(self, job: Job, class_floor: float | None,
             budget: float | None = None) -> RequestSpec:
        prompt = self._prompts.get(job.prompt_len)
        if prompt is None:
            prompt = self._prompts[job.prompt_len] = (1,) * job.prompt_len
        settings = self.settings
        floor = None
        if self.floor is not None and class_floor is not None:
            if budget is None:
                floor = min(settings.threshold, max(self.floor, class_floor))
            else:
                settings = self.budget_settings
                floor = min(settings.threshold, class_floor)
        return RequestSpec(job.request_id, prompt, job.canvas_len, job.arrival_s,
                           deadline_s=job.deadline_s, slo_class=job.slo_class,
                           quality_floor=floor, accuracy_budget=budget, settings=settings)
