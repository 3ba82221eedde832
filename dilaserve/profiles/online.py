"""Online refinement of the step-cost model from the step times the worker measures.

Recursive least squares with a forgetting factor, in information form: the 4x4 information matrix
A and vector b are decayed by `forgetting` and a measured step is added, then coef = A^-1 b. Each
step is weighted by 1/time, so that (as in the offline fit) what is minimised is relative error.

The offline fit is the prior: A and b start as evidence that coef = the profile's coefficients,
worth `prior_weight` copies of the first measured step (per coefficient), and that prior is kept at
a constant strength by topping up what forgetting removes. So the estimate follows drift within
the forgetting window (1 / (1 - forgetting) steps, 200 by default), while directions the recent
steps do not excite (e.g. every step had two forwards) stay at the profile's values instead of
winding up. The prior is kept weak (a tenth of a step's worth) because the features are nearly
collinear (attended_kv grows with tokens x length): the data pins that direction only weakly, so
even a prior of one step's worth biases it visibly.
Coefficients are kept >= 0 by solving with the negative ones pinned to zero (active set).

Errors are held out: each measured step is first predicted, then fitted, so `median_abs_rel_error`
is over steps not yet seen by the model at the time of their prediction.
"""

from __future__ import annotations

import math
import statistics
from collections import deque

from dilaserve.core.steps import StepFeatures
from dilaserve.profiles.step_cost import StepCostModel

PRIOR_FLOOR = 1e-3


