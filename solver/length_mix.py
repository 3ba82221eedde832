"""A class's request lengths as a small weighted sample of (prompt, canvas) points.

The capacity model (`solver.capacity`) needs more than a mean and a p90: requests carry their own
deadlines (SLO scale x their own time alone), a batch's forwards are padded to its longest row,
and the rows a replica holds are the long-lived ones. So a class's lengths are kept jointly, as
up to `points` weighted points:

- `from_pairs`: observed (prompt, canvas) pairs (the controller's recent arrivals), stratified:
  sorted by canvas into `canvas_groups` equal-count groups (the canvas sets a request's steps),
  each sorted by prompt + canvas into equal-count strata (the sequence sets its step cost and
  the padding it causes); a point is a stratum's mean prompt and mean canvas, weighted by its
  count. Means keep the expected steps and tokens exact; a canvas may be a fraction of a block.
- `from_dists`: only a mean and a p90 known (a workload file): prompt and output each
  lognormal through their mean and p90, independent, `side` quantile points each (the output
  rounded up to whole blocks).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from solver.types import LengthDist

DEFAULT_POINTS = 48
_Z90 = NormalDist().inv_cdf(0.9)


@dataclass(frozen=True)
class LengthMix:
    prompt: tuple[float, ...]
    canvas: tuple[float, ...]  # tokens decoded, whole blocks on average
    weight: tuple[float, ...]  # sums to 1

    def __post_init__(self) -> None:
        n = len(self.prompt)
        if n == 0 or len(self.canvas) != n or len(self.weight) != n:
            raise ValueError("length mix: prompt, canvas and weight must be equally long and "
                             "non-empty")
        if min(self.prompt) <= 0 or min(self.canvas) <= 0 or min(self.weight) < 0:
            raise ValueError("length mix: lengths must be > 0 and weights >= 0")
        total = sum(self.weight)
        if not total > 0:
            raise ValueError("length mix: weights must not all be 0")
        if abs(total - 1.0) > 1e-9:
            object.__setattr__(self, "weight", tuple(w / total for w in self.weight))

    def __len__(self) -> int:
        return len(self.prompt)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (np.asarray(self.prompt, dtype=float), np.asarray(self.canvas, dtype=float),
                np.asarray(self.weight, dtype=float))

    @property
    def mean_prompt(self) -> float:
        return float(np.dot(self.prompt, self.weight))

    @property
    def mean_canvas(self) -> float:
        return float(np.dot(self.canvas, self.weight))

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[int, int]], points: int = DEFAULT_POINTS,
                   canvas_groups: int = 6) -> LengthMix:
        if not pairs:
            raise ValueError("length mix: no (prompt, canvas) pairs")
        arr = np.asarray(pairs, dtype=float).reshape(-1, 2)
        if len(arr) <= points:
            return cls(tuple(arr[:, 0]), tuple(arr[:, 1]), (1.0 / len(arr),) * len(arr))
        groups = max(1, min(canvas_groups, points))
        per_group = max(1, points // groups)
        arr = arr[np.lexsort((arr[:, 0], arr[:, 1]))]  # by canvas, then prompt
        prompt, canvas, weight = [], [], []
        for group in np.array_split(arr, groups):
            group = group[np.argsort(group.sum(axis=1), kind="stable")]
            for stratum in np.array_split(group, min(per_group, len(group))):
                prompt.append(float(stratum[:, 0].mean()))
                canvas.append(float(stratum[:, 1].mean()))
                weight.append(len(stratum) / len(arr))
        return cls(tuple(prompt), tuple(canvas), tuple(weight))

    @classmethod
    def from_dists(cls, prompt: LengthDist, output: LengthDist, block_size: int,
                   side: int = 7) -> LengthMix:
        prompts = _lognormal_points(prompt, side)
        outputs = [max(1, math.ceil(o / block_size)) * block_size
                   for o in _lognormal_points(output, side)]
        pairs = [(p, float(o)) for p in prompts for o in outputs]
        return cls(tuple(p for p, _ in pairs), tuple(o for _, o in pairs),
                   (1.0 / len(pairs),) * len(pairs))


def _lognormal_points(dist: LengthDist, side: int) -> list[float]:
    """`side` equal-probability quantile points of the lognormal with this mean and p90 (the
    widest lognormal when p90 / mean exceeds what one can have, e^(z90^2 / 2) = 2.27)."""
    mean, p90 = float(dist.mean), float(dist.p90 or dist.mean)
    ratio = math.log(max(p90 / mean, 1.0))
    if ratio <= 1e-12:
        return [mean]
    sigma = _Z90 - math.sqrt(max(0.0, _Z90 * _Z90 - 2 * ratio))
    mu = math.log(mean) - sigma * sigma / 2
    probs = (np.arange(side) + 0.5) / side
    z = np.array([NormalDist().inv_cdf(float(p)) for p in probs])
    values = np.exp(mu + sigma * z)
    return [float(v) for v in values * mean / values.mean()]  # keep the mean exact
