"""How much slower (or faster) this machine steps than its step-cost profile, and the profile
scaled by it.

A profile is measured on one box; a replica may run on another of the same kind that steps
1.8-2x slower (shared cores, another CPU stepping, thermal limits). The factor is the median of
measured / predicted step time, the prediction being the profile's own (unscaled): first over a
short calibration the worker runs when it starts, then over a window of its live steps, so it
follows the machine as it changes. Medians, since a step now and then is slowed by something
else entirely (a collection, a neighbour's burst).

The factor in use changes only when the measured one differs from it by more than `dead_band`
(10%): inside it the profile is as good as the machine's noise, and the scheduler, router and
planner are not re-fed a new number every few steps. The worker scales the step-cost model its
admission uses; its Stats carry the factor so the router and the controller's planner scale
their use of the same profile.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from dilaserve.core.steps import StepFeatures
from dilaserve.profiles.online import OnlineStepCost
from dilaserve.profiles.step_cost import StepCostModel

DEAD_BAND = 0.10


@dataclass(frozen=True)
class ScaleSettings:
    dead_band: float = DEAD_BAND  # relative change the factor in use ignores
    window: int = 200  # recent steps the measured factor is the median of
    check_every: int = 20  # live steps between checks of the factor in use

    def __post_init__(self) -> None:
        if not 0 <= self.dead_band < 1:
            raise ValueError(f"machine scale: dead_band must be in [0, 1), got {self.dead_band}")
        if self.window < 1 or self.check_every < 1:
            raise ValueError(f"machine scale: window and check_every must be >= 1, got "
                             f"{self.window} and {self.check_every}")


def outside_dead_band(current: float, measured: float, dead_band: float = DEAD_BAND) -> bool:
    """Whether `measured` differs from `current` by more than `dead_band` (relative)."""
    return math.isfinite(measured) and measured > 0 and abs(measured / current - 1) > dead_band


def step_ratio(profile: StepCostModel, features: StepFeatures, elapsed_s: float) -> float | None:
    """Measured / the profile's predicted time of one step (None: nothing to compare)."""
    predicted = profile.predict(features)
    if not (predicted > 0 and elapsed_s > 0 and math.isfinite(elapsed_s)):
        return None
    return elapsed_s / predicted


class MachineScale:
    """The measured factor (median ratio over the window) and the factor in use (`applied`)."""

    def __init__(self, settings: ScaleSettings = ScaleSettings()) -> None:
        self.settings = settings
        self.applied = 1.0
        self.calibration = math.nan  # the startup calibration's median ratio (nan: none ran)
        self.calibration_steps = 0
        self.observed = 0  # live steps seen
        self._ratios: deque[float] = deque(maxlen=settings.window)

    @property
    def measured(self) -> float:
        """The median ratio over the window (nan before any step)."""
        return statistics.median(self._ratios) if self._ratios else math.nan

    def calibrate(self, ratios: Iterable[float]) -> bool:
        """The startup calibration's ratios; True when the factor in use changed."""
        ratios = [r for r in ratios if r > 0 and math.isfinite(r)]
        if not ratios:
            raise ValueError("machine scale: the calibration measured no usable step")
        self.calibration = statistics.median(ratios)
        self.calibration_steps = len(ratios)
        self._ratios.extend(ratios)
        return self._check()

    def observe(self, ratio: float) -> bool:
        """One live step's ratio; True when the factor in use changed."""
        if not (ratio > 0 and math.isfinite(ratio)):
            return False
        self._ratios.append(ratio)
        self.observed += 1
        return self.observed % self.settings.check_every == 0 and self._check()

    def _check(self) -> bool:
        measured = self.measured
        if not outside_dead_band(self.applied, measured, self.settings.dead_band):
            return False
        self.applied = measured
        return True


class ScaledStepCost:
    """A `StepCost` whose profile is scaled by the machine's factor; it feeds every measured step
    to the factor first. `online`: refined online from the measured steps as well
    (`OnlineStepCost`, whose prior is the scaled profile); else the scaled profile, fixed.

    `prior` stays the unscaled profile: the worker's Stats compare the steps with the profile as
    committed (`step_prior_seconds`), which is how the live bench sees the machine's factor."""

    def __init__(self, profile: StepCostModel, machine: MachineScale,
                 online: OnlineStepCost | None = None) -> None:
        self.profile = profile
        self.machine = machine
        self.online = online
        self._fixed = _scaled(profile, machine.applied)
        if online is not None:
            online.rescale_prior(_scaled(profile, machine.applied))

    @property
    def prior(self) -> StepCostModel:
        return self.profile

    @property
    def coef(self) -> tuple[float, float, float, float]:
        return self.online.coef if self.online is not None else self._fixed.coef

    def predict(self, features: StepFeatures) -> float:
        model = self.online if self.online is not None else self._fixed
        return model.predict(features)

    def calibrate(self, ratios: Iterable[float]) -> bool:
        changed = self.machine.calibrate(ratios)
        if changed:
            self._rescale()
        return changed

    def update(self, features: StepFeatures, elapsed_s: float) -> float | None:
        ratio = step_ratio(self.profile, features, elapsed_s)
        if ratio is not None and self.machine.observe(ratio):
            self._rescale()
        return self.online.update(features, elapsed_s) if self.online is not None else None

    def median_abs_rel_error(self) -> float:
        return self.online.median_abs_rel_error() if self.online is not None else math.nan

    def error_count(self) -> int:
        return self.online.error_count() if self.online is not None else 0

    def _rescale(self) -> None:
        self._fixed = _scaled(self.profile, self.machine.applied)
        if self.online is not None:
            self.online.rescale_prior(self._fixed)


def _scaled(profile: StepCostModel, factor: float) -> StepCostModel:
    return StepCostModel(tuple(c * factor for c in profile.coef))  # type: ignore[arg-type]