class OnlineStepCost:
    def __init__(
        self,
        prior: StepCostModel,
        forgetting: float = 0.995,
        prior_weight: float = 0.1,
        error_window: int = 200,
    ) -> None:
        if not 0 < forgetting <= 1:
            raise ValueError(f"OnlineStepCost.forgetting must be in (0, 1], got {forgetting}")
        if not prior_weight > 0:
            raise ValueError(f"OnlineStepCost.prior_weight must be > 0, got {prior_weight}")
        if error_window < 1:
            raise ValueError(f"OnlineStepCost.error_window must be >= 1, got {error_window}")
        self.prior = prior
        self.forgetting = forgetting
        self.prior_weight = prior_weight
        self._coef = tuple(max(0.0, float(c)) for c in prior.coef)
        # solved in units of `_scale` (each coefficient's prior spread), where every unknown and
        # every weighted feature is of order one, so the 4x4 solve stays well conditioned; plain
        # floats, not numpy: at 4x4 numpy's per-call overhead is most of the cost of an update
        self._scale = [1.0] * 4
        self._info: list[list[float]] = []  # A, built at the first step (it fixes the scales)
        self._rhs = [0.0] * 4  # b
        self._prior_diag = [0.0] * 4
        self._prior_rhs = [0.0] * 4
        self._errors: deque[float] = deque(maxlen=error_window)
        self.updates = 0

    @property
    def coef(self) -> tuple[float, float, float, float]:
        return self._coef  # type: ignore[return-value]

    @property
    def model(self) -> StepCostModel:
        return StepCostModel(self.coef)

    def predict(self, features: StepFeatures) -> float:
        a, b, c, d = self._coef
        return (
            a * features.forwards
            + b * features.refresh_tokens
            + c * features.reuse_tokens
            + d * features.attended_kv
        )

    def update(self, features: StepFeatures, elapsed_s: float) -> float | None:
        """Fit one measured step; returns its held-out relative error (None if unusable)."""
        if not (elapsed_s > 0 and math.isfinite(elapsed_s)):
            return None
        x = features.as_vector()
        if not any(x):
            return None
        error = abs(self.predict(features) - elapsed_s) / elapsed_s
        self._errors.append(error)
        if not self._info:
            self._start(x, elapsed_s)
        row = [xi * si / elapsed_s for xi, si in zip(x, self._scale, strict=True)]
        keep, leak = self.forgetting, 1.0 - self.forgetting
        for i, info_i in enumerate(self._info):
            ri = row[i]
            for j in range(4):
                info_i[j] = keep * info_i[j] + ri * row[j]
            info_i[i] += leak * self._prior_diag[i]
            self._rhs[i] = keep * self._rhs[i] + ri + leak * self._prior_rhs[i]
        scaled = _solve_nonnegative(self._info, self._rhs)
        self._coef = tuple(u * s for u, s in zip(scaled, self._scale, strict=True))
        self.updates += 1
        return error

    def rescale_prior(self, prior: StepCostModel) -> None:
        """A new prior (the profile scaled to this machine), the measured steps' evidence kept.
        The prior's part of b is held at exactly `_prior_rhs` (what forgetting removes is topped
        up), so it is swapped for the new one's and the coefficients solved again."""
        self.prior = prior
        if not self._info:
            self._coef = tuple(max(0.0, float(c)) for c in prior.coef)
            return
        new_rhs = [p * max(0.0, float(c)) / s for p, c, s
                   in zip(self._prior_diag, prior.coef, self._scale, strict=True)]
        self._rhs = [b - old + new for b, old, new in zip(self._rhs, self._prior_rhs, new_rhs,
                                                          strict=True)]
        self._prior_rhs = new_rhs
        scaled = _solve_nonnegative(self._info, self._rhs)
        self._coef = tuple(u * s for u, s in zip(scaled, self._scale, strict=True))

    def _start(self, x: tuple[float, ...], elapsed_s: float) -> None:
        # prior spread of coefficient i: its own size, or for a zero prior coefficient the value
        # that would explain the whole first step alone (a weak prior: the data decides)
        self._scale = [
            c if c > 0 else elapsed_s / max(xi, 1.0) for c, xi in zip(self._coef, x, strict=True)
        ]
        # the prior on each coefficient is worth `prior_weight` copies of the first step's evidence
        # on it alone (a floor keeps features absent from that step identifiable later)
        first = [xi * si / elapsed_s for xi, si in zip(x, self._scale, strict=True)]
        self._prior_diag = [self.prior_weight * max(r * r, PRIOR_FLOOR) for r in first]
        self._prior_rhs = [
            p * c / s for p, c, s in zip(self._prior_diag, self._coef, self._scale, strict=True)
        ]
        self._info = [[self._prior_diag[i] if i == j else 0.0 for j in range(4)] for i in range(4)]
        self._rhs = list(self._prior_rhs)

    def median_abs_rel_error(self) -> float:
        """Median |predicted - measured| / measured over the recent held-out steps (nan if none)."""
        return statistics.median(self._errors) if self._errors else float("nan")

    def error_count(self) -> int:
        return len(self._errors)

    def errors(self) -> list[float]:
        return list(self._errors)


def _solve_nonnegative(info: list[list[float]], rhs: list[float]) -> list[float]:
    """argmin of the quadratic with normal equations info @ coef = rhs, subject to coef >= 0:
    solve, pin the most negative coefficient to zero, solve the rest again."""
    free = list(range(len(rhs)))
    coef = [0.0] * len(rhs)
    while free:
        sub = _solve([[info[i][j] for j in free] for i in free], [rhs[i] for i in free])
        if min(sub) >= 0:
            for i, value in zip(free, sub, strict=True):
                coef[i] = value
            break
        free.pop(sub.index(min(sub)))
    return coef


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting (a is small, symmetric positive definite)."""
    n = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        m[col], m[pivot] = m[pivot], m[col]
        head = m[col]
        if head[col] == 0.0:
            raise ValueError("step-cost information matrix is singular")
        for r in range(col + 1, n):
            factor = m[r][col] / head[col]
            if factor:
                row = m[r]
                for k in range(col, n + 1):
                    row[k] -= factor * head[k]
    out = [0.0] * n
    for i in range(n - 1, -1, -1):
        out[i] = (m[i][n] - sum(m[i][k] * out[k] for k in range(i + 1, n))) / m[i][i]
    return out
