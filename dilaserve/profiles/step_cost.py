"""The step-cost model: t = a*forwards + b*refresh_tokens + c*reuse_tokens + d*attended_kv.

Fitted offline by `dilaserve profile` (non-negative least squares over measured steps) and refined
online by the worker from the step times it measures.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np

from dilaserve.core.steps import StepFeatures
from dilaserve.profiles.json_file import JsonFile

STEP_COST_SCHEMA = "dilaserve.profile.step_cost/v1"
FEATURES = ("forwards", "refresh_tokens", "reuse_tokens", "attended_kv")


@dataclass(frozen=True)
class StepSample:
    features: StepFeatures
    time_s: float


class StepCost(Protocol):
    """What the scheduler and the serving loop ask of a step-cost model: a fixed
    `StepCostModel` (a profile) or one refined online from measured steps
    (`dilaserve.profiles.online.OnlineStepCost`)."""

    @property
    def coef(self) -> tuple[float, float, float, float]: ...

    @property
    def prior(self) -> StepCostModel | None:
        """The offline profile it started from (None: it is the profile)."""
        ...

    def predict(self, features: StepFeatures) -> float: ...

    def update(self, features: StepFeatures, elapsed_s: float) -> float | None:
        """Learn from one measured step; its held-out relative error (None: not learned)."""
        ...

    def median_abs_rel_error(self) -> float:
        """Over recent steps, each predicted before it was learned (NaN: none)."""
        ...

    def error_count(self) -> int: ...


@dataclass(frozen=True)
class StepCostModel:
    """t = a*forwards + b*refresh_tokens + c*reuse_tokens + d*attended_kv, fixed."""

    coef: tuple[float, float, float, float]

    def predict(self, features: StepFeatures) -> float:
        return sum(c * x for c, x in zip(self.coef, features.as_vector()))

    @property
    def prior(self) -> None:
        return None

    def update(self, features: StepFeatures, elapsed_s: float) -> None:
        return None  # a profile does not learn

    def median_abs_rel_error(self) -> float:
        return math.nan

    def error_count(self) -> int:
        return 0

    @classmethod
    def fit(cls, samples: list[StepSample]) -> StepCostModel:
        if len(samples) < len(FEATURES):
            raise ValueError(
                f"step-cost fit needs at least {len(FEATURES)} samples, got {len(samples)}"
            )
        x = np.array([s.features.as_vector() for s in samples])
        y = np.array([s.time_s for s in samples])
        # relative error matters, so weight each step by 1/time
        w = 1.0 / np.maximum(y, 1e-9)
        return cls(tuple(float(c) for c in _nnls(x * w[:, None], y * w)))


def _nnls(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares with coefficients >= 0, by dropping negative ones until none is left."""
    active = list(range(x.shape[1]))
    coef = np.zeros(x.shape[1])
    while active:
        sol, *_ = np.linalg.lstsq(x[:, active], y, rcond=None)
        if (sol >= 0).all():
            coef[active] = sol
            return coef
        active.pop(int(np.argmin(sol)))
    return coef


def relative_errors(model: StepCostModel, samples: list[StepSample]) -> list[float]:
    return [abs(model.predict(s.features) - s.time_s) / s.time_s for s in samples if s.time_s > 0]


@dataclass(frozen=True)
class StepCostProfile(JsonFile):
    model: str
    hardware: str
    dtype: str
    tp: int
    cache_mode: str
    cost: StepCostModel
    median_rel_error: float
    provenance: dict = field(default_factory=dict)
    samples: tuple[dict, ...] = ()

    def to_json(self) -> dict:
        return {
            "schema": STEP_COST_SCHEMA,
            "model": self.model,
            "hardware": self.hardware,
            "dtype": self.dtype,
            "tp": self.tp,
            "cache_mode": self.cache_mode,
            "fit": {
                "features": list(FEATURES),
                "coef": list(self.cost.coef),
                # null where nothing was fitted (a derived profile): JSON has no NaN
                "median_rel_error": (None if math.isnan(self.median_rel_error)
                                     else self.median_rel_error),
            },
            "provenance": self.provenance,
            "samples": list(self.samples),
        }

    @classmethod
    def from_json(cls, data: dict) -> StepCostProfile:
        if data.get("schema") != STEP_COST_SCHEMA:
            raise ValueError(
                f"step-cost profile: schema is {data.get('schema')!r}, "
                f"expected {STEP_COST_SCHEMA!r}"
            )
        fit = data["fit"]
        if list(fit["features"]) != list(FEATURES):
            raise ValueError(f"step-cost profile: features {fit['features']} != {list(FEATURES)}")
        return cls(
            model=data["model"],
            hardware=data["hardware"],
            dtype=data["dtype"],
            tp=int(data["tp"]),
            cache_mode=data["cache_mode"],
            cost=StepCostModel(tuple(float(c) for c in fit["coef"])),
            median_rel_error=_number_or_nan(fit.get("median_rel_error")),
            provenance=data.get("provenance", {}),
            samples=tuple(data.get("samples", ())),
        )


def _number_or_nan(value: object) -> float:
    return math.nan if value is None else float(value)


def sample_to_json(sample: StepSample, **extra) -> dict:
    return {**asdict(sample.features), "time_s": sample.time_s, **extra}


def sample_from_json(data: dict) -> StepSample:
    return StepSample(StepFeatures(*(int(data[f]) for f in FEATURES)), float(data["time_s"]))


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
