"""Synthetic traces: Poisson or Gamma arrivals with length distributions, deterministic (seeded).

Gamma inter-arrival times with coefficient of variation `cv` have shape k = 1 / cv^2 and scale
1 / (rate k): cv = 1 is Poisson, cv > 1 is burstier. (vLLM's `--burstiness` is the shape k.)

Lengths: `Fixed(n)`, `Uniform(lo, hi)`, `LogNormal(mean, cv)` (rounded, at least 1) or
`Empirical(values)` (resampled, e.g. from a real trace's lengths). A spec string picks one on the
command line: `256`, `uniform:64:512`, `lognormal:1000:1.2`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from traces.records import DEFAULT_CLASS, Trace, TraceRequest


@dataclass(frozen=True)
class Fixed:
    value: int

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.value, dtype=np.int64)

    def describe(self) -> str:
        return f"{self.value}"


@dataclass(frozen=True)
class Uniform:
    lo: int
    hi: int

    def __post_init__(self) -> None:
        if not 0 <= self.lo <= self.hi:
            raise ValueError(f"uniform lengths need 0 <= lo <= hi, got {self.lo}, {self.hi}")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(self.lo, self.hi + 1, size=n)

    def describe(self) -> str:
        return f"uniform:{self.lo}:{self.hi}"


@dataclass(frozen=True)
class LogNormal:
    mean: float
    cv: float

    def __post_init__(self) -> None:
        if not (self.mean > 0 and self.cv > 0):
            raise ValueError(f"lognormal lengths need mean > 0 and cv > 0, "
                             f"got {self.mean}, {self.cv}")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        sigma2 = math.log(1 + self.cv**2)
        mu = math.log(self.mean) - sigma2 / 2
        return np.maximum(1, np.rint(rng.lognormal(mu, math.sqrt(sigma2), n))).astype(np.int64)

    def describe(self) -> str:
        return f"lognormal:{self.mean:g}:{self.cv:g}"


@dataclass(frozen=True)
class Empirical:
    values: tuple[int, ...]
    label: str = "empirical"

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("empirical lengths need at least one value")

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.asarray(self.values, dtype=np.int64)[rng.integers(0, len(self.values), n)]

    def describe(self) -> str:
        return f"{self.label} ({len(self.values)} values)"


LengthDist = Fixed | Uniform | LogNormal | Empirical


def parse_lengths(spec: str) -> LengthDist:
    parts = spec.strip().split(":")
    try:
        if len(parts) == 1:
            return Fixed(int(parts[0]))
        if parts[0] == "uniform" and len(parts) == 3:
            return Uniform(int(parts[1]), int(parts[2]))
        if parts[0] == "lognormal" and len(parts) == 3:
            return LogNormal(float(parts[1]), float(parts[2]))
    except ValueError as err:
        raise ValueError(f"length spec {spec!r}: {err}") from None
    raise ValueError(f"length spec {spec!r}: expected N, uniform:LO:HI or lognormal:MEAN:CV")


def gamma_gaps(rng: np.random.Generator, rate: float, cv: float, n: int) -> np.ndarray:
    """n inter-arrival gaps with mean 1 / rate and coefficient of variation cv."""
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"arrival rate must be > 0, got {rate}")
    if not (cv > 0 and math.isfinite(cv)):
        raise ValueError(f"arrival cv must be > 0, got {cv}")
    if cv == 1.0:
        return rng.exponential(1.0 / rate, n)
    shape = 1.0 / cv**2
    return rng.gamma(shape, 1.0 / (rate * shape), n)


def synthetic_trace(rate: float, *, duration_s: float | None = None, count: int | None = None,
                    cv: float = 1.0, prompt: LengthDist = Fixed(256),
                    output: LengthDist = Fixed(256), seed: int = 0,
                    slo_class: str = DEFAULT_CLASS) -> Trace:
    """Arrivals at `rate` req/s (Poisson when cv = 1, Gamma otherwise) for `duration_s` seconds or
    `count` requests (one of them)."""
    if (duration_s is None) == (count is None):
        raise ValueError("give exactly one of duration_s and count")
    rng = np.random.default_rng(seed)
    if count is not None:
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        times = np.cumsum(gamma_gaps(rng, rate, cv, count))
        span = float(times[-1])
    else:
        if not (duration_s is not None and duration_s > 0):
            raise ValueError(f"duration_s must be > 0, got {duration_s}")
        chunks, total = [], 0.0
        while total <= duration_s:
            gaps = gamma_gaps(rng, rate, cv, max(16, int(rate * duration_s * 1.2) + 16))
            chunk = total + np.cumsum(gaps)
            chunks.append(chunk)
            total = float(chunk[-1])
        times = np.concatenate(chunks)
        times = times[times < duration_s]
        span = duration_s
    n = len(times)
    prompts = prompt.sample(rng, n)
    outputs = output.sample(rng, n)
    kind = "poisson" if cv == 1.0 else f"gamma(cv={cv:g})"
    requests = tuple(TraceRequest(float(t), int(p), int(o), slo_class)
                     for t, p, o in zip(times, prompts, outputs))
    source = (f"{kind} at {rate:g} req/s, prompt {prompt.describe()}, output "
              f"{output.describe()}, seed {seed}")
    return Trace(kind.split("(")[0], requests, source=source, duration_s=span,
                 notes=(f"generated {n} requests",))
